"""Evaluate the cross-encoder experiment: val top-1 of the LR ranker vs its top-K reordered by
the cross-encoder (alone, and CE logit + w * LR logit with w chosen on the train held-out
slice), then export to ONNX int8 and time it on K candidates (1 and 2 threads). JSON out.

    python bench/eval_cross_encoder.py --ce /work/data/xenc/ce --k 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train_cross_encoder import MAX_LEN, held_out, sentence_side  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def rows(path: Path, dev_only: bool = False) -> list[dict]:
    out = [json.loads(l) for l in open(path, encoding="utf-8")]
    return [r for r in out if held_out(r["passage_id"])] if dev_only else out


class Onnx:
    def __init__(self, model: Path, tokenizer: Path, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.s = ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])
        self.names = {i.name for i in self.s.get_inputs()}
        self.tok = Tokenizer.from_file(str(tokenizer))
        self.tok.enable_truncation(MAX_LEN, strategy="only_second")
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def score(self, q: str, sents: list[str]) -> np.ndarray:
        enc = self.tok.encode_batch([(q, s) for s in sents])
        feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
        return self.s.run(None, {k: v for k, v in feed.items() if k in self.names})[0][:, 0]


def torch_scorer(ce: Path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(str(ce))
    model = AutoModelForSequenceClassification.from_pretrained(str(ce)).eval()

    def score(q, sents):
        enc = tok([q] * len(sents), sents, truncation="only_second", max_length=MAX_LEN, padding=True,
                  return_tensors="pt")
        with torch.no_grad():
            return model(**enc).logits[:, 0].numpy()
    return model, tok, score


def scored(rs, score, k):
    for r in rs:
        c = r["cands"][:k]
        r["ce"] = score(r["question"], [sentence_side(x) for x in c]) if c else np.zeros(0)
    return rs


def top1(rs, k, w=None):
    """Share of answerable, indexed questions whose first sentence is gold; w None = LR only."""
    ans = [r for r in rs if r["answerable"] and r["indexed"]]
    hit = 0
    for r in ans:
        c = r["cands"][:k]
        if not c:
            continue
        if w is None:
            i = 0
        else:
            lr = np.array([x["lr"] for x in c])
            i = int(np.argmax(r["ce"] + w * lr))
        hit += c[i]["gold"]
    return hit / len(ans) if ans else 0.0


def by_dataset(rs, k, w):
    out = {}
    for ds in sorted({r["dataset"] for r in rs}):
        sub = [r for r in rs if r["dataset"] == ds]
        n = sum(r["answerable"] and r["indexed"] for r in sub)
        out[ds] = {"answerable": n, "lr": round(top1(sub, k), 3), "ce": round(top1(sub, k, 0.0), 3),
                   "combined": round(top1(sub, k, w), 3)}
    return out


def export(model, tok, folder: Path) -> dict:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tok(["what is it?"] * 2, ["It is a thing.", "Another sentence here."], padding=True, return_tensors="pt")

    class Logit(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    fp32, int8 = folder / "ce-fp32.onnx", folder / "ce-int8.onnx"
    with torch.no_grad():
        torch.onnx.export(Logit(model.eval()), tuple(sample[n] for n in names), str(fp32), input_names=names,
                          output_names=["logit"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "logit": {0: "batch"}})
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    tok.backend_tokenizer.save(str(folder / "tokenizer.json"))
    return {"fp32_mb": round(fp32.stat().st_size / 2**20, 1), "int8_mb": round(int8.stat().st_size / 2**20, 1)}


def latency(sess: Onnx, rs, k, n=150):
    ts = []
    for r in rs[:n]:
        c = r["cands"][:k]
        if not c:
            continue
        t = time.perf_counter()
        sess.score(r["question"], [sentence_side(x) for x in c])
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return {"n": len(ts), "p50_ms": round(statistics.median(ts), 1), "p95_ms": round(ts[int(0.95 * (len(ts) - 1))], 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ce", type=Path, default=Path("/work/data/xenc/ce"))
    ap.add_argument("--data", type=Path, default=Path("/work/data/xenc"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    model, tok, _score = torch_scorer(args.ce)
    res = {"k": args.k, "onnx": export(model, tok, args.data / "onnx")}
    del model
    # only answerable, indexed questions can change top-1; the CPU is too scarce to score the rest
    keep = lambda rs: [r for r in rs if r["answerable"] and r["indexed"]][: args.limit or None]  # noqa: E731
    dev = keep(rows(args.data / "train_cands.jsonl", dev_only=True))
    val = keep(rows(args.data / "val_cands.jsonl"))
    res.update(dev_questions=len(dev), val_questions=len(val))
    sess = Onnx(args.data / "onnx" / "ce-int8.onnx", args.data / "onnx" / "tokenizer.json", 2)
    t = time.perf_counter()
    scored(dev, sess.score, args.k)
    w = max(WEIGHTS, key=lambda w: (top1(dev, args.k, w), -w))
    res["train_dev"] = {"lr": round(top1(dev, args.k), 4), "by_w": {str(x): round(top1(dev, args.k, x), 4) for x in WEIGHTS},
                        "chosen_w": w}
    print(json.dumps(res), flush=True)
    scored(val, sess.score, args.k)
    res["score_s"] = round(time.perf_counter() - t, 1)
    res["val_int8"] = {"lr": round(top1(val, args.k), 4), "ce": round(top1(val, args.k, 0.0), 4),
                       "combined": round(top1(val, args.k, w), 4),
                       "by_w": {str(x): round(top1(val, args.k, x), 4) for x in WEIGHTS},
                       "oracle_at_k": round(float(np.mean([any(c["gold"] for c in r["cands"][: args.k]) for r in val])), 4)}
    res["val_by_dataset"] = by_dataset(val, args.k, w)
    print(json.dumps(res), flush=True)
    with open(args.data / "val_scores.jsonl", "w") as f:
        for r in val + dev:
            f.write(json.dumps({"id": r["id"], "ce": [float(v) for v in r["ce"]]}) + "\n")
    for threads in (1, 2):
        sess = Onnx(args.data / "onnx" / "ce-int8.onnx", args.data / "onnx" / "tokenizer.json", threads)
        for k in sorted({args.k, 8}):
            res[f"latency_int8_{threads}t_k{k}"] = latency(sess, val, k, n=80)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
