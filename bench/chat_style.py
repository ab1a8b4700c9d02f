"""Questions typed the way people type in chat, made from clean ones (for bench/quality.py).

A seeded rewrite of each question: mostly lower case, the question mark often dropped,
apostrophes dropped ("whats", "ukraines"), common texting short forms ("r", "u", "abt") and
one slip of the keyboard in a word of four or more letters (a letter dropped, doubled or two
swapped), any word, question words included. The answers and gold sentences stay those of
the clean question, so clean and chat scores of the same questions compare directly.
"""

from __future__ import annotations

import random
import re

# Short forms people type in chat; a model of the writer, not of any question set.
TEXTING = {"are": "r", "you": "u", "about": "abt", "because": "cuz", "people": "ppl", "please": "pls"}
CONTRACT = re.compile(r"\b(what|who|where|how|that|it|there|when) is\b", re.IGNORECASE)


def _slip(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("drop", "double", "swap"))
    if kind == "drop":
        return word[:i] + word[i + 1:]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


KINDS = ("contract", "apostrophe", "texting", "typo", "lower", "mark")


def chat_style(question: str, seed: int | str, kinds: tuple[str, ...] = KINDS) -> str:
    """``kinds`` limits the rewrite to some of its parts (the same draws, so a question gets the
    same typo with or without the rest), for telling which part costs what."""
    rng = random.Random(f"chat-{seed}")
    q = question.strip()
    if rng.random() < 0.5 and "contract" in kinds:
        q = CONTRACT.sub(lambda m: m.group(1) + "s", q)
    if rng.random() < 0.6 and "apostrophe" in kinds:
        q = q.replace("'", "").replace("\u2019", "")
    words = q.split(" ")
    for n, w in enumerate(words):
        short = TEXTING.get(w.lower())
        if short and rng.random() < 0.4 and "texting" in kinds:
            words[n] = short
    if rng.random() < 0.5:
        long = [n for n, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if long:
            n = rng.choice(long)
            slip = _slip(words[n], rng)
            if "typo" in kinds:
                words[n] = slip
    q = " ".join(words)
    if rng.random() < 0.8 and "lower" in kinds:
        q = q.lower()
    if rng.random() < 0.6 and "mark" in kinds:
        q = q.rstrip("?").rstrip()
    return q
