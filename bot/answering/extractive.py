"""The default answerer: quotes the best source sentences verbatim and, when a span of the
quoted sentence surely answers the question (a date, a number, an amount, a name, a place),
puts that short answer first.

It never writes a word that isn't in the briefing apart from the short framing, so it needs
no model beyond the retriever and the small span scorer, and can't invent facts. When no span
is sure, the quoted sentence is the answer: a missing short answer is never a reason to refuse.
"""

from __future__ import annotations

from typing import Sequence

from bot.answering.spans import FACTOID, question_type, short_answer
from bot.answering.types import Answer, Citation, Passage, Turn

NOT_COVERED = "The briefings don't say."
CLOSEST_LABEL = "Closest passage (not an answer):"
# A runner-up passage may lead, or join as a second quote, only when its retrieval score is
# this close to the top one's.
RUNNER_UP_MARGIN = 0.05


def citation(p: Passage, n: int = 1, closest: bool = False) -> Citation:
    return Citation(n=n, document=p.document, title=p.title, sentence_id=p.sentence_id, text=p.text,
                    start=p.start, end=p.end, location=p.location, heading=p.heading, closest=closest)


def refusal(question: str, closest: Passage | None = None, answerer: str = "extractive") -> Answer:
    """The one way every answerer and the engine say "the briefings don't say": the closest
    passage, if any, is offered and labelled as not an answer (it is not a citation)."""
    text = NOT_COVERED
    near = None
    if closest is not None:
        near = citation(closest, closest=True)
        where = ", ".join(x for x in (closest.title, closest.heading and f"section \u201c{closest.heading}\u201d",
                                      closest.location) if x)
        text = f"{NOT_COVERED} {CLOSEST_LABEL} \u201c{closest.text}\u201d ({where})"
    return Answer(question=question, answer=text, abstained=True, answerer=answerer, closest=near)


def _given_before(question: str, history: Sequence[Turn]) -> str:
    """For "who else ...?": what the last answer already gave, so it isn't given again."""
    words = {w.strip("?,.!").lower() for w in question.split()}
    if not history or not words & {"else", "other", "another", "besides"}:
        return ""
    previous = history[-1]
    return previous.answer.split("\u201c", 1)[0]


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
            return refusal(question, answerer=self.name)
        given = _given_before(question, history)
        qtype = question_type(question)[0]
        first, (short, span) = passages[0], short_answer(question, passages[0].text, given)
        if not short and qtype in FACTOID:
            # A close runner-up that surely holds what was asked beats a top hit that doesn't.
            for p in passages[1:3]:
                if p.score >= first.score - RUNNER_UP_MARGIN:
                    s, sp = short_answer(question, p.text, given)
                    if s:
                        first, short, span = p, s, sp
                        break
        chosen = [first] + [p for p in passages if p is not first
                            and p.score >= first.score - RUNNER_UP_MARGIN][: self.max_quotes - 1]
        quotes = [f"\u201c{_marked(p.text, span if i == 0 else None)}\u201d [{i + 1}]" for i, p in enumerate(chosen)]
        body = " ".join(quotes)
        return Answer(question=question, answer=f"{short}. {body}" if short else body, abstained=False,
                      citations=[citation(p, i + 1) for i, p in enumerate(chosen)],
                      answerer=self.name, short_answer=short)
