"""Dump the LR ranker's top-K candidates (text, context, LR logit, label) for the cross-encoder
experiment: train questions from the train index, val questions from the val index.

    python bench/xenc_candidates.py [--work /work/data/rank] [--out /work/data/xenc] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.qa_data import is_answer_sentence, sample  # noqa: E402
from bench.train_ranker import (SEED, TRAIN_HELD_OUT, TRAIN_PASSAGES, TRAIN_QUESTIONS, VAL_HELD_OUT,  # noqa: E402
                                VAL_PASSAGES, VAL_QUESTIONS)


def context(snap, row: int) -> dict:
    doc = snap.sentences.doc
    n = len(snap.sentences)
    prev = snap.sentences.texts[row - 1] if row > 0 and doc[row - 1] == doc[row] else ""
    nxt = snap.sentences.texts[row + 1] if row + 1 < n and doc[row + 1] == doc[row] else ""
    return {"text": snap.sentences.texts[row], "heading": snap.sentences.headings[row],
            "title": snap.documents[int(doc[row])].title, "prev": prev, "next": nxt}


def dump(name, qa, index_dir, encoder, k, out):
    from bot.knowledge.rerank import default_model
    from bot.knowledge.search import Searcher
    from bot.knowledge.store import load_snapshot

    snap = load_snapshot(index_dir)
    searcher = Searcher(snap, encoder)
    model = default_model()
    names = [d.name for d in snap.documents]
    t = time.perf_counter()
    with open(out, "w", encoding="utf-8") as f:
        for qi, q in enumerate(qa.questions):
            rows, x = searcher.candidates(q["question"])
            doc = qa.passages[q["passage_id"]]["doc"]
            y_all = [is_answer_sentence(q, doc, names[int(snap.sentences.doc[r])], snap.sentences.texts[r]) for r in rows]
            logits = model.ranker.logit(x) if len(rows) else np.zeros(0)
            order = np.argsort(-logits, kind="stable")[:k]
            cands = [dict(context(snap, rows[i]), lr=float(logits[i]), gold=bool(y_all[i])) for i in order]
            f.write(json.dumps({"id": q["id"], "dataset": q["dataset"], "passage_id": q["passage_id"],
                                "question": q["question"], "answerable": bool(q.get("answerable")),
                                "indexed": bool(q.get("indexed", True)), "any_gold": bool(any(y_all)),
                                "cands": cands}) + "\n")
            if (qi + 1) % 200 == 0:
                print(f"{name} {qi + 1}/{len(qa.questions)} {(time.perf_counter() - t) / (qi + 1) * 1000:.0f} ms/q",
                      file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/work/data/rank"))
    ap.add_argument("--out", type=Path, default=Path("/work/data/xenc"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--split", default="both")
    args = ap.parse_args()
    from bot.knowledge import onnx_query
    from bot.knowledge.embed import Encoder

    encoder = Encoder()
    onnx_query.export(encoder)
    encoder.use_query_model(onnx_query.export_dir(encoder.name))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.split in ("both", "val"):
        va = sample("val", VAL_PASSAGES, VAL_HELD_OUT, SEED, max_questions=VAL_QUESTIONS)
        dump("val", va, args.work / "val_index", encoder, args.k, args.out / "val_cands.jsonl")
    if args.split in ("both", "train"):
        tr = sample("train", TRAIN_PASSAGES, TRAIN_HELD_OUT, SEED, max_questions=TRAIN_QUESTIONS)
        dump("train", tr, args.work / "train_index", encoder, args.k, args.out / "train_cands.jsonl")


if __name__ == "__main__":
    main()
