"""A cheap guess at whether a question is written in English (the only language understood).

Not a language identifier: two general signals that need no per-language lists. Mostly
non-Latin letters (Cyrillic, CJK, Arabic...) is not English; a question of several words with
none of English's commonest function words is probably another Latin-script language.
It also holds what the bot knows of English words: those function words and the packaged
tokenizer's whole words, used where case or spelling can't be trusted (chat typing).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

# English's most frequent function words and question words (any English question of four
# or more words almost always has one of them).
ENGLISH_FUNCTION_WORDS = frozenset("""
a an the of to in on at by for from with about as into and or but not no is are was were be been
being has have had do does did will would can could should may might must shall this that these
those it its he she they them his her their we our you your i me my who whom whose what when where
which why how there here than then if so any all some many much more most other such
""".split())


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of the packaged MiniLM tokenizer's vocabulary (about 22,500)."""
    from bot.knowledge.cross_encoder import tokenizer_path

    try:
        vocab = json.loads(tokenizer_path().read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError):
        return frozenset()
    return frozenset(w for w in vocab if w.isalpha() and w.isascii())


NOTE = "briefbot understands questions in English only; please ask in English."


def looks_non_english(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    latin = sum(ch.isascii() or "\u00c0" <= ch <= "\u024f" for ch in letters)
    if latin / len(letters) < 0.5:
        return True
    # one-letter words ("a" in "a-t-il") say nothing about the language
    words = [w for w in re.findall(r"[^\W\d_]+", text.lower()) if len(w) > 1]
    return len(words) >= 4 and not any(w in ENGLISH_FUNCTION_WORDS for w in words)
