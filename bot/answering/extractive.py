"""The default answerer: quotes the best source sentences verbatim and, when a span of the
quoted sentence surely answers the question (a date, a number, an amount, a name, a place),
puts that short answer first.

It never writes a word that isn't in the briefing apart from the short framing, so it needs
no model beyond the retriever and the small span scorer, and can't invent facts. When no span
is sure, the quoted sentence is the answer: a missing short answer is never a reason to refuse.
"""

from __future__ import annotations

from typing import Sequence

from bot.answering.spans import FACTOID, asks_what_a_name_is, question_type, short_answer
from bot.answering.types import Answer, Citation, Passage, Turn
from bot.knowledge.rerank import holds_type

NOT_COVERED = "The briefings don't say."
CLOSEST_LABEL = "Closest passage (not an answer):"
# A runner-up passage may lead, or join as a second quote, only when its retrieval score is
# this close to the top one's.
RUNNER_UP_MARGIN = 0.05
SPAN_MAX_SHARE = 0.8  # a "short" answer this much of the sentence is the sentence: quote it alone


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


def span_needs(question: str, sure: dict[str, float]) -> float:
    """The probability the cross-encoder's span must reach for this type of question."""
    return sure.get(question_type(question)[0], sure.get("default", 1.0))


def short_in(question: str, text: str, read: tuple[int, int] | None, probability: float,
             sure: dict[str, float], given: str = "") -> tuple[str, tuple[int, int] | None]:
    """The short answer in ``text``: the span the cross-encoder ``read`` when it is sure enough
    for this type of question (``sure``: thresholds calibrated on train rows), else the span
    scorer's; never the whole sentence again, nor what the last answer already gave."""
    if read and sure and reader_span_fits(question, text, read, probability, sure, given):
        return text[slice(*read)], read
    short, span = short_answer(question, text, given)
    return (short, span) if short and _of_the_kind_asked(question, short) else ("", None)


def _short(question: str, p: Passage, given: str, sure: dict[str, float]) -> tuple[str, tuple[int, int] | None]:
    return short_in(question, p.text, p.answer_span, p.answer_p, sure, given)


def reader_span_fits(question: str, text: str, span: tuple[int, int], probability: float = 1.0,
                     sure: dict[str, float] | None = None, given: str = "") -> bool:
    """Whether the cross-encoder's span is the short answer: sure enough for the question's type
    (no ``sure``: whatever its probability, as when the thresholds are set), not the whole
    sentence, not what the last answer already gave, and for "Who is John Kirby?" a description,
    not another name; for "when", not a bare name. (Requiring a date for every "when" and a
    number for "how many" cost short answers on val: "during the break", "a year".)"""
    a, b = span
    short = text[a:b]
    if sure is not None and probability < span_needs(question, sure):
        return False
    if b - a >= SPAN_MAX_SHARE * len(text) or short in given:
        return False
    return _of_the_kind_asked(question, short)


def _of_the_kind_asked(question: str, short: str) -> bool:
    """Not a bare name for "when" ("Ukraine"), nor for what a name is ("Who is John Kirby?")."""
    if question_type(question)[0] == "when" and _only_names(short) and not holds_type("when", short):
        return False
    return not (asks_what_a_name_is(question) and _only_names(short))


def _only_names(text: str) -> bool:
    return all(w[:1].isupper() or not w[:1].isalpha() for w in text.split())


def _marked(text: str, span: tuple[int, int] | None) -> str:
    if not span:
        return text
    a, b = span
    return f"{text[:a]}**{text[a:b]}**{text[b:]}"


class ExtractiveAnswerer:
    """Quotes; never paraphrases. ``passages`` come ranked and already judged as supporting."""

    name = "extractive"

    def __init__(self, max_quotes: int = 2, span_min_p: dict[str, float] | None = None):
        self.max_quotes = max_quotes
        self._span_min_p = span_min_p

    @property
    def span_min_p(self) -> dict[str, float]:
        """The shipped model's short-answer thresholds unless given (read once)."""
        if self._span_min_p is None:
            from bot.knowledge.rerank import default_model

            self._span_min_p = default_model().span_min_p
        return self._span_min_p

    def answer(self, question: str, history: Sequence[Turn], passages: Sequence[Passage]) -> Answer:
        if not passages:
            return refusal(question, answerer=self.name)
        given = _given_before(question, history)
        qtype = question_type(question)[0]
        sure = self.span_min_p
        first, (short, span) = passages[0], _short(question, passages[0], given, sure)
        if not short and qtype in FACTOID:
            # A close runner-up that surely holds what was asked beats a top hit that doesn't.
            for p in passages[1:3]:
                if p.score >= first.score - RUNNER_UP_MARGIN:
                    s, sp = _short(question, p, given, sure)
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
