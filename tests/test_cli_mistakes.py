"""Operator mistakes: each one ends in one clear line on stderr (what is wrong, what to do), the
right exit code, no traceback, and nothing created on disk that should not be."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from conftest import BRIEFING_NAME, UMEROV_SENTENCE_START, run_briefbot, write_docs

UMEROV = "When was Umerov informed?"


def flags(docs, idx) -> list[str]:
    return ["--documents", str(docs), "--index", str(idx)]


def one_line(err: str) -> str:
    """The error is one line, starts with the command, and carries no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("briefbot ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def no_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))


# --------------------------------------------------------------------------- folders


def test_index_under_a_regular_file(tmp_path, cli_main, capsys):
    write_docs(tmp_path / "docs")
    (tmp_path / "afile").write_text("x")
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "afile" / "idx")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "part of that path is a file" in line and "--index" in line


def test_index_that_is_a_file(tmp_path, cli_main, capsys):
    write_docs(tmp_path / "docs")
    (tmp_path / "idx").write_text("x")
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    assert "is a file, not a folder" in one_line(capsys.readouterr().err)
    assert (tmp_path / "idx").read_text() == "x"


def test_index_in_a_folder_that_cant_be_written(tmp_path, cli_main, capsys, monkeypatch):
    import bot.knowledge.build as build_module

    write_docs(tmp_path / "docs")
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):  # what the OS says for a folder owned by someone else
        if self.name == "idx":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(build_module.Path, "mkdir", mkdir)
    assert cli_main(["ask", UMEROV, *flags(tmp_path / "docs", tmp_path / "ro" / "idx")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "permission denied" in line and "--index" in line


def test_index_folder_without_write_permission(tmp_path, cli_main, capsys, monkeypatch):
    import bot.knowledge.build as build_module

    write_docs(tmp_path / "docs")
    (tmp_path / "idx").mkdir()
    monkeypatch.setattr(build_module.os, "access", lambda path, mode: False)  # root ignores chmod
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    assert "is not writable" in one_line(capsys.readouterr().err)
    assert list((tmp_path / "idx").iterdir()) == []


def test_missing_documents_folder_creates_no_index_folder(tmp_path, cli_main, capsys):
    assert cli_main(["index", *flags(tmp_path / "nope", tmp_path / "idx")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "does not exist" in line and "--documents" in line
    assert not (tmp_path / "idx").exists()


def test_documents_pointing_at_a_file(tmp_path, cli_main, capsys):
    write_docs(tmp_path / "docs")
    target = tmp_path / "docs" / BRIEFING_NAME
    assert cli_main(["index", *flags(target, tmp_path / "idx")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "is a file, not a folder" in line and "does not exist" not in line
    assert not (tmp_path / "idx").exists()


def test_empty_documents_folder_is_an_error_not_a_quiet_success(tmp_path, cli_main, capsys, no_stdin):
    (tmp_path / "docs").mkdir()
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    captured = capsys.readouterr()
    assert "nothing changed" not in captured.out
    assert "no documents were indexed" in one_line(captured.err)
    assert not (tmp_path / "idx" / "CURRENT").exists()  # no empty index to answer "don't say" from

    assert cli_main(["ask", UMEROV, *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    captured = capsys.readouterr()
    assert "no documents could be indexed" in one_line(captured.err) and captured.out == ""


def test_ask_on_an_index_whose_documents_were_all_removed(tmp_path, cli_main, capsys, no_stdin, briefing_index):
    import shutil

    shutil.copytree(briefing_index.index_dir, tmp_path / "idx", ignore=shutil.ignore_patterns(".lock"))
    (tmp_path / "docs").mkdir()  # the briefing was deleted: the index must follow, and say so
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    captured = capsys.readouterr()
    assert f"removed (1): {BRIEFING_NAME}" in captured.out
    assert cli_main(["ask", UMEROV, *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    assert "has no documents" in one_line(capsys.readouterr().err)


def test_index_exits_1_when_a_file_failed(tmp_path, cli_main, capsys):
    write_docs(tmp_path / "docs", {"empty.txt": b""})
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    captured = capsys.readouterr()
    assert "failed: empty.txt: empty" in captured.out and f"added (1): {BRIEFING_NAME}" in captured.out
    assert "1 file could not be indexed" in one_line(captured.err)


def test_first_build_says_something_at_once(tmp_path, cli_main, capsys):
    write_docs(tmp_path / "docs")
    assert cli_main(["index", *flags(tmp_path / "docs", tmp_path / "idx")]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"reading 1 file from {tmp_path / 'docs'}/ ..."


def test_unwritable_cache_folder_does_not_fail_a_finished_build(workspace, cli_main, capsys, monkeypatch):
    import bot.knowledge.onnx_query as onnx_query

    (Path(workspace.index_dir).parent / "cachefile").write_text("x")
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(Path(workspace.index_dir).parent / "cachefile" / "sub"))
    assert not onnx_query.is_current(workspace.model or "sentence-transformers/all-MiniLM-L6-v2")
    assert cli_main(["index", "--rebuild", *flags(workspace.documents_dir, workspace.index_dir)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "the fast question encoder could not be saved" in captured.out and "BRIEFBOT_CACHE_DIR" in captured.out
    assert f"unchanged (1): {BRIEFING_NAME}" in captured.out


# --------------------------------------------------------------------------- settings


def test_env_file_that_does_not_exist(tmp_path, cli_main, capsys):
    from bot.surfaces import cli

    write_docs(tmp_path / "docs")
    assert cli.main(["index", *flags(tmp_path / "docs", tmp_path / "idx"), "--env-file", str(tmp_path / "typo.env")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "typo.env does not exist" in line and "--env-file" in line
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("value, message", [
    ("LLM", "needs BRIEFBOT_LLM_MODEL"),  # upper case is the LLM answerer, not a silent extractive one
    (" llm ", "needs BRIEFBOT_LLM_MODEL"),
    ("extractve", "BRIEFBOT_ANSWERER must be one of extractive, llm, not 'extractve'"),
])
def test_answerer_setting_is_normalized_once_and_checked(workspace, cli_main, capsys, monkeypatch, value, message):
    monkeypatch.setenv("BRIEFBOT_ANSWERER", value)
    assert cli_main(["ask", UMEROV, *flags(workspace.documents_dir, workspace.index_dir)]) == 1
    assert message in one_line(capsys.readouterr().err)


def test_settings_normalize_the_answerer():
    from bot.config import Settings

    assert Settings(answerer=" LLM ").answerer == "llm"
    with pytest.raises(ValueError, match="BRIEFBOT_LLM_PROVIDER must be one of openai, ollama"):
        Settings(llm_provider="azure").validate()


@pytest.mark.slow
def test_model_setting_pointing_nowhere(tmp_path):
    write_docs(tmp_path / "docs")
    env_file = tmp_path / "settings.env"
    env_file.write_text(f"BRIEFBOT_MODEL={tmp_path / 'no-such-model'}\n")
    out = run_briefbot(["index", *flags(tmp_path / "docs", tmp_path / "idx"), "--env-file", str(env_file)], cwd=tmp_path)
    assert out.returncode == 1
    line = one_line(out.stderr)
    assert "cannot load embedding model" in line and "check BRIEFBOT_MODEL" in line


# --------------------------------------------------------------------------- the command line itself


def test_version(capsys):
    from bot import __version__
    from bot.surfaces import cli

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"briefbot {__version__}"


@pytest.mark.parametrize("command, words", [
    ("index", ["only new and changed files are read", "print the change report as one JSON object"]),
    ("ask", ["from stdin", "print one JSON object"]),
    ("status", ["Never builds", "with the document list"]),
    ("eval", ["format in the README", "print the metrics"]),
    ("chat", ["'help', 'new' or 'quit'"]),
])
def test_every_command_describes_itself(capsys, command, words):
    from bot.surfaces import cli

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for w in words:
        assert w in shown


def test_global_options_before_the_command(workspace, cli_main, capsys):
    assert cli_main(["--index", str(workspace.index_dir), "--documents", str(workspace.documents_dir), "status"]) == 0
    out = capsys.readouterr().out
    assert "1 document, " in out and "1 documents" not in out


def test_status_on_a_new_folder_does_not_build(tmp_path, cli_main, capsys):
    write_docs(tmp_path / "docs")
    assert cli_main(["status", *flags(tmp_path / "docs", tmp_path / "idx")]) == 1
    line = one_line(capsys.readouterr().err)
    assert "there is no index" in line and "briefbot index" in line
    assert not (tmp_path / "idx").exists()


def test_question_from_stdin(workspace, cli_main, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(UMEROV + "\n"))
    assert cli_main(["ask", "--json", *flags(workspace.documents_dir, workspace.index_dir)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["question"] == UMEROV and answer["answer"].startswith("November 12th")


def test_no_question_at_all(workspace, cli_main, capsys, no_stdin):
    assert cli_main(["ask", *flags(workspace.documents_dir, workspace.index_dir)]) == 2
    assert "give a question" in one_line(capsys.readouterr().err)


def test_chat_understands_help_and_quit(workspace, cli_main, capsys, monkeypatch):
    lines = iter(["help", UMEROV, "quit", "unused"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert cli_main(["chat", *flags(workspace.documents_dir, workspace.index_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("'quit'") == 2  # the greeting and the answer to "help"
    assert "November 12th" in out and "help" not in out.split("November 12th")[0].split("'help'")[-1]
    assert next(lines) == "unused"  # "quit" ended the chat; it was not asked as a question


def test_cited_sentence_is_printed_once(workspace, cli_main, capsys):
    assert cli_main(["ask", UMEROV, *flags(workspace.documents_dir, workspace.index_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count(UMEROV_SENTENCE_START) == 1
    assert f"[1] Briefing us missile policy 2024-11 ({BRIEFING_NAME}" in out


@pytest.mark.parametrize("question", ["Когда сообщили Умерову о решении?", "Quand le ministre a-t-il été prévenu ?",
                                      "Wann wurde der Minister darüber unterrichtet?"])
def test_a_question_in_another_language_gets_a_note(workspace, cli_main, capsys, question):
    assert cli_main(["ask", "--json", question, *flags(workspace.documents_dir, workspace.index_dir)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["abstained"]
    assert "English only" in answer.get("note", "") or "English only" in answer["answer"] or \
        "English only" in json.dumps(answer)


def test_english_questions_get_no_language_note():
    from bot.answering.language import looks_non_english

    for q in [UMEROV, "What range do the ATACMS have?", "Who is Rustem Umerov", "Price of a Storm Shadow missile"]:
        assert not looks_non_english(q), q


def test_readme_first_command_installs_cpu_torch_and_documents_formats():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line.startswith("python3 -m venv"))
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in first and "briefbot ask" in first
    assert '{"question": "Who informed Umerov?", "history"' in readme  # the --jsonl line format
    assert "briefbot eval" in readme and '"answers"' in readme  # the eval file format


def test_runtime_settings_are_applied_once_and_hold_against_chatty_libraries():
    import logging

    from bot import runtime

    runtime.configure()
    runtime.configure()  # idempotent: one filter per handler
    assert runtime.is_configured() and os.environ["HF_HUB_OFFLINE"] == "1"
    handlers = logging.getLogger().handlers
    assert handlers and all(sum(isinstance(f, runtime._QuietFilter) for f in h.filters) == 1 for h in handlers)
    logging.getLogger("bm25s").setLevel(logging.DEBUG)  # what bm25s does when imported
    debug = logging.LogRecord("bm25s", logging.DEBUG, __file__, 1, "Building index from tokens", None, None)
    warning = logging.LogRecord("bm25s", logging.WARNING, __file__, 1, "real problem", None, None)
    assert all(not h.filter(debug) and h.filter(warning) for h in handlers)
