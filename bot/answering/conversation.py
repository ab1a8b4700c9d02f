"""Follow-up questions rewritten into standalone ones, so search and the short answer see what
was meant: "Who informed him?" after "When was Umerov informed?" is "Who informed Umerov?", and
"and where?" after it is "Where was Umerov informed?".

General rules only (no word lists about any briefing): a question that is only a question word
("and when?", "where was that?") takes the body of the previous question; a personal pronoun
takes the previous turn's person (the answer to a "who" question, else the first name in the
question); "it"/"they" take the previous turn's thing. A question with neither is left alone,
so a change of topic stays a new question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from bot.answering.spans import candidates, question_type


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation, oldest first in a history."""

    question: str
    answer: str


_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_WH = ("what", "when", "where", "who", "whom", "whose", "which", "how", "why")
_AUX = {"is", "was", "are", "were", "do", "does", "did", "has", "have", "had", "will", "would", "can", "could",
        "should", "may", "might"}
_PERSON = {"he", "him", "his", "she", "her", "hers", "himself", "herself"}
_THING = {"it", "its", "they", "them", "their", "itself", "themselves"}
_POINTERS = {"that", "this", "those", "these", "then", "there"}
# Words that carry no topic of their own: a question made only of these (and a question word)
# is elliptical and borrows the previous question's body.
_EMPTY = _AUX | _PERSON | _THING | _POINTERS | {
    "and", "but", "so", "ok", "okay", "also", "exactly", "again", "about", "though", "happen", "happened",
    "happens", "occur", "occurred", "take", "took", "place", "the", "a", "an", "of", "in", "on", "at", "to",
    "much", "many", "long", "else", "please", "then", "what's", "who's", "where's", "when's", "you", "know",
}
_LEADING = re.compile(r"^\s*(?:and|but|so|ok(?:ay)?|also|then|well)\b[\s,]*", re.IGNORECASE)


def standalone(question: str, history: Sequence[Turn]) -> str:
    """``question`` as it would be asked with no conversation before it."""
    turns = [t for t in history if isinstance(t, Turn)]
    if not turns:
        return question
    previous = turns[-1]
    prev_q = standalone(previous.question, turns[-4:-1]) if len(turns) > 1 else previous.question
    words = [w.lower() for w in _WORD.findall(question)]
    if not words:
        return question
    if _elliptical(words):
        # The most recent question whose body can be borrowed whole ("Who informed Umerov?"
        # with no name given in its answer lacks its subject: the question before it is used).
        for back in range(1, min(3, len(turns)) + 1):
            turn = turns[-back]
            q = prev_q if back == 1 else (standalone(turn.question, turns[-back - 3:-back]) if len(turns) > back else turn.question)
            rewritten = _borrow_body(question, q, turn.answer)
            if rewritten:
                return rewritten
    if not set(words) & (_PERSON | _THING):
        return question
    person = _person(prev_q, previous.answer)
    thing = _thing(prev_q, previous.answer, person)
    return _replace_pronouns(question, person, thing)


def _elliptical(words: list[str]) -> bool:
    """A question word with nothing of its own: "and when?", "where was that?", "how many?"."""
    if not any(w in _WH for w in words[:3]):
        return False
    return all(w in _WH or w in _EMPTY for w in words) and len(words) <= 6


def _wh_phrase(question: str) -> tuple[str, str]:
    """("How many", "North Korean forces were in Kursk") from "How many North Korean forces
    were in Kursk?": the question word (with "many"/"much"/"long" or the asked noun) and the rest."""
    q = _LEADING.sub("", question.strip()).rstrip(" ?!.")
    m = re.match(r"^(?:(?:in|on|at|for|from|by|since|during) )?(?:how (?:many|much|long|far|old|often)|"
                 r"(?:what|which)(?: \w+)?|when|where|who|whom|whose|why|how)\b\s*(.*)$", q, re.IGNORECASE)
    if not m:
        return "", q
    phrase = q[: m.start(1)].strip()
    body = m.group(1)
    # "Which North Korean soldiers were ...": the noun belongs to the body a new question word takes.
    if re.match(r"^(?:what|which) \S+$", phrase, re.IGNORECASE):
        body = f"{phrase.split()[1]} {body}".strip()
        phrase = phrase.split()[0]
    return phrase, body


def _borrow_body(question: str, prev_q: str, prev_answer: str) -> str:
    """The new question word with the previous question's body: "and where?" after "When was
    Umerov informed?" -> "Where was Umerov informed?"."""
    new_phrase, _ = _wh_phrase(question)
    old_phrase, body = _wh_phrase(prev_q)
    if not new_phrase or not body:
        return ""
    first = body.split(" ", 1)[0].lower()
    if old_phrase.lower() in ("who", "whom") and first not in _AUX:
        # The previous question asked for the subject ("Who informed Umerov?"): its answer is it.
        subject = _entity(short_of(prev_answer))
        if not subject:
            return ""
        body = f"{subject} {body}"
    rewritten = f"{new_phrase[0].upper()}{new_phrase[1:]} {body}?"
    return rewritten


def _entity(short: str) -> str:
    """The name a short answer ends with, without the role before it ("secretary of defence Lloyd
    J Austin" -> "Lloyd J Austin"): the subject of the rewritten question is who, not what they are."""
    words = short.split()
    i = len(words)
    while i > 0 and words[i - 1][:1].isupper():
        i -= 1
    return " ".join(words[i:]) if 0 < i <= len(words) - 2 else short


def short_of(answer: str) -> str:
    """The short answer an earlier answer put before its first quote ("" if none)."""
    head = answer.split("\u201c", 1)[0].strip()
    if not head or head.lower().startswith("the briefings don't say"):
        return ""
    return head.rstrip(". ").strip()


def _names(text: str) -> list[str]:
    """Proper-noun phrases of a question, not counting a capitalised question word."""
    out = []
    for c in candidates(text):
        if c.kind != "proper":
            continue
        words = c.text.split()
        while words and words[0].lower() in set(_WH) | _AUX | {"the", "and", "but", "so"}:
            words = words[1:]
        if words:
            out.append(" ".join(words))
    return out


def _person(prev_q: str, prev_answer: str) -> str:
    short = short_of(prev_answer)
    if question_type(prev_q)[0] == "who" and short and short[:1].isupper():
        return short
    names = _names(prev_q)
    return max(names, key=lambda n: (len(n.split()) > 1, -prev_q.find(n))) if names else ""


def _thing(prev_q: str, prev_answer: str, person: str) -> str:
    short = short_of(prev_answer)
    kind = question_type(prev_q)[0]
    if short and kind in ("what", "who") and not re.search(r"\d", short):
        return short
    names = [n for n in _names(prev_q) if n != person]
    return names[0] if names else (person or "")


def _replace_pronouns(question: str, person: str, thing: str) -> str:
    def sub(m: re.Match) -> str:
        word = m.group(0)
        low = word.lower()
        after = question[m.end():]
        if low in _PERSON and person:
            target = person
        elif low in _THING and thing:
            target = thing
        else:
            return word
        possessive = low in ("his", "its", "their", "hers") or (
            low == "her" and re.match(r"\s+[a-z]", after) and not re.match(r"\s+(?:about|to|that|of|in|on|at|for|with|from|by)\b", after))
        return f"{target}'s" if possessive else target

    return re.sub(r"\b(?:he|him|his|she|her|hers|it|its|they|them|their)\b", sub, question, flags=re.IGNORECASE)
