"""Where each QA question's best passage lands against the support threshold.

    python bench/support_report.py --index INDEX_DIR [--documents DIR] [FILE.jsonl ...]

Prints one line per question, sorted by support: answerable (A) or not (U), whether the top
passage holds the gold evidence, and whether the bot answered or abstained. It is the view
used to set SUPPORT and the penalties in bot/knowledge/search.py: answerable questions should
sit above the threshold and unanswerable ones below, with a margin on both sides.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.answering.engine import Engine
from bot.answering.evaluate import read_rows
from bot.answering.types import Turn
from bot.config import Settings
from bot.knowledge.search import SUPPORT

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILES = [ROOT.parent / "shared" / "eval" / "dev_briefing.jsonl", ROOT / "bench" / "data" / "extra_dev.jsonl"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--documents", type=Path, default=ROOT / "documents")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    engine = Engine(Settings(documents_dir=args.documents, index_dir=args.index))
    lines = []
    for row in (r for f in args.files if f.is_file() for r in read_rows(f)):
        history, question = [], row["question"]
        if row.get("followup"):
            first = engine.ask(question)
            history, question = [Turn(question, first.answer)], row["followup"]
        found = engine.retrieve(question, history)
        evidence = row.get("evidence", [])
        top_ok = bool(found.passages) and any(e in found.passages[0].text for e in evidence)
        answer = engine.ask(question, history)
        lines.append({"id": row.get("id", ""), "support": found.confidence,
                      "answerable": row.get("answerable", True) is not False, "top_has_evidence": top_ok,
                      "abstained": answer.abstained, "question": question})
    lines.sort(key=lambda x: x["support"])
    if args.json:
        print(json.dumps({"threshold": SUPPORT, "questions": lines}, indent=1))
        return
    for x in lines:
        mark = "A" if x["answerable"] else "U"
        print(f"{x['support']:6.3f} {mark} {'top-ok ' if x['top_has_evidence'] else 'top-bad'} "
              f"{'abstained' if x['abstained'] else 'answered '} {x['id']:>4} {x['question'][:70]}")
    print(f"threshold SUPPORT = {SUPPORT}")


if __name__ == "__main__":
    main()
