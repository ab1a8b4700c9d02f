"""Scores an answerer on a QA file (the format of shared/eval/dev_briefing.jsonl).

A row has ``question`` and either ``answers`` (any one must appear in the answer),
``answers_all`` (all must) or ``answerable: false`` (the bot must abstain); ``evidence`` lists
substrings of which a correct citation quotes one; ``followup`` is asked after ``question`` in
the same conversation and is the one scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from bot.answering.types import Answer, Turn


@dataclass
class Outcome:
    id: str
    question: str
    answerable: bool
    answer: Answer
    answer_ok: bool
    citation_ok: bool

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
        lat = [o.answer.latency_ms for o in self.outcomes]

        def share(xs) -> float | None:
            xs = list(xs)
            return round(sum(xs) / len(xs), 4) if xs else None

        return {
            "questions": len(self.outcomes),
            "answerable": len(ans),
            "unanswerable": len(una),
            "answer_accuracy": share(o.answer_ok for o in ans),
            "citation_accuracy": share(o.citation_ok for o in ans),
            "abstention_on_unanswerable": share(o.answer.abstained for o in una),
            "false_abstentions": sum(o.answer.abstained for o in ans),
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


def score_row(row: dict, answer: Answer) -> Outcome:
    answerable = row.get("answerable", True) is not False
    text = answer.answer.lower()
    if answer.abstained:
        answer_ok = citation_ok = False
    else:
        if row.get("answers_all"):
            answer_ok = all(a.lower() in text for a in row["answers_all"])
        else:
            answer_ok = any(a.lower() in text for a in row.get("answers", []))
        evidence = row.get("evidence", [])
        citation_ok = any(ev in c.text for c in answer.citations for ev in evidence) if evidence else bool(answer.citations)
    return Outcome(row.get("id", ""), row.get("followup") or row["question"], answerable, answer, answer_ok, citation_ok)


def run_eval(ask: Callable[[str, list[Turn]], Answer], rows: Iterable[dict]) -> EvalResult:
    result = EvalResult()
    for row in rows:
        first = ask(row["question"], [])
        answer = first
        if row.get("followup"):
            answer = ask(row["followup"], [Turn(row["question"], first.answer)])
        result.outcomes.append(score_row(row, answer))
    return result
