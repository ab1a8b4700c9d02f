"""Fits the short-answer span scorer (bot/answering/spans.py) on the train split of the SQuAD
and RealTimeQA rows of ../shared/qa-train and writes bot/models/spans.json (weights, per-type
thresholds, the training data's sha256 and the artifact's own sha256 in bot/models/spans.sha256).

    python bench/train_spans.py [--qa ../shared/qa-train] [--out bot/models/spans.json]

Deterministic (fixed seed, liblinear). Thresholds are chosen on out-of-fold predictions of the
train split, never on val: for each question type, the lowest threshold at which a given short
answer holds the gold answer at least PRECISION of the time. Prints JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.answering.spans import QTYPES, candidates, feature_names, features, question_type  # noqa: E402

SEED = 13  # liblinear is deterministic; the seed is recorded for the record
PRECISION = 0.7
DATASETS = ("squad2", "realtimeqa")
MAX_SENTENCE = 500  # a few hints are whole paragraphs: not a sentence to pick a span from


def oracle_rows(qa_dir: Path, split: str, datasets=DATASETS) -> list[dict]:
    """Answerable rows with the gold sentence (the answer-sentence hint) to pick a span from."""
    rows = []
    with open(qa_dir / "questions.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if q["split"] != split or q["dataset"] not in datasets or not q["answerable"]:
                continue
            hint = q.get("answer_sentence_hint") or ""
            if not hint or len(hint) > MAX_SENTENCE or not any(a in hint for a in q["answers"]):
                continue
            rows.append({"id": q["id"], "dataset": q["dataset"], "passage_id": q["passage_id"],
                         "question": q["question"], "answers": q["answers"], "sentence": hint})
    return rows


def label(cand_text: str, answers: list[str]) -> int:
    """A candidate is right when it holds a gold answer and is not much longer than it."""
    low = cand_text.lower()
    return int(any(a.lower() in low and len(cand_text.split()) <= len(a.split()) + 4 for a in map(gold, answers)))


def gold(answer: str) -> str:
    """A gold span without the sentence's full stop it sometimes carries ("Paris.")."""
    return answer.strip().rstrip(".,;:").strip() or answer


def matrix(rows: list[dict]):
    X, y, groups, qt, qid = [], [], [], [], []
    for n, r in enumerate(rows):
        qtype, head = question_type(r["question"])
        if qtype == "other":
            continue
        cands = candidates(r["sentence"])
        if not cands:
            continue
        for c, v in zip(cands, features(r["question"], qtype, head, r["sentence"], cands)):
            X.append(v)
            y.append(label(c.text, r["answers"]))
            groups.append(r["passage_id"])
            qt.append(qtype)
            qid.append(n)
    return np.array(X), np.array(y), np.array(groups), np.array(qt), np.array(qid)


def lowest_precise(scored: list[tuple[float, bool]], min_given: int) -> float:
    """The lowest threshold (0.05 to 0.95) at which at least ``min_given`` answers are given and
    >= PRECISION of them are right; 0.95 when none is."""
    for th in np.arange(0.05, 0.96, 0.01):
        given = [ok for p, ok in scored if p >= th]
        if len(given) >= min_given and sum(given) / len(given) >= PRECISION:
            return float(round(th, 2))
    return 0.95


def choose_thresholds(p: np.ndarray, y: np.ndarray, qt: np.ndarray, qid: np.ndarray, n_questions: dict) -> dict:
    """Per type: the lowest threshold whose given short answers are right >= PRECISION of the time."""
    best: dict[int, int] = {}
    for i in range(len(p)):
        if qid[i] not in best or p[i] > p[best[qid[i]]]:
            best[qid[i]] = i
    out, report = {}, {}
    for t in QTYPES:
        if t == "other":
            continue
        top = [(p[i], y[i]) for q, i in best.items() if qt[i] == t]
        chosen = lowest_precise(top, min_given=10)
        given = [ok for pr, ok in top if pr >= chosen]
        out[t] = chosen
        report[t] = {"questions": n_questions.get(t, 0), "threshold": chosen,
                     "coverage_oof": round(len(given) / max(1, n_questions.get(t, 0)), 3),
                     "precision_oof": round(sum(given) / len(given), 3) if given else None}
    out["default"] = 0.5
    return out, report


