"""The values that cross the boundary between the core and its surfaces (CLI, Discord).

They are plain dataclasses so every surface can render them and ``to_json`` gives the
documented ``--json`` contract without any surface knowing how answers are made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence

from bot.answering.conversation import Turn
from bot.knowledge.passage import Passage


@dataclass(frozen=True)
class Citation:
    n: int
    document: str
    title: str
    sentence_id: str
    text: str
    start: int
    end: int
    location: str = ""
    heading: str = ""
    closest: bool = False  # offered with a refusal as the nearest passage: NOT evidence for an answer

    def to_json(self) -> dict:
        data = {
            "n": self.n,
            "document": self.document,
            "title": self.title,
            "sentence_id": self.sentence_id,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "location": self.location,  # "page 3", "table 1, row 4", "paragraph 2, sentence 1"
            "section": self.heading,
        }
        if self.closest:
            data["not_an_answer"] = True
        return data


@dataclass
class Answer:
    question: str
    answer: str  # the text shown to the user, with [n] markers
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    index_version: str = ""
    latency_ms: float = 0.0
    answerer: str = "extractive"
    short_answer: str = ""  # the typed answer put first ("November 12th"), "" if none
    note: str = ""  # e.g. why an LLM answer fell back to the extractive one
    error: str = ""  # set when the question itself was unusable (empty, too long, ...)
    id: str = ""  # the engine's id for this answer; logs on every surface name it
    closest: Citation | None = None  # with a refusal: the nearest passage, labelled as not an answer
    understood_as: str = ""  # a follow-up rewritten as a standalone question, when that differs

    @property
    def standalone(self) -> str:
        """The question as answered: the rewritten follow-up, or the question itself."""
        return self.understood_as or self.question

    def to_json(self) -> dict:
        data = {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "index_version": self.index_version,
            "latency_ms": round(self.latency_ms, 2),
            "answerer": self.answerer,
        }
        if self.understood_as:
            data["understood_as"] = self.understood_as
        if self.closest is not None:
            data["closest"] = self.closest.to_json()  # carries "not_an_answer": true
        if self.note:
            data["note"] = self.note
        if self.error:
            data["error"] = self.error
        return data


class Answerer(Protocol):
    """Turns retrieved passages into an answer; the extractive and LLM answerers both fit."""

    name: str

    def answer(self, question: str, history: Sequence[Turn], passages: Sequence[Passage]) -> Answer: ...


__all__ = ["Turn", "Passage", "Citation", "Answer", "Answerer", "asdict"]
