"""Read a question typed in a hurry the way it was meant: "wen was umerov informd" -> "when was
umerov informed".

People type in chat with slips, short forms and no apostrophes. The retrieval features count a
question term the index lacks as a sign that the briefings don't cover the question, so a
misspelt word used to be a reason to refuse. The rules, each general (docs/quality.md measures
them on val questions retyped the chat way):

- a word neither the English vocabulary nor the index knows, one slip away (a letter dropped,
  added, changed, or two swapped) from a term of the index, is that term; the index's most
  frequent such term wins; one slip from a single English function word ("abotu"), it is that;
- a first word one slip away from exactly one question word, and not English itself, is that
  question word ("waht", "whre"; "hwo" is one slip from both "who" and "how", and stays);
- a question word with an "s" and no apostrophe is the contraction, spelled out ("whats" ->
  "what is");
- the commonest texting short forms are spelled out ("r", "u", "abt");
- a question gets the question mark chat leaves off (the models were trained on questions that
  have one, and without it P(answerable) fell for about one answerable question in thirty).

"The English vocabulary" is the packaged MiniLM tokenizer's whole words, so a word the model
reads whole is never changed.
"""

from __future__ import annotations

import re
import string
from typing import Callable

from bot.answering.language import ENGLISH_FUNCTION_WORDS, english_words

QUESTION_WORDS = ("what", "when", "where", "which", "who", "whom", "whose", "why", "how")
# Short forms of chat writing, and two spellings of question words that are words elsewhere.
TEXTING = {"r": "are", "u": "you", "ur": "your", "abt": "about", "cuz": "because", "bc": "because",
           "ppl": "people", "pls": "please", "plz": "please", "b4": "before", "wat": "what", "wut": "what",
           "wen": "when", "tho": "though", "thru": "through"}
# "whats" is "what is" (spelled out, as the questions the models learned from are written)
_CONTRACTED = {w + "s": w + " is" for w in QUESTION_WORDS if w not in ("whose", "whom")}
# A word is looked up with every slip of it (about 54 per letter): bound the work for junk.
MAX_MENDED, MAX_MENDED_LENGTH = 12, 24
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\S", re.UNICODE)
_LETTERS = string.ascii_lowercase
_POSSESSIVE = re.compile(r"['’]s$")


def one_slip(word: str) -> set[str]:
    """Every string one slip away from ``word``: a letter dropped, swapped with the next,
    changed or added (Damerau distance 1)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return ({a + b[1:] for a, b in splits if b}
            | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
            | {a + c + b for a, b in splits for c in _LETTERS}) - {word}


def _cased_like(word: str, model: str) -> str:
    if len(model) > 1 and model.isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _question_word(word: str) -> str:
    """The question word (or its contraction, "hows") one slip from ``word``, if only one is."""
    slips = one_slip(word)
    near = [w for w in (*QUESTION_WORDS, *_CONTRACTED) if w in slips]
    return _CONTRACTED.get(near[0], near[0]) if len(near) == 1 else ""


def _mended(word: str, frequency: Callable[[str], int], english: frozenset[str]) -> str:
    """What ``word`` was meant to be: the English function word one slip from it, if only one is
    ("abotu", "deos": the index holds no terms for them); else the indexed word one slip from it,
    the commonest term, and among its forms an English word that keeps most of what was typed at
    both ends ("informd" -> "informed", not "informs"); else ""."""
    slips = one_slip(word)
    function = slips & ENGLISH_FUNCTION_WORDS
    if len(function) == 1:
        return function.pop()

    def kept(w: str) -> int:
        head = next((i for i, (a, b) in enumerate(zip(w, word)) if a != b), min(len(w), len(word)))
        tail = next((i for i, (a, b) in enumerate(zip(w[::-1], word[::-1])) if a != b), min(len(w), len(word)))
        return head + tail

    scored = [(f, w in english, kept(w), w) for w in slips if (f := frequency(w))]
    return max(scored)[3] if scored else ""


def respell(question: str, frequency: Callable[[str], int]) -> str:
    """``question`` with its slips and short forms mended. ``frequency(word)`` is how many
    indexed sentences hold the word's term (0: the index doesn't know it)."""
    english = english_words()
    pieces, pos, first, mended = [], 0, True, 0
    shouted = bool(question) and question.isupper()
    for match in _WORD.finditer(question or ""):
        token, lower = match.group(0), match.group(0).lower()
        pieces.append(question[pos:match.start()])
        pos = match.end()
        if not token[0].isalpha():
            pieces.append(token)
            continue
        fixed = token
        # a short form is typed in lower case and stands alone ("U.S.", "R&D" are not short forms)
        alone = question[match.end():match.end() + 1] in ("", " ", "?", ",", "!") and (token.islower() or shouted)
        if lower in TEXTING and alone:
            fixed = TEXTING[lower]
        elif lower in _CONTRACTED:
            fixed = _CONTRACTED[lower]
        elif first and lower not in english and lower not in ENGLISH_FUNCTION_WORDS and (wh := _question_word(lower)):
            fixed = wh
        elif (4 <= len(stem := _POSSESSIVE.sub("", lower)) <= MAX_MENDED_LENGTH and stem.isalpha() and stem.isascii()
              and mended < MAX_MENDED and stem not in english and not frequency(stem)):
            # "Zelenskyy's" is mended as "Zelenskyy" ("it's" is too short to be)
            mended += 1
            better = _mended(stem, frequency, english)
            fixed = better + token[len(stem):] if better else token
        pieces.append(_cased_like(fixed, token) if fixed != token else token)
        first = False
    text = "".join(pieces) + (question or "")[pos:]
    return text if not text or text.rstrip()[-1:] in ".?!" else text.rstrip() + "?"
