"""``briefbot``: index, ask, chat, eval and serve from a terminal.

Heavy imports (torch, FAISS, discord.py) happen inside the commands that need them, so
``briefbot --help`` is instant and ``ask`` pays only for what answering needs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

EXAMPLE = 'briefbot ask "When was Umerov informed?"'


def _settings(args):
    from bot.config import Settings

    return Settings.from_env(args.env_file, documents_dir=args.documents, index_dir=args.index)


def _engine(args):
    from bot.answering.engine import Engine

    return Engine(_settings(args))


def _ensure_index(engine, quiet: bool = False) -> None:
    """Build on first use so ``ask`` works on a fresh checkout with no setup step."""
    def announce(why: str) -> None:
        if not quiet:
            print(f"({why})", file=sys.stderr, flush=True)

    report = engine.load_or_build(progress=not quiet, announce=announce)
    if report is not None and not quiet:
        print(report.summary(), file=sys.stderr)


def _plain(text: str, tty: bool) -> str:
    return re.sub(r"\*\*(.+?)\*\*", "\033[1m\\1\033[0m" if tty else "\\1", text)


def format_answer(answer, tty: bool = False) -> str:
    lines = [_plain(answer.answer, tty)]
    if getattr(answer, "understood_as", ""):
        lines.insert(0, f"(understood as: {answer.understood_as})")
    if answer.note:
        lines.append(f"({answer.note})")
    for c in answer.citations:
        where = ", ".join(x for x in (c.heading and f"section \u201c{c.heading}\u201d", c.location) if x)
        lines.append("")
        lines.append(f"[{c.n}] {c.title} ({c.document}, {where})")
        lines.append(f"    \u201c{c.text}\u201d")
    return "\n".join(lines)


def cmd_index(args) -> int:
    engine = _engine(args)
    report = engine.build(rebuild=args.rebuild, progress=not args.json)
    print(json.dumps(report.to_json(), indent=1) if args.json else report.summary())
    return 1 if report.failed and not (report.added or report.changed or report.unchanged) else 0


def _history(raw) -> list:
    from bot.answering.types import Turn

    turns = []
    for item in raw or []:
        if isinstance(item, dict) and isinstance(item.get("question"), str):
            turns.append(Turn(item["question"], str(item.get("answer", ""))))
    return turns


def cmd_ask(args) -> int:
    engine = _engine(args)
    _ensure_index(engine, quiet=args.json or args.jsonl)
    if args.jsonl:
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("expected an object")
            except ValueError as exc:
                print(json.dumps({"error": f"line {n}: not a JSON object ({exc})"}), flush=True)
                continue
            answer = engine.ask(req.get("question", ""), _history(req.get("history")))
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        return 0
    if not args.question:
        print(f"briefbot ask: give a question, e.g. {EXAMPLE}", file=sys.stderr)
        return 2
    answer = engine.ask(" ".join(args.question))
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False, indent=1))
    else:
        print(format_answer(answer, tty=sys.stdout.isatty()))
    return 1 if answer.error else 0


def cmd_chat(args) -> int:
    from bot.answering.types import Turn

    engine = _engine(args)
    _ensure_index(engine)
    history: list[Turn] = []
    print("Ask about the briefings. Empty line or Ctrl-D to quit; 'new' starts a new conversation.")
    while True:
        try:
            question = input("\n? ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        if question.lower() == "new":
            history.clear()
            print("(new conversation)")
            continue
        answer = engine.ask(question, history)
        print(format_answer(answer, tty=sys.stdout.isatty()))
        if not answer.error:
            history.append(Turn(answer.question, answer.answer))


def cmd_eval(args) -> int:
    from bot.answering.evaluate import read_rows, run_eval

    engine = _engine(args)
    _ensure_index(engine, quiet=args.json)
    try:
        rows = read_rows(Path(args.file))
    except (OSError, ValueError) as exc:
        print(f"briefbot eval: {exc}", file=sys.stderr)
        return 2
    engine.ask("warm-up question")  # load the model before timing
    result = run_eval(engine.ask, rows)
    metrics = result.metrics()
    metrics["index_version"] = engine.status().version
    if args.json:
        print(json.dumps({"metrics": metrics, "failures": [
            {"id": o.id, "question": o.question, "answer": o.answer.answer,
             "scores": {k: v for k, v in o.scores.items() if k != "latency_ms"}} for o in result.failures()]}, indent=1))
        return 0
    for o in result.failures():
        print(f"miss {o.id}: {o.question}\n     -> {o.answer.answer[:200]}")
    for key, value in metrics.items():
        print(f"{key:28} {value}")
    print("(answer_accuracy: gold in the short answer, else in the top quote; short answers count only the text "
          "before the first quote; answer_text_anywhere is the old lenient figure, quotes included)")
    return 0


def cmd_status(args) -> int:
    engine = _engine(args)
    _ensure_index(engine)
    st = engine.status()
    print(json.dumps(st.__dict__, indent=1) if args.json else
          f"index {st.version}, built {st.built_at}\n{st.documents} documents, {st.sentences} sentences\nmodel {st.model} ({st.dimension} dimensions)")
    if not args.json:
        for d in engine.sources():
            print(f"  {d.name}: {d.title} ({d.sentences} sentences, indexed {d.indexed_at})")
    return 0


def cmd_serve(args) -> int:
    from bot.surfaces.discord.serve import serve

    return serve(_settings(args))


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--documents", metavar="DIR", help="folder of briefings (default: documents/, or BRIEFBOT_DOCUMENTS)")
    common.add_argument("--index", metavar="DIR", help="index folder (default: index/, or BRIEFBOT_INDEX)")
    common.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")

    parser = argparse.ArgumentParser(prog="briefbot", description="Answers questions about your briefings, citing the exact sentences.",
                                     epilog=f"example: {EXAMPLE}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common], help="build or update the index and print what changed")
    p.add_argument("--rebuild", action="store_true", help="re-read every document (embeddings still come from the cache)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", parents=[common], help="answer one question (or JSON lines from stdin with --jsonl)")
    p.add_argument("question", nargs="*")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--jsonl", action="store_true", help='read {"question", "history"} objects from stdin, one per line')
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", parents=[common], help="a conversation in the terminal, with follow-ups")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", parents=[common], help="score answers on a QA file (JSON lines)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("status", parents=[common], help="index version, counts and documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("serve", parents=[common], help="run the Discord bot (needs DISCORD_TOKEN)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("bot").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: the reader is gone, nothing to report
        sys.stderr.close()
        return 0
    except Exception as exc:
        from bot.answering.llm import LLMUnavailable
        from bot.knowledge.build import BuildBusy

        if isinstance(exc, (BuildBusy, FileNotFoundError, ValueError, LLMUnavailable)):
            print(f"briefbot {args.command}: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
