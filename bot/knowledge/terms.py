"""One tokenizer for the keyword index and for the answer checks, so both see the same terms.

Numbers keep their digits together ("8,000" -> "8000", "12th" -> "12th"), possessives are
dropped, and words are Snowball-stemmed so "resisted" meets "resist".
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_TOKEN = re.compile(r"[^\W_]+(?:[.,'’\-][^\W_]+)*", re.UNICODE)
_STEMMER = Stemmer.Stemmer("english")
STOPWORDS = frozenset(STOPWORDS_EN) | {
    "s", "did", "does", "do", "was", "were", "is", "are", "be", "been", "has", "have", "had",
    "what", "when", "where", "which", "who", "whom", "whose", "why", "how", "much", "many",
    "according", "say", "said", "says", "tell", "told", "also", "else", "that", "this", "these",
    "those", "it", "its", "they", "them", "their", "he", "she", "his", "her", "there", "mr", "ms",
    "mrs", "dr", "would", "could", "should", "can", "will", "may", "might", "one", "any", "about",
    # words that frame a question rather than carry its content
    "happen", "happened", "occur", "occurred", "exactly", "actually", "briefing", "briefings",
    "article", "document", "report", "mention", "mentioned", "know", "now", "doing", "done", "going",
}


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def raw_tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens, punctuation inside numbers removed."""
    out = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group(0).replace("’", "'")
        if token.endswith("'s"):
            token = token[:-2]
        if any(ch.isdigit() for ch in token):
            token = token.replace(",", "")
            out.append(token)
            continue
        for part in re.split(r"[.'\-]", token):
            if part:
                out.append(part)
    return out


def terms(text: str) -> list[str]:
    """Stemmed content terms (stopwords removed), in order, duplicates kept."""
    return [_stem(t) for t in raw_tokens(text) if t not in STOPWORDS]
