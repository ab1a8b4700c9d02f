"""The default answerer: quotes the best source sentences verbatim and, where the question
asks for a date, a number, a name or a place, puts that short answer first.

It never writes a word that isn't in the briefing apart from the short framing, so it needs
no model beyond the retriever and can't invent facts.
"""

from __future__ import annotations

import re
from typing import Sequence

from bot.answering.types import Answer, Citation, Passage, Turn
from bot.knowledge.search import SUPPORT, focus_terms
from bot.knowledge.terms import raw_tokens, terms

_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_PART = r"(?:early|mid|late)(?:-to-(?:early|mid|late))?"
_DATE = re.compile(
    rf"\b(?:(?:{_PART})[- ])?{_MONTH}(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? \d{{4}})?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH}(?:,? \d{{4}})?\b"
    rf"|\b(?:on |last |next |this )?{_DAY}\b"
    rf"|\b(?:in |since |by )?(?:19|20)\d\d\b"
    rf"|\b(?:a|one|two|three) (?:day|week|month|year)s? (?:later|earlier|ago)\b"
    rf"|\b(?:the following|last|next|this) (?:day|week|month|year)\b"
    rf"|\b(?:yesterday|today|tomorrow)\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = (r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:-(?:one|two|three|four|five|six|seven|eight|nine))?"
                 r"|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
                 r"|seventeen|eighteen|nineteen|a hundred|a thousand|dozens|hundreds|thousands|millions|a dozen|several)")
_NUMBER = re.compile(
    r"\b(?:(?:about|around|nearly|almost|some|over|more than|fewer than|up to|as many as|at least) )?"
    rf"(?:\d[\d,]*(?:\.\d+)?|{_NUMBER_WORDS}\b)(?: of)?(?:-(?:mile|km|kilometre|year|day|month))?"
    r"(?: ?(?:%|per cent|percent|million|billion|thousand|km|miles?|kilometres?))?",
    re.IGNORECASE,
)
_MONEY = re.compile(r"[$£€¥]\s?\d|\b\d[\d,.]*\s?(?:dollars|pounds|euros|bn|m)\b|\b(?:USD|GBP|EUR)\b", re.IGNORECASE)
_NAME = re.compile(r"\b(?:[A-Z][\w'’\-]+|[A-Z]\.?)(?: (?:[A-Z][\w'’\-]+|[A-Z]\.?|de|van|von|bin|al))*\b")
_PLACE = re.compile(r"\b(?:in|at|to|into|from|near|inside) ((?:the )?[A-Z][\w'’\-]+(?: [A-Z][\w'’\-]+)*)")
_NOT_NAMES = {"The", "A", "An", "But", "And", "On", "In", "At", "For", "Since", "Mr", "Ms", "Mrs", "Dr",
              "US", "UK", "EU", "It", "He", "She", "They", "This", "That", "Thursday", "Tuesday",
              "Wednesday", "Monday", "Friday", "Saturday", "Sunday", "White", "House"}
_ADJECTIVAL = re.compile(r"^[A-Z][a-z]+(?:ian|ean|ese|ish|ic|an)$|^(?:President|Prime|Minister|Chancellor|Secretary|Commission|Chief|General|Senator)$")
_ROLE_AFTER = re.compile(r"\s+(?:secretary|spokes(?:person|man|woman)|minister|president|official|chief|leader|"
                         r"ambassador|envoy|commander|general|head|director|chairman|chair|editor|correspondent)",
                         re.IGNORECASE)
_TITLES = re.compile(r"^(?:Mr|Ms|Mrs|Dr|President|Minister|Secretary)\.? ")

NOT_COVERED = "The briefings don't say."
_TYPED = {"when", "number", "money", "who"}


def question_kind(question: str) -> str:
    q = question.strip().lower()
    if re.match(r"^(when|what (date|day|time|year|month)|since when|how long ago)\b", q) or " when " in f" {q} ":
        return "when"
    if re.search(r"\b(cost|price|pay|paid|worth|spend|spent|budget)\b", q) or re.match(r"^how much money\b", q):
        return "money"
    if re.match(r"^(how (many|much|far|long|big|large)|what (number|percentage|share|amount|distance))\b", q):
        return "number"
    if re.match(r"^[Ww]ho(?:'s| is| was) (?:[A-Z][\w'’.\-]*\s*)+\??$", question.strip()):
        return "other"  # "Who is John Kirby?" asks what he is: the sentence that says so
    if re.match(r"^(who|whom|whose|which (person|official|minister|country|people))\b", q):
        return "who"
    if re.match(r"^where\b", q) or " where " in f" {q} ":
        return "where"
    return "other"


