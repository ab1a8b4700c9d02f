"""Answer quality in the retrieval setting: the val split of ../shared/qa-train and the dev files.

    python bench/quality.py [--work /work/data/rank] [--limit N] [--chat-style] [--no-readme]

- val: 593 val passages of ../shared/qa-train (all of SQuAD's, a sample of the others; 15% of
  them held out of the index: their questions are "not covered at all") plus 50 BBC articles,
  indexed together by briefbot's own build; the val questions on them (capped per dataset,
  bench/train_ranker.py VAL_QUESTIONS) go through ``Engine.ask`` (the full answering path) and
  ``Engine.retrieve`` (for top-1 sentence accuracy whether or not the bot answered).
- dev: ../shared/eval/dev_briefing.jsonl and bench/data/extra_dev.jsonl over the briefing,
  scored by bot.answering.evaluate.

Prints JSON to stdout and rewrites the "Quality" section of bench/README.md. Metrics:
top-1 = the first retrieved sentence is a gold answer sentence (answerable questions);
answerable refused / unanswerable refused = share of each the bot declined; short-answer =
a gold answer string inside ``Answer.short_answer`` (span datasets only); latency = ``ask``
wall time, p50/p95.

``--chat-style`` also asks every question again the way people type in chat
(``bench/chat_style.py``: lower case, no apostrophes or question mark, texting short forms, a
typo), with the clean question's gold, and reports those rows beside the clean ones.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chat_style import chat_style  # noqa: E402
from bench.qa_data import is_answer_sentence, sample, write_documents  # noqa: E402
from bench.train_ranker import (SEED, VAL_BBC_DISTRACTORS, VAL_HELD_OUT, VAL_PASSAGES, VAL_QUESTIONS,  # noqa: E402
                                interval95)

SPAN_SETS = ("squad2", "realtimeqa", "trecqa")
DEV_FILES = [ROOT / "tests" / "data" / "dev_briefing.jsonl", ROOT / "bench" / "data" / "extra_dev.jsonl"]
README = ROOT / "bench" / "README.md"
START, END = "<!-- quality:start -->", "<!-- quality:end -->"


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def score_questions(engine, qa, questions) -> list[dict]:
    """One record per question: dataset, answerable, top1, refused, short_ok, latency."""
    out = []
    for i, q in enumerate(questions):
        doc = qa.passages[q["passage_id"]]["doc"]
        found = engine.retrieve(q["question"])
        top1 = bool(found.passages) and is_answer_sentence(q, doc, found.passages[0].document, found.passages[0].text)
        t = time.perf_counter()
        answer = engine.ask(q["question"])
        ms = (time.perf_counter() - t) * 1000
        short = (answer.short_answer or "").lower()
        answerable = bool(q["answerable"]) and q["indexed"]
        out.append({"dataset": q["dataset"], "answerable": answerable, "held_out": not q["indexed"],
                    "article_indexed": q["article_indexed"],
                    "top1": top1, "refused": answer.abstained,
                    "short_ok": (not answer.abstained) and bool(short) and any(a.lower() in short for a in q["answers"]),
                    "ms": ms})
        if (i + 1) % 250 == 0:
            log(f"  {i + 1}/{len(questions)}")
    return out


def summarise(recs: list[dict]) -> dict:
    ans = [r for r in recs if r["answerable"]]
    una = [r for r in recs if not r["answerable"]]
    spans = [r for r in ans if r["dataset"] in SPAN_SETS]
    mean = lambda xs: round(statistics.fmean(xs), 3) if xs else None  # noqa: E731
    return {"questions": len(recs), "answerable": len(ans), "unanswerable": len(una),
            "top1": mean([r["top1"] for r in ans]),
            "answerable_refused": mean([r["refused"] for r in ans]),
            "unanswerable_refused": mean([r["refused"] for r in una]),
            "short_answer_acc": mean([r["short_ok"] for r in spans]),
            "top1_interval95": interval95(np.array([r["top1"] for r in ans], dtype=bool)),
            "unanswerable_refused_interval95": interval95(np.array([r["refused"] for r in una], dtype=bool))}


def chatty(questions: list[dict]) -> list[dict]:
    return [{**q, "question": chat_style(q["question"], q.get("id") or n)} for n, q in enumerate(questions)]


def val_quality(work: Path, limit: int | None, chat: bool = False) -> tuple[dict, list[float]]:
    from bot.answering.engine import Engine
    from bot.config import Settings

    qa = sample("val", VAL_PASSAGES, VAL_HELD_OUT, SEED, max_questions=VAL_QUESTIONS)
    docs = work / "val_docs"
    write_documents(qa, docs, bbc_articles=VAL_BBC_DISTRACTORS, seed=SEED)
    engine = Engine(Settings(documents_dir=docs, index_dir=work / "val_index"))
    questions = qa.questions
    if limit:
        rng = np.random.default_rng(SEED)
        questions = [questions[i] for i in sorted(rng.choice(len(questions), size=min(limit, len(questions)), replace=False))]
    engine.ask("warm-up question")
    recs = score_questions(engine, qa, questions)
    table = {"all": summarise(recs)}
    for ds in sorted({r["dataset"] for r in recs}):
        table[ds] = summarise([r for r in recs if r["dataset"] == ds])
    held = [r for r in recs if r["held_out"]]
    table["(held-out passages)"] = summarise(held)
    table["(held out, article absent)"] = summarise([r for r in held if not r["article_indexed"]])
    table["(held out, other passages of its article indexed)"] = summarise([r for r in held if r["article_indexed"]])
    if chat:
        typed = score_questions(engine, qa, chatty(questions))
        table["chat-typed: all"] = summarise(typed)
        for ds in sorted({r["dataset"] for r in typed}):
            table[f"chat-typed: {ds}"] = summarise([r for r in typed if r["dataset"] == ds])
    return table, [r["ms"] for r in recs]


def dev_quality(work: Path, chat: bool = False) -> dict:
    from bot.answering.engine import Engine
    from bot.answering.evaluate import read_rows, run_eval
    from bot.config import Settings

    engine = Engine(Settings(documents_dir=ROOT / "documents", index_dir=work / "brief_index"))
    out = {}
    for f in DEV_FILES:
        if f.is_file():
            rows = read_rows(f)
            out[f.name] = run_eval(engine.ask, rows).metrics()
            if chat:
                typed = [{**r, **{k: chat_style(r[k], f"{r.get('id', n)}-{k}") for k in ("question", "followup") if r.get(k)}}
                         for n, r in enumerate(rows)]
                out[f"{f.name}, chat-typed"] = run_eval(engine.ask, typed).metrics()
    return out


def markdown(val: dict, lat: list[float], dev: dict) -> str:
    lines = [START, "", "## Quality", "",
             "`python bench/quality.py` (val split of `../shared/qa-train` in the retrieval setting: 593 val",
             "passages, 15% of them held out of the index, plus 50 BBC articles, indexed together; each",
             "question through `Engine.ask`). Top-1 counts answerable questions whose first retrieved",
             "sentence is a gold answer sentence; short-answer is over the span datasets (SQuAD, RealTimeQA, TrecQA).",
             "The model, its threshold, PR curve and ablations: `docs/quality.md`. \"chat-typed\" rows (`--chat-style`)",
             "ask the same questions again retyped the way people chat (`bench/chat_style.py`).",
             "", "| set | questions | answerable | top-1 | answerable refused | unanswerable refused | short answer |",
             "|---|---|---|---|---|---|---|"]
    f = lambda v: "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    for name, m in val.items():
        lines.append(f"| {name} | {m['questions']} | {m['answerable']} | {f(m['top1'])} | {f(m['answerable_refused'])} "
                     f"| {f(m['unanswerable_refused'])} | {f(m['short_answer_acc'])} |")
    if "all" in val:
        top, una = val["all"]["top1_interval95"], val["all"]["unanswerable_refused_interval95"]
        lines += ["", f"95% intervals of the first row from the draw of questions alone (Wilson): top-1 "
                      f"{top[0]:.3f}-{top[1]:.3f}, unanswerables refused {una[0]:.3f}-{una[1]:.3f}."]
    if lat:
        lines += ["", f"`ask` latency over the val questions: p50 {np.percentile(lat, 50):.1f} ms, "
                      f"p95 {np.percentile(lat, 95):.1f} ms ({os.cpu_count()} cores, load average "
                      f"{os.getloadavg()[0]:.1f} at the end of the run)."]
    if dev:
        lines += ["", "| dev file | questions | answer acc. | citation acc. | unanswerables refused | false refusals |",
                  "|---|---|---|---|---|---|"]
        for name, m in dev.items():
            lines.append(f"| {name} | {m['questions']} | {f(m['answer_accuracy'])} | {f(m['citation_accuracy'])} "
                         f"| {f(m['abstention_on_unanswerable'])} | {m['false_abstentions']} |")
    lines += ["", END]
    return "\n".join(lines)


def write_readme(section: str) -> None:
    text = README.read_text(encoding="utf-8")
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: section, text, flags=re.DOTALL)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    README.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/work/data/rank"))
    ap.add_argument("--limit", type=int, default=None, help="score a fixed random sample of N val questions")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--skip-val", action="store_true")
    ap.add_argument("--chat-style", action="store_true", help="also score every question typed the way people chat")
    args = ap.parse_args()
    val, lat = ({}, []) if args.skip_val else val_quality(args.work, args.limit, args.chat_style)
    dev = dev_quality(args.work, args.chat_style)
    result = {"val": val, "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1) if lat else None,
                                         "p95": round(float(np.percentile(lat, 95)), 1) if lat else None},
              "dev": dev}
    print(json.dumps(result, indent=1))
    if not args.no_readme:
        write_readme(markdown(val, lat, dev))


if __name__ == "__main__":
    main()
