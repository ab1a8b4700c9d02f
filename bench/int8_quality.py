"""Does the int8 ONNX encoder retrieve as well as PyTorch fp32? Retrieval on qa-train's val split.

Every val passage of ../shared/qa-train is segmented as briefbot does (sentence datasets keep
their candidate sentences) and all of them are indexed together (one flat inner-product
index, ~1.5k passages); each answerable val question is embedded and the nearest sentences are
looked up. A hit: the sentence is in the question's own passage and contains one of its
answers verbatim (sentence datasets: is one of the correct candidates). Reported per encoder:
top-1, hit@5, MRR@10, overall and per dataset; and how far the int8 vectors are from fp32
(cosine per sentence and per question), which a ranker trained on fp32 features needs to know.
Documents are embedded in length-sorted batches as a build does, questions one at a time as
they are asked (int8 vectors depend slightly on their batch: dynamic quantization scales the
activations per batch).
Nothing here was tuned on val: the int8 export is the one the core makes.

    python bench/int8_quality.py --out bench/results/int8_quality.json
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import base_parser, emit, log, machine_info  # noqa: E402

import numpy as np  # noqa: E402

from bot.ingest.segment import segment  # noqa: E402
from bot.knowledge.embed import BATCH_SIZE, ENCODE_THREADS, Encoder  # noqa: E402
from bot.knowledge.onnx_query import OnnxQueryEncoder, export_dir  # noqa: E402


def _batched(model: OnnxQueryEncoder, texts: list[str]) -> np.ndarray:
    """Length-sorted batches, as ``Encoder.encode`` does."""
    order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
    out = np.empty((len(texts), 384), dtype=np.float32)
    for lo in range(0, len(texts), BATCH_SIZE):
        idx = order[lo : lo + BATCH_SIZE]
        out[idx] = model.encode([texts[i] for i in idx])
    return out

QA = Path(__file__).resolve().parents[2] / "shared" / "qa-train"
SENTENCE_SETS = {"wikiqa", "trecqa", "selqa_ass"}


def load(split: str, limit: int | None):
    passages = [p for p in map(json.loads, open(QA / "passages.jsonl", encoding="utf-8")) if p["split"] == split]
    if limit and limit < len(passages):  # a random sample (fixed seed), so every dataset is in it
        passages = random.Random(0).sample(passages, limit)
    keep = {p["id"] for p in passages}
    questions = [q for q in map(json.loads, open(QA / "questions.jsonl", encoding="utf-8"))
                 if q["passage_id"] in keep and q["answerable"] and q["answers"]]
    texts, owner = [], []
    for p in passages:
        if p["dataset"] in SENTENCE_SETS:
            sentences = [s for s in p["text"].split("\n") if s.strip()]
        else:
            sentences = [s.text for s in segment(p["text"])[0]]
        texts.extend(sentences)
        owner.extend([p["id"]] * len(sentences))
    return passages, questions, texts, owner


def gold_rows(q, texts, rows_of) -> set[int]:
    rows = rows_of[q["passage_id"]]
    if q["dataset"] in SENTENCE_SETS:
        return {r for r in rows if texts[r].strip() in {a.strip() for a in q["answers"]}}
    return {r for r in rows if any(a in texts[r] for a in q["answers"])}


def evaluate(qv: np.ndarray, dv: np.ndarray, questions, golds) -> dict:
    scores = qv @ dv.T
    top = np.argsort(-scores, axis=1)[:, :10]
    per = defaultdict(lambda: {"n": 0, "top1": 0, "hit5": 0, "mrr10": 0.0})
    tops = []
    for q, gold, ranked in zip(questions, golds, top):
        for key in ("all", q["dataset"]):
            s = per[key]
            s["n"] += 1
            s["top1"] += int(ranked[0] in gold)
            s["hit5"] += int(any(r in gold for r in ranked[:5]))
            s["mrr10"] += next((1 / (i + 1) for i, r in enumerate(ranked) if r in gold), 0.0)
        tops.append(int(ranked[0]))
    return {k: {"n": s["n"], "top1": round(s["top1"] / s["n"], 4), "hit5": round(s["hit5"] / s["n"], 4),
                "mrr10": round(s["mrr10"] / s["n"], 4)} for k, s in sorted(per.items())}, tops


def cosine_summary(a: np.ndarray, b: np.ndarray) -> dict:
    c = np.sum(a * b, axis=1)
    return {"mean": round(float(c.mean()), 5), "min": round(float(c.min()), 5),
            "p1": round(float(np.percentile(c, 1)), 5), "p5": round(float(np.percentile(c, 5)), 5)}


def main() -> None:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None, help="a random sample of N passages of the split (seed 0)")
    ap.add_argument("--reference", choices=("onnx", "torch"), default="onnx",
                    help="fp32 reference: the core's fp32 ONNX export (default) or sentence-transformers")
    args = ap.parse_args()
    passages, questions, texts, owner = load(args.split, args.limit)
    rows_of = defaultdict(list)
    for i, pid in enumerate(owner):
        rows_of[pid].append(i)
    golds = [gold_rows(q, texts, rows_of) for q in questions]
    keep = [i for i, g in enumerate(golds) if g]
    questions, golds = [questions[i] for i in keep], [golds[i] for i in keep]
    log(f"{len(passages)} passages, {len(texts)} sentences, {len(questions)} questions with a gold sentence")
    result = {"machine": machine_info(), "split": args.split, "passages": len(passages), "sentences": len(texts),
              "questions": len(questions), "encoders": {}}
    vectors = {}
    int8 = Encoder(backend="int8")
    int8.prepare()
    assert int8.uses_int8, int8.fallback_reason
    if args.reference == "torch":
        reference = Encoder(backend="torch").encode_torch
    else:  # the fp32 export: the same vectors as PyTorch (cosine > 0.9999, checked on export), faster
        fp32 = OnnxQueryEncoder(export_dir(int8.name), int8=False, threads=ENCODE_THREADS)
        reference = lambda texts: _batched(fp32, texts)  # noqa: E731
    one_fp32 = OnnxQueryEncoder(export_dir(int8.name), int8=False)
    ask = {"fp32": lambda q: one_fp32.encode([q])[0], "onnx_int8": int8.encode_query}
    for name, encode in (("fp32", reference), ("onnx_int8", int8.encode)):
        t0 = time.perf_counter()
        dv = encode(texts)  # documents in length-sorted batches, as a build embeds them
        seconds = time.perf_counter() - t0
        qv = np.stack([ask[name](q["question"]) for q in questions])  # one at a time, as asked
        metrics, tops = evaluate(qv, dv, questions, golds)
        vectors[name] = (dv, qv, tops)
        result["encoders"][name] = {"encoder": args.reference if name == "fp32" else int8.name,
                                    "encode_s": round(seconds, 1), "metrics": metrics}
        log(f"{name}: {json.dumps(metrics['all'])} ({seconds:.0f} s)")
    (d32, q32, t32), (d8, q8, t8) = vectors["fp32"], vectors["onnx_int8"]
    a, b = result["encoders"]["fp32"]["metrics"]["all"], result["encoders"]["onnx_int8"]["metrics"]["all"]
    result["int8_minus_fp32"] = {k: round(b[k] - a[k], 4) for k in ("top1", "hit5", "mrr10")}
    result["agreement"] = {"sentence_cosine": cosine_summary(d32, d8), "question_cosine": cosine_summary(q32, q8),
                           "same_top1": round(float(np.mean(np.array(t32) == np.array(t8))), 4)}
    result["machine"]["loadavg_end"] = list(__import__("os").getloadavg())
    emit(result, args.out)


if __name__ == "__main__":
    main()
