"""``briefbot``: index, ask, chat, eval and serve from a terminal.

Heavy imports (torch, FAISS, discord.py) happen inside the commands that need them, so
``briefbot --help`` is instant and ``ask`` pays only for what answering needs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from bot.ingest.names import display_name

EXAMPLE = 'briefbot ask "When was Umerov informed?"'
CHAT_HELP = ("Ask about the briefings; follow-up questions use the earlier turns.\n"
             "Commands: 'new' starts a new conversation, 'help' shows this, 'quit' (or an empty line, Ctrl-D) leaves.")


class UsageError(Exception):
    """An operator mistake: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _settings(args):
    from bot.config import Settings

    settings = Settings.from_env(args.env_file or ".env", required=args.env_file is not None,
                                 documents_dir=args.documents, index_dir=args.index)
    if getattr(args, "command", "") in ("serve", "health"):
        if getattr(args, "collection", None):
            raise ValueError("--collection is for index, ask, chat, eval and status; serve answers each server "
                             "from its own collection")
        return settings.with_(collection="")
    name = getattr(args, "collection", None) or settings.collection
    if name:  # one server's (or the shared) collection: its own documents/ and index/ folders
        from bot.answering.collections import settings_for

        settings = settings_for(settings, name)
    return settings


def _engine(args):
    from bot.answering.engine import Engine

    return Engine(_settings(args))


def _ensure_index(engine, quiet: bool = False) -> None:
    """Build on first use so ``ask`` works on a fresh checkout with no setup step; an index
    with no documents is an error worth a line (every answer would be "don't say")."""
    def announce(why: str) -> None:  # stderr even with --json: stdout stays the JSON channel
        print(f"({why})", file=sys.stderr, flush=True)

    report = engine.load_or_build(progress=not quiet, announce=announce)
    if report is not None and not quiet:
        print(report.summary(), file=sys.stderr)
    if engine.status().documents == 0:
        raise UsageError(_empty_message(engine.settings))


def _empty_message(settings) -> str:
    return (f"the index in {settings.index_dir}/ has no documents: put briefings (.txt, .md, .html, .pdf, .docx) "
            f"in {settings.documents_dir}/ (or pass --documents DIR) and run: briefbot index")


def _real_failures(report) -> list:
    """Failed documents, not counting the ones skipped on purpose (duplicates, unsupported types)."""
    return [(n, r) for n, r in report.failed if "skipped" not in r]


def _plain(text: str, tty: bool) -> str:
    return re.sub(r"\*\*(.+?)\*\*", "\033[1m\\1\033[0m" if tty else "\\1", text)


def format_answer(answer, tty: bool = False) -> str:
    """The answer, then one line per citation; a quote already in the answer is not repeated."""
    lines = [_plain(answer.answer, tty)]
    if getattr(answer, "understood_as", ""):
        lines.insert(0, f"(understood as: {answer.understood_as})")
    if answer.note:
        lines.append(f"({answer.note})")
    plain_answer = _plain(answer.answer, False)
    for c in answer.citations:
        where = ", ".join(x for x in (c.heading and f"section \u201c{c.heading}\u201d", c.location) if x)
        lines.append("")
        lines.append(f"[{c.n}] {c.title} ({display_name(c.document)}, {where})")
        if c.text not in plain_answer:
            lines.append(f"    \u201c{c.text}\u201d")
    return "\n".join(lines)


def _language_note(answer) -> None:
    """A question in another language gets a word on why it was not answered."""
    from bot.answering.language import NOTE, looks_non_english

    if answer.abstained and not answer.error and looks_non_english(answer.question or ""):
        answer.note = f"{answer.note} {NOTE}".strip() if answer.note else NOTE


