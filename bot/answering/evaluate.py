"""Scores an answerer on a QA file (the format of shared/eval/dev_briefing.jsonl), honestly.

A row has ``question`` and either ``answers`` (any one must be given), ``answers_all`` (all
must) or ``answerable: false`` (the bot must abstain); ``evidence`` lists substrings of which
the top citation must quote one; ``followup`` is asked after ``question`` in the same
conversation and is the one scored.

What counts (``score_item``): the *short answer* is the text before the first quote; the
*shown answer* is the short answer when there is one, else the top quote (citation [1]), so
a wrong short answer fails even when the quote below it holds the gold text. The old lenient
figure, gold text anywhere in the reply (quotes included), is kept only as
``answer_text_anywhere``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from bot.answering.spans import FACTOID, question_type
from bot.answering.types import Answer, Turn


@dataclass
class Outcome:
    id: str
    question: str
    answerable: bool
    answer: Answer
    answer_ok: bool  # the shown answer (short answer, else top quote) holds the gold text
    citation_ok: bool  # citation [1] quotes the gold evidence
    scores: dict = field(default_factory=dict)  # everything ``score_item`` measured

    @property
    def passed(self) -> bool:
        if not self.answerable:
            return self.answer.abstained
        return self.answer_ok and self.citation_ok


@dataclass
class EvalResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def metrics(self) -> dict:
        ans = [o for o in self.outcomes if o.answerable]
        una = [o for o in self.outcomes if not o.answerable]
        factoid = [o for o in ans if o.scores.get("factoid")]
        lat = [o.answer.latency_ms for o in self.outcomes]

        def share(xs) -> float | None:
            xs = list(xs)
            return round(sum(xs) / len(xs), 4) if xs else None

        return {
            "questions": len(self.outcomes),
            "answerable": len(ans),
            "unanswerable": len(una),
            "answer_accuracy": share(o.answer_ok for o in ans),
            "short_answer_accuracy": share(o.scores["short_ok"] for o in ans),
            "short_answer_accuracy_factoid": share(o.scores["short_ok"] for o in factoid),
            "factoid_questions": len(factoid),
            "short_answers_given": sum(bool(o.scores["short"]) for o in ans),
            "top_citation_accuracy": share(o.citation_ok for o in ans),
            "citation_accuracy": share(o.citation_ok for o in ans),  # = top_citation_accuracy, for older readers
            "abstention_on_unanswerable": share(o.answer.abstained for o in una),
            "false_abstentions": sum(o.answer.abstained for o in ans),
            "answer_text_anywhere": share(o.scores["anywhere_ok"] for o in ans),
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat else None,
            "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat else None,
            "answerers": sorted({o.answer.answerer for o in self.outcomes}),
        }

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]


def read_rows(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc})") from None
    return rows


def _holds(text: str, item: dict) -> bool:
    text = text.lower()
    if item.get("answers_all"):
        return all(a.lower() in text for a in item["answers_all"])
    return any(a.lower() in text for a in item.get("answers", []))


def _quotes_evidence(citation_text: str, evidence: list[str]) -> bool:
    """The cited sentence quotes the evidence, or lies inside it (a gold hint longer than one sentence)."""
    return any(ev in citation_text or (len(citation_text) >= 20 and citation_text in ev) for ev in evidence)


def score_item(answer: Answer, item: dict) -> dict:
    """Everything measured on one answer to one row (the bench calls this per item):
    ``answerable``, ``abstained``, ``false_abstention``, ``short`` (the short answer shown),
    ``short_ok`` (gold in it), ``answer_ok`` (gold in the short answer, else in the top quote),
    ``citation_ok`` (evidence in citation [1]), ``anywhere_ok`` (the old lenient figure: gold
    anywhere in the reply), ``factoid`` (a who/when/where/how-many/how-much question),
    ``latency_ms``."""
    answerable = item.get("answerable", True) is not False
    question = item.get("followup") or item.get("question", "")
    short = "" if answer.abstained else answer.answer.split("\u201c", 1)[0].strip()
    top = answer.citations[0].text if answer.citations and not answer.abstained else ""
    evidence = item.get("evidence") or []
    ok = answerable and not answer.abstained
    short_ok = ok and bool(short) and _holds(short, item)
    return {
        "answerable": answerable,
        "abstained": answer.abstained,
        "false_abstention": answerable and answer.abstained,
        "short": short,
        "short_ok": short_ok,
        "answer_ok": ok and (short_ok if short else _holds(top, item)),
        "citation_ok": ok and (_quotes_evidence(top, evidence) if evidence else bool(top)),
        "anywhere_ok": ok and _holds(answer.answer, item),
        "factoid": question_type(question)[0] in FACTOID,
        "latency_ms": answer.latency_ms,
    }


def score_row(row: dict, answer: Answer) -> Outcome:
    s = score_item(answer, row)
    return Outcome(row.get("id", ""), row.get("followup") or row["question"], s["answerable"], answer,
                   s["answer_ok"], s["citation_ok"], s)


def run_eval(ask: Callable[[str, list[Turn]], Answer], rows: Iterable[dict]) -> EvalResult:
    result = EvalResult()
    for row in rows:
        first = ask(row["question"], [])
        answer = first
        if row.get("followup"):
            answer = ask(row["followup"], [Turn(row["question"], first.answer)])
        result.outcomes.append(score_row(row, answer))
    return result
