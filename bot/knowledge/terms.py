"""One tokenizer for the keyword index and for the answer checks, so both see the same terms.

Numbers keep their digits together ("8,000" -> "8000", "12th" -> "12th"), possessives are
dropped, and words are Snowball-stemmed so "resisted" meets "resist".
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
_TOKEN = re.compile(r"[^\W_]+(?:[.,'’\-][^\W_]+)*", re.UNICODE)
_STEMMER = Stemmer.Stemmer("english")
STOPWORDS = frozenset(STOPWORDS_EN) | {
    "s", "did", "does", "do", "was", "were", "is", "are", "be", "been", "has", "have", "had",
    "what", "when", "where", "which", "who", "whom", "whose", "why", "how", "much", "many",
    "according", "say", "said", "says", "also", "else", "that", "this", "these",
    "those", "it", "its", "they", "them", "their", "he", "she", "his", "her", "there", "mr", "ms",
    "mrs", "dr", "would", "could", "should", "can", "will", "may", "might", "one", "any", "about",
    # words that frame a question rather than carry its content
    "happen", "happened", "occur", "occurred", "exactly", "actually", "briefing", "briefings",
    "article", "document", "report", "mention", "mentioned", "know", "now", "doing", "done", "going",
}


# Words news writing uses interchangeably, folded to one term so "When was Umerov informed?"
# meets "was conveyed to ... Umerov" and "the course of the war" meets "of the conflict".
_SYNONYMS = [
    "inform tell told notify notified brief briefed convey conveyed",
    "change alter shift modify",
    "war conflict fighting",
    "cost price",
    "allow permit authorise authorize",
    "begin start launch",
    "buy purchase",
    "soldier troop",
    "rise increase grow climb",
    "fall decrease drop decline",
    "big large",
    "company firm",
    "film movie",
    "car vehicle",
]
_CANON = {}
for _group in _SYNONYMS:
    _stems = [_STEMMER.stemWord(w) for w in _group.split()]
    _CANON.update({s: _stems[0] for s in _stems[1:] if s != _stems[0]})


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    stem = _STEMMER.stemWord(word)
    return _CANON.get(stem, stem)


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