def cmd_index(args) -> int:
    engine = _engine(args)
    report = engine.build(rebuild=args.rebuild, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
        for note in report.notes:  # e.g. why a damaged index was rebuilt: stdout is only JSON
            print(f"briefbot index: {note}", file=sys.stderr)
    elif report.added or report.changed or report.unchanged:
        print(report.summary())
    else:
        for line in [*report.notes, *report.lines()]:
            if line != "no documents found":
                print(line)
    if not (report.added or report.changed or report.unchanged):
        print(f"briefbot index: no documents were indexed; {_empty_message(engine.settings)}", file=sys.stderr)
        return 1
    failed = _real_failures(report)
    if failed:
        print(f"briefbot index: {len(failed)} file{'s' if len(failed) > 1 else ''} could not be indexed (see above); "
              "fix or remove {} and run briefbot index again".format("them" if len(failed) > 1 else "it"),
              file=sys.stderr)
        return 1
    return 0


def _history(raw) -> list:
    from bot.answering.conversation import Turn

    turns = []
    for item in raw or []:
        if isinstance(item, dict) and isinstance(item.get("question"), str):
            turns.append(Turn(item["question"], str(item.get("answer", ""))))
    return turns


def cmd_ask(args) -> int:
    if not args.question and not args.jsonl and sys.stdin.isatty():
        print(f"briefbot ask: give a question, e.g. {EXAMPLE}", file=sys.stderr)
        return 2
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
            _language_note(answer)
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        return 0
    question = " ".join(args.question)
    if not question and not sys.stdin.isatty():  # echo "question" | briefbot ask
        question = sys.stdin.read().strip()
    if not question:
        print(f"briefbot ask: give a question, e.g. {EXAMPLE}", file=sys.stderr)
        return 2
    answer = engine.ask(question)
    _language_note(answer)
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False, indent=1))
    else:
        print(format_answer(answer, tty=sys.stdout.isatty()))
    return 1 if answer.error else 0