def short_answer(kind: str, question: str, text: str, given: str = "") -> tuple[str, tuple[int, int] | None]:
    """The typed answer in ``text`` that the question (and ``given``, what the conversation
    already said) doesn't contain, with its span."""
    qwords = {w.lower() for w in raw_tokens(f"{question} {given}")}

    def fresh(s: str) -> bool:
        words = [w.lower() for w in raw_tokens(s)]
        return bool(words) and not all(w in qwords for w in words)

    candidates: list[re.Match] = []
    if kind == "when":
        candidates = [m for m in _DATE.finditer(text)]
    elif kind == "money":
        candidates = [m for m in _MONEY.finditer(text)]
    elif kind == "number":
        head = count_noun(question)
        candidates = [m for m in _NUMBER.finditer(text)
                      if not head or head in terms(text[m.end():m.end() + 60].split(".")[0])[:5] + terms(m.group(0))]
    elif kind == "who":
        return _nearest_name(question, text, qwords)
    elif kind == "where":
        for m in _PLACE.finditer(text):
            if fresh(m.group(1)):
                return m.group(1), m.span(1)
        return "", None
    for m in candidates:
        value = re.sub(r" of$", "", _TITLES.sub("", m.group(0).strip()))
        if fresh(value):
            start = m.start() + m.group(0).find(value)
            return value, (start, start + len(value))
    return "", None


def count_noun(question: str) -> str:
    """The stemmed thing counted in "how many X ..." ("forces" in "How many North Korean forces were ...")."""
    m = re.search(r"\bhow many((?: [\w'\-]+){1,4})", question, re.IGNORECASE)
    if not m:
        return ""
    words = m.group(1).split()
    plural = [w for w in words if w.lower().endswith("s") and len(w) > 3]
    found = terms(plural[-1] if plural else words[0])
    return found[0] if found else ""


def _asked(word: str, qwords: set[str]) -> bool:
    """Whether the question already names ``word`` ("Korea's" in a question about "Korean" troops)."""
    low = re.sub(r"['’]s$", "", word.lower())
    return low in qwords or any(len(low) >= 4 and len(q) >= 4 and (q.startswith(low) or low.startswith(q))
                                for q in qwords)


def _nearest_name(question: str, text: str, qwords: set[str]) -> tuple[str, tuple[int, int] | None]:
    """The name closest to where the question's own words appear in the sentence: in
    "John Kirby told reporters", asked "Who told reporters ...", that is John Kirby."""
    names = []
    for m in _NAME.finditer(text):
        words = m.group(0).split()
        # "German Chancellor Gerhard Schroeder" asked "Who is the German chancellor?" -> the person.
        while words and (words[0] in _NOT_NAMES or words[0].lower() in qwords or _ADJECTIVAL.match(words[0])):
            words = words[1:]
        if not words or any(_asked(w, qwords) for w in words):
            continue
        if len(words) == 1 and _ROLE_AFTER.match(text, m.end()):
            continue  # "Nato" in "Nato secretary-general Mark Rutte" says whose, not who
        value = " ".join(words)
        start = m.start() + m.group(0).find(value)
        names.append((value, (start, start + len(value))))
    if not names:
        return "", None
    role = focus_terms(question) | _role_tail(question)  # "Who is the German chancellor?": the name
    qterms = role or set(terms(question))                  # must stand by the role
    words = [(m.span(), set(terms(m.group(0)))) for m in re.finditer(r"[\w'’\-]+", text)]
    anchors = [span for span, found in words if found & qterms]
    if role and anchors:
        anchors = _best_role_runs(words, role)
    if not anchors:  # nothing to stand by: a full name (a person, most likely) first
        return ("", None) if role else max(names, key=lambda n: len(n[0].split()) > 1)

    def gap(item):
        (a, b) = item[1]
        return min(max(x - b, a - y, 0) for x, y in anchors)

    if role:
        names = [n for n in names if gap(n) <= 15]
        if not names:
            return "", None
    return min(names, key=lambda n: gap(n) - (25 if len(n[0].split()) > 1 else 0))