def reader_reads(cross, rows: list[dict]) -> list[tuple[str, float]]:
    """The cross-encoder's short answer and its probability for each row's gold sentence (none
    where the span is not of the kind the answerer takes, whatever its probability)."""
    from bot.answering.extractive import reader_span_fits

    out = []
    for r in rows:
        span = cross.read(r["question"], [r["sentence"]], [r["sentence"]])[1][0]
        fits = span is not None and reader_span_fits(r["question"], r["sentence"], (span.start, span.end))
        out.append((r["sentence"][span.start:span.end], span.probability) if fits else ("", 0.0))
    return out


def is_right(short: str, answers: list[str]) -> bool:
    return bool(short) and any(gold(a).lower() in short.lower() for a in answers)


def reader_thresholds(rows: list[dict], reads: list[tuple[str, float]]) -> tuple[dict[str, float], dict]:
    """Per question type, the lowest probability at which the cross-encoder's short answers are
    right >= PRECISION of the time ("default", over all rows, for a type with too few rows)."""
    scored: dict[str, list[tuple[float, bool]]] = {}
    for r, (short, p) in zip(rows, reads, strict=True):
        item = (p, is_right(short, r["answers"]))
        scored.setdefault(question_type(r["question"])[0], []).append(item)
        scored.setdefault("default", []).append(item)
    out, report = {}, {}
    for t, items in sorted(scored.items()):
        chosen = lowest_precise(items, min_given=20)
        given = [ok for p, ok in items if p >= chosen]
        out[t] = chosen
        report[t] = {"rows": len(items), "threshold": chosen, "coverage": round(len(given) / len(items), 3),
                     "precision": round(sum(given) / len(given), 3) if given else None,
                     "accuracy": round(sum(given) / len(items), 3)}
    return out, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qa", default=str(ROOT.parent / "shared" / "qa-train"))
    ap.add_argument("--out", default=str(ROOT / "bot" / "models" / "spans.json"))
    args = ap.parse_args()
    qa = Path(args.qa)
    rows = oracle_rows(qa, "train")
    X, y, groups, qt, qid = matrix(rows)
    n_questions: dict[str, int] = {}
    for r in rows:
        t = question_type(r["question"])[0]
        n_questions[t] = n_questions.get(t, 0) + 1
    clf = LogisticRegression(C=1.0, solver="liblinear", random_state=SEED, max_iter=1000)
    oof = cross_val_predict(clf, X, y, groups=groups, cv=GroupKFold(n_splits=5), method="predict_proba")[:, 1]
    thresholds, report = choose_thresholds(oof, y, qt, qid, n_questions)
    clf.fit(X, y)
    data_sha = hashlib.sha256((qa / "questions.jsonl").read_bytes()).hexdigest()
    model = {
        "model": "logistic regression over candidate-span features (bot/answering/spans.py)",
        "trained_on": f"qa-train questions.jsonl sha256 {data_sha}, split train, datasets {list(DATASETS)}",
        "seed": SEED,
        "target_precision": PRECISION,
        "features": feature_names(),
        "weights": [round(float(w), 6) for w in clf.coef_[0][:-1]] + [round(float(clf.coef_[0][-1] + clf.intercept_[0]), 6)],  # bias last
        "thresholds": thresholds,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(model, indent=1) + "\n"
    out.write_text(text, encoding="utf-8")
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    out.with_suffix(".sha256").write_text(f"{sha}  {out.name}\n", encoding="utf-8")
    print(json.dumps({"rows": len(rows), "candidates": int(len(y)), "positives": int(y.sum()),
                      "thresholds": report, "sha256": sha}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