def cmd_chat(args) -> int:
    from bot.answering.conversation import Turn

    engine = _engine(args)
    _ensure_index(engine)
    history: list[Turn] = []
    print(CHAT_HELP)
    while True:
        try:
            question = input("\n? ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        command = question.lower().strip(" .!/")
        if not question or command in {"quit", "exit", "q", "bye"}:
            return 0
        if command in {"help", "?", "h"}:
            print(CHAT_HELP)
            continue
        if command == "new":
            history.clear()
            print("(new conversation)")
            continue
        answer = engine.ask(question, history)
        _language_note(answer)
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
    from bot.knowledge.store import IndexCorrupt, IndexMissing

    engine = _engine(args)
    settings = engine.settings
    try:
        st = engine.load()  # status never builds: it reports what is there
    except IndexMissing:
        raise UsageError(f"there is no index in {settings.index_dir}/ yet; build it with: briefbot index "
                         f"--documents {settings.documents_dir} --index {settings.index_dir}") from None
    except IndexCorrupt as exc:
        raise UsageError(f"the index in {settings.index_dir}/ can't be used ({exc}); rebuild it with: "
                         f"briefbot index --index {settings.index_dir}") from None
    docs = engine.sources()
    if args.json:
        print(json.dumps({**st.__dict__, "document_list": [d.__dict__ for d in docs]}, indent=1, ensure_ascii=False))
        return 0
    print(f"index {st.version}, built {st.built_at}\n"
          f"{_count(st.documents, 'document')}, {_count(st.sentences, 'sentence')}\n"
          f"model {st.model} ({st.dimension} dimensions)")
    for d in docs:
        print(f"  {d.name}: {d.title} ({_count(d.sentences, 'sentence')}, indexed {d.indexed_at})")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def cmd_serve(args) -> int:
    from bot.surfaces.discord.serve import serve

    return serve(_settings(args))


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options every command takes, accepted before or after the command name."""
    d = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--documents", metavar="DIR", default=d(None),
                        help="folder of briefings (default: documents/, or BRIEFBOT_DOCUMENTS)")
    parser.add_argument("--index", metavar="DIR", default=d(None), help="index folder (default: index/, or BRIEFBOT_INDEX)")
    parser.add_argument("--env-file", metavar="FILE", default=d(None),
                        help="settings file (default: .env if there is one; a named file must exist)")
    parser.add_argument("-v", "--verbose", action="store_true", default=d(False), help="log what happens")
    parser.add_argument("--collection", metavar="NAME", default=d(None),
                        help="one collection: a Discord server's id or 'shared' (documents/NAME/ and index/NAME/, "
                             "or BRIEFBOT_COLLECTIONS); default: the top-level folders")


def cmd_health(args) -> int:
    """For Docker's HEALTHCHECK: is a ``serve`` process alive and connected? (reads its heartbeat file)"""
    from bot.surfaces.discord.health import check

    ok, line = check(_settings(args))
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    from bot import __version__

    common = argparse.ArgumentParser(add_help=False)
    _common(common, suppress=True)  # after the command; only overrides when given

    parser = argparse.ArgumentParser(prog="briefbot", description="Answers questions about your briefings, citing the exact sentences.",
                                     epilog=f"example: {EXAMPLE}")
    parser.add_argument("--version", action="version", version=f"briefbot {__version__}")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str):
        return sub.add_parser(name, parents=[common], help=summary, description=description)

    p = command("index", "build or update the index and print what changed",
                "Read the documents folder and bring the index up to date: only new and changed files are read. "
                "Prints what was added, changed, removed, unchanged and what failed, with reasons; exits 1 when "
                "a file failed or nothing could be indexed.")
    p.add_argument("--rebuild", action="store_true", help="re-read every document (embeddings still come from the cache)")
    p.add_argument("--json", action="store_true", help="print the change report as one JSON object")
    p.set_defaults(func=cmd_index)

    p = command("ask", "answer one question (or JSON lines from stdin with --jsonl)",
                "Answer a question from the briefings with verbatim citations. The question comes from the "
                "arguments or, when there are none, from stdin. Builds the index first if there is none.")
    p.add_argument("question", nargs="*", help="the question (quotes optional)")
    p.add_argument("--json", action="store_true", help="print one JSON object (see the README for the fields)")
    p.add_argument("--jsonl", action="store_true", help='read {"question", "history"} objects from stdin, one per line')
    p.set_defaults(func=cmd_ask)

    p = command("chat", "a conversation in the terminal, with follow-ups",
                "Ask questions in turn; follow-ups use the earlier turns. Type 'help', 'new' or 'quit'.")
    p.set_defaults(func=cmd_chat)

    p = command("eval", "score answers on a QA file (JSON lines)",
                "Score answers against a JSON-lines QA file (format in the README): answer accuracy, citation "
                "accuracy, abstention, latency.")
    p.add_argument("file", help="QA file, one JSON object per line")
    p.add_argument("--json", action="store_true", help="print the metrics and misses as one JSON object")
    p.set_defaults(func=cmd_eval)

    p = command("status", "index version, counts and documents",
                "Show the live index: version, build time, documents, sentences and model. Never builds.")
    p.add_argument("--json", action="store_true", help="print one JSON object, with the document list")
    p.set_defaults(func=cmd_status)

    p = command("serve", "run the Discord bot (needs DISCORD_TOKEN)",
                "Run the Discord bot. Needs DISCORD_TOKEN in the environment or the settings file.")
    p.set_defaults(func=cmd_serve)

    p = command("health", "exit 0 if a running `serve` is connected (Docker HEALTHCHECK)",
                "Check that a running `briefbot serve` is connected to Discord (it reads serve's heartbeat file); "
                "exit 0 if so, 1 with the reason if not.")
    p.set_defaults(func=cmd_health)
    return parser


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bot import runtime

    runtime.configure(verbose=args.verbose)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: the reader is gone, nothing to report
        sys.stderr.close()
        return 0
    except UsageError as exc:
        print(f"briefbot {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:
        message = _known_error(exc)
        if message is None:
            if args.verbose:
                raise
            message = (f"unexpected error ({type(exc).__name__}: {_one_line(exc)}); run again with -v for the "
                       "details and report it")
        print(f"briefbot {args.command}: {message}", file=sys.stderr)
        return 1


def _known_error(exc: Exception) -> str | None:
    """One line for the mistakes an operator can fix; ``None`` for a bug."""
    from bot.answering.llm import LLMUnavailable
    from bot.knowledge.build import BuildBusy, DiskFull, IndexUnwritable
    from bot.knowledge.store import IndexCorrupt, IndexMissing

    if isinstance(exc, (BuildBusy, DiskFull, IndexUnwritable, FileNotFoundError, ValueError, LLMUnavailable,
                        IndexCorrupt, IndexMissing)):
        return _one_line(exc)
    if isinstance(exc, RuntimeError) and str(exc).startswith("cannot load embedding model"):
        return (f"{_one_line(exc).split(':')[0]}: check BRIEFBOT_MODEL (a folder with a sentence-transformers "
                "model; leave it empty for the built-in all-MiniLM-L6-v2)")
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or _one_line(exc)}; check the folder's permissions"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else _one_line(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