def _role_tail(question: str) -> frozenset[str]:
    """"of state" in "Who is the US secretary of state?": part of the role, unlike "of Japan"."""
    m = re.match(r"^(?i:who|what)(?:'s| is| was| are| were)\b.*?\bof ((?:[a-z][\w\-]* ?)+)", question.strip())
    return frozenset(terms(m.group(1))) if m else frozenset()


def _best_role_runs(words: list[tuple[tuple[int, int], set[str]]], role: frozenset[str]) -> list[tuple[int, int]]:
    """Spans of the runs of words (allowing "of"/"the" inside) that hold the most role terms:
    "secretary of state" beats the "secretary" of "secretary-general"."""
    runs: list[tuple[int, tuple[int, int]]] = []
    i = 0
    while i < len(words):
        if not words[i][1] & role:
            i += 1
            continue
        start, end, found, j = words[i][0][0], words[i][0][1], set(words[i][1] & role), i + 1
        while j < len(words):
            span, got = words[j]
            if got & role:
                found |= got & role
                end = span[1]
            elif not got and j + 1 < len(words) and words[j + 1][1] & role:  # a stopword bridge
                pass
            else:
                break
            j += 1
        runs.append((len(found), (start, end)))
        i = j
    best = max(n for n, _ in runs)
    return [span for n, span in runs if n == best]


def _given_before(question: str, history: Sequence[Turn]) -> str:
    """For "who else ...?": the names already in play, so they aren't given again."""
    if not history or not set(raw_tokens(question)) & {"else", "other", "another", "besides"}:
        return ""
    previous = history[-1]
    head = previous.answer.split("\u201c", 1)[0]
    return f" {previous.question} {head}"


def _marked(text: str, span: tuple[int, int] | None) -> str:
    if not span:
        return text
    a, b = span
    return f"{text[:a]}**{text[a:b]}**{text[b:]}"


class ExtractiveAnswerer:
    """Quotes; never paraphrases. ``passages`` come ranked and already judged as supporting."""

    name = "extractive"

    def __init__(self, max_quotes: int = 2):
        self.max_quotes = max_quotes

    def answer(self, question: str, history: Sequence[Turn], passages: Sequence[Passage]) -> Answer:
        if not passages:
            return Answer(question=question, answer=NOT_COVERED, abstained=True, answerer=self.name)
        kind = question_kind(question)
        chosen = self._choose(kind, question, passages)
        short, span = ("", None)
        if kind != "other":
            given = _given_before(question, history)
            short, span = short_answer(kind, question, chosen[0].text, given)
            if not short and kind in _TYPED:
                # Asked for a date, number, amount or person and the best sentences hold none: the
                # honest reply is that the briefing doesn't say, not a nearby sentence.
                return Answer(question=question, answer=NOT_COVERED, abstained=True, answerer=self.name)
        citations = [
            Citation(n=i + 1, document=p.document, title=p.title, sentence_id=p.sentence_id, text=p.text,
                     start=p.start, end=p.end, location=p.location, heading=p.heading)
            for i, p in enumerate(chosen)
        ]
        quotes = []
        for i, p in enumerate(chosen):
            quotes.append(f"\u201c{_marked(p.text, span if i == 0 else None)}\u201d [{i + 1}]")
        body = " ".join(quotes)
        text = f"{short}. {body}" if short else body
        return Answer(question=question, answer=text, abstained=False, citations=citations,
                      answerer=self.name, short_answer=short)

    def _choose(self, kind: str, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """Passage scores are support scores: only passages that support an answer on their
        own may replace the top one or join it."""
        top = passages[0]
        first = top
        if kind != "other" and not short_answer(kind, question, top.text)[0]:
            # A close runner-up that holds the kind of answer asked for beats a top hit that doesn't.
            for p in passages[1:3]:
                if p.score >= max(SUPPORT, top.score - 0.15) and short_answer(kind, question, p.text)[0]:
                    first = p
                    break
        chosen = [first]
        for p in passages:
            if len(chosen) >= self.max_quotes:
                break
            if p is not first and p.score >= max(SUPPORT, first.score - 0.05):
                chosen.append(p)
        return chosen
