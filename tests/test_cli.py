"""The ``briefbot`` command: the --json and --jsonl contracts (as real subprocesses), the index
change report, eval, and settings from .env, the environment and flags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.config import Settings
from bot.knowledge.store import load_snapshot
from bot.surfaces import cli
from conftest import BRIEFING_NAME, EXTRA_MD, EXTRA_NAME, UMEROV_SENTENCE_START, normalized_text, run_briefbot, write_docs

ANSWER_KEYS = {"question", "answer", "abstained", "citations", "index_version", "latency_ms", "answerer"}
CITATION_KEYS = {"n", "document", "title", "sentence_id", "text", "start", "end", "location", "section"}
# present only when they apply: a rewritten follow-up, a refusal's closest passage, a note
OPTIONAL_KEYS = {"understood_as", "closest", "note"}


def flags(settings) -> list[str]:
    return ["--documents", str(settings.documents_dir), "--index", str(settings.index_dir)]


def check_answer_object(obj: dict, docs_dir: Path) -> None:
    assert ANSWER_KEYS <= set(obj) <= ANSWER_KEYS | OPTIONAL_KEYS, obj.keys()
    if "closest" in obj:  # offered with a refusal, marked as not an answer, never a citation
        assert obj["abstained"] and obj["citations"] == []
        assert set(obj["closest"]) == CITATION_KEYS | {"not_an_answer"} and obj["closest"]["not_an_answer"] is True
    assert isinstance(obj["question"], str) and isinstance(obj["answer"], str)
    assert isinstance(obj["abstained"], bool)
    assert isinstance(obj["latency_ms"], (int, float)) and obj["latency_ms"] >= 0
    assert isinstance(obj["index_version"], str) and obj["index_version"]
    assert obj["answerer"] == "extractive"
    for n, c in enumerate(obj["citations"], 1):
        assert set(c) == CITATION_KEYS, c.keys()
        assert c["n"] == n
        assert isinstance(c["start"], int) and isinstance(c["end"], int)
        assert normalized_text(str(docs_dir), c["document"])[c["start"]:c["end"]] == c["text"]
        assert c["sentence_id"].startswith(f"{c['document']}:")


# --------------------------------------------------------------------------- subprocesses


@pytest.mark.slow
def test_ask_json_prints_one_object_with_exactly_the_contract(workspace, briefing_version):
    out = run_briefbot(["ask", "When was Umerov informed?", "--json", *flags(workspace)], cwd=Path(workspace.index_dir).parent)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    obj = json.loads(out.stdout)  # the whole of stdout is one JSON object
    check_answer_object(obj, Path(workspace.documents_dir))
    assert obj["question"] == "When was Umerov informed?"
    assert obj["answer"].startswith("November 12th")
    assert obj["abstained"] is False
    assert obj["index_version"] == briefing_version
    first = obj["citations"][0]
    assert first["document"] == BRIEFING_NAME
    assert first["title"] == "Briefing us missile policy 2024-11"
    assert first["text"].startswith(UMEROV_SENTENCE_START)


@pytest.mark.slow
def test_ask_jsonl_answers_each_line_with_history_and_reports_bad_lines(workspace, briefing_version):
    lines = [
        json.dumps({"question": "When was Umerov informed?"}),
        json.dumps({"question": "When did that call happen?",
                    "history": [{"question": "Who informed Umerov?",
                                 "answer": "Lloyd J Austin. \u201cThe relaxation of US conditions was conveyed to "
                                           "Ukraine during a November 12th call ...\u201d [1]"},
                                "junk history item"]}),
        "{this is not json",
        "",
        json.dumps({"question": "Who won the Super Bowl?"}, ensure_ascii=False),
        json.dumps(["a list, not an object"]),
    ]
    out = run_briefbot(["ask", "--jsonl", *flags(workspace)], cwd=Path(workspace.index_dir).parent,
                       stdin="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == 5  # the blank line is skipped, every other line gets one result, in order
    umerov, follow, bad, bowl, not_object = results
    for obj in (umerov, follow, bowl):
        check_answer_object(obj, Path(workspace.documents_dir))
        assert obj["index_version"] == briefing_version
    assert umerov["answer"].startswith("November 12th")
    assert follow["question"] == "When did that call happen?"
    assert follow["answer"].startswith("November 12th")
    assert bowl["abstained"] is True and bowl["citations"] == []
    assert set(bad) == {"error"} and bad["error"].startswith("line 3: not a JSON object")
    assert set(not_object) == {"error"} and not_object["error"].startswith("line 6: not a JSON object")


# --------------------------------------------------------------------------- in-process commands


def test_index_prints_the_change_report(workspace, cli_main, capsys, encoder):
    write_docs(Path(workspace.documents_dir), {EXTRA_NAME: EXTRA_MD, "empty.txt": b""}, briefing=False)
    assert cli_main(["index", *flags(workspace)]) == 1  # a file failed: the command did not do all its job
    captured = capsys.readouterr()
    assert "1 file could not be indexed" in captured.err
    out = captured.out.splitlines()
    assert out[0].startswith("index ") and " ready in " in out[0]
    assert f"added (1): {EXTRA_NAME}" in out
    assert f"unchanged (1): {BRIEFING_NAME}" in out
    assert "failed: empty.txt: empty" in out

    assert cli_main(["index", "--json", *flags(workspace)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["unchanged"] == [BRIEFING_NAME, EXTRA_NAME]
    assert report["added"] == report["changed"] == report["removed"] == []
    assert report["failed"] == [{"document": "empty.txt", "reason": "empty"}]
    assert report["sentences_embedded"] == 0
    assert report["index_version"] == load_snapshot(Path(workspace.index_dir)).version


def test_index_rebuild_keeps_sentence_ids(workspace, cli_main, capsys):
    before = load_snapshot(Path(workspace.index_dir))
    assert cli_main(["index", "--rebuild", "--json", *flags(workspace)]) == 0
    report = json.loads(capsys.readouterr().out)
    after = load_snapshot(Path(workspace.index_dir))
    assert report["index_version"] == after.version != before.version
    assert report["sentences_embedded"] == 0
    assert after.sentences.ids == before.sentences.ids


def test_index_exits_1_when_every_document_failed(tmp_path, cli_main, capsys):
    settings = Settings(documents_dir=tmp_path / "docs", index_dir=tmp_path / "idx")
    write_docs(settings.documents_dir, {"a.txt": b"", "b.exe": b"MZ"}, briefing=False)
    assert cli_main(["index", *flags(settings)]) == 1
    out = capsys.readouterr().out
    assert "failed: a.txt: empty" in out and "skipped: b.exe: unsupported type .exe" in out


def test_missing_documents_folder_is_a_message_not_a_traceback(tmp_path, cli_main, capsys):
    assert cli_main(["index", "--documents", str(tmp_path / "nope"), "--index", str(tmp_path / "idx")]) == 1
    err = capsys.readouterr().err
    assert "briefbot index: documents folder" in err and "does not exist" in err


def test_ask_builds_the_index_on_first_use(tmp_path, briefing_index, cli_main, capsys):
    settings = Settings(documents_dir=tmp_path / "docs", index_dir=tmp_path / "idx")
    write_docs(settings.documents_dir)
    settings.index_dir.mkdir()
    shutil.copy(Path(briefing_index.index_dir) / "embeddings.sqlite", settings.index_dir)  # warm cache only
    assert cli_main(["ask", "When", "was", "Umerov", "informed?", *flags(settings)]) == 0
    captured = capsys.readouterr()
    assert "no index in" in captured.err and "building the index" in captured.err
    assert f"added (1): {BRIEFING_NAME}" in captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("November 12th. \u201c")
    assert "**" not in lines[0]  # bold marks are dropped off a terminal
    assert lines[2].startswith(f"[1] Briefing us missile policy 2024-11 ({BRIEFING_NAME}, section \u201cStrengthening")
    assert len(lines) == 3  # the cited sentence is in the answer already: printed once, not twice
    assert lines[0].count(UMEROV_SENTENCE_START) == 1


@pytest.mark.parametrize("argv, code, stream, message", [
    (["ask"], 2, "err", "give a question"),
    (["ask", "   "], 1, "out", "Please ask a question"),
    (["ask", "x" * 10_000], 1, "out", "10,000 characters"),
    (["ask", "--json", "\u200b"], 1, "out", '"error": "Please ask a question'),
])
def test_ask_with_a_bad_question(workspace, cli_main, capsys, monkeypatch, argv, code, stream, message):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nothing piped in either
    assert cli_main([*argv, *flags(workspace)]) == code
    captured = capsys.readouterr()
    assert message in getattr(captured, stream)
    assert "Traceback" not in captured.err


def test_eval_json_prints_metrics(workspace, cli_main, capsys, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(row) for row in [
        {"id": "a", "question": "When was Umerov informed?", "answers": ["November 12"],
         "evidence": ["November 12th call between secretary of defence"]},
        {"id": "b", "question": "How many North Korean forces were in Kursk?", "answers": ["8,000"],
         "evidence": ["8,000 North Korean forces"]},
        {"id": "c", "question": "Who won the Super Bowl?", "answerable": False},
        {"id": "d", "question": "Who is the prime minister of Japan?", "answerable": False},
        {"id": "e", "question": "Who informed Umerov?", "followup": "When did that call happen?",
         "answers": ["November 12"], "evidence": ["November 12th call"]},
    ]) + "\n\n")
    assert cli_main(["eval", str(qa), "--json", *flags(workspace)]) == 0
    data = json.loads(capsys.readouterr().out)
    metrics = data["metrics"]
    assert metrics["questions"] == 5 and metrics["answerable"] == 3 and metrics["unanswerable"] == 2
    assert metrics["answer_accuracy"] == 1.0 and metrics["citation_accuracy"] == 1.0
    assert metrics["abstention_on_unanswerable"] == 1.0 and metrics["false_abstentions"] == 0
    assert 0 < metrics["latency_ms_p50"] <= metrics["latency_ms_p95"]
    assert metrics["answerers"] == ["extractive"]
    assert metrics["index_version"] == load_snapshot(Path(workspace.index_dir)).version
    assert data["failures"] == []

    assert cli_main(["eval", str(qa), *flags(workspace)]) == 0
    text = capsys.readouterr().out
    assert "answer_accuracy              1.0" in text


def test_eval_of_a_broken_file_is_a_message(workspace, cli_main, capsys, tmp_path):
    qa = tmp_path / "broken.jsonl"
    qa.write_text('{"question": "ok?"}\n{broken\n')
    assert cli_main(["eval", str(qa), *flags(workspace)]) == 2
    assert f"{qa}:2: not valid JSON" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path / "missing.jsonl"), *flags(workspace)]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_status_json(workspace, cli_main, capsys, briefing_version):
    assert cli_main(["status", "--json", *flags(workspace)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["version"] == briefing_version
    assert status["documents"] == 1 and status["dimension"] == 384
    assert [d["name"] for d in status["document_list"]] == [BRIEFING_NAME]
    assert status["document_list"][0]["sentences"] > 20


# --------------------------------------------------------------------------- settings


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("BRIEFBOT_") or name == "DISCORD_TOKEN":
            monkeypatch.delenv(name)
    path = tmp_path / ".env"
    path.write_text(
        "BRIEFBOT_DOCUMENTS=/from/file/docs\n"
        "BRIEFBOT_INDEX=/from/file/index\n"
        "BRIEFBOT_MAX_DOCUMENT_MB=5\n"
        "BRIEFBOT_ADMIN_ROLE_IDS=11, 22;33\n"
        "BRIEFBOT_ALLOW_DMS=no\n"
        "BRIEFBOT_LLM_API_KEY=sk-file-secret-123\n"
        "DISCORD_TOKEN=file-token-abc.def\n"
        "# a comment\n"
        "BRIEFBOT_LLM_MODEL=\n"
    )
    return path


def test_settings_from_env_file(env_file):
    s = Settings.from_env(env_file)
    assert s.documents_dir == Path("/from/file/docs") and s.index_dir == Path("/from/file/index")
    assert s.max_document_mb == 5.0
    assert s.admin_role_ids == (11, 22, 33)
    assert s.allow_dms is False
    assert s.discord_token == "file-token-abc.def"
    assert s.llm_model == ""  # empty means default
    assert s.answerer == "extractive"


def test_environment_beats_file_and_flags_beat_both(env_file, monkeypatch):
    monkeypatch.setenv("BRIEFBOT_INDEX", "/from/env/index")
    monkeypatch.setenv("BRIEFBOT_MAX_DOCUMENT_MB", "7.5")
    s = Settings.from_env(env_file)
    assert s.index_dir == Path("/from/env/index") and s.max_document_mb == 7.5
    assert s.documents_dir == Path("/from/file/docs")

    s = Settings.from_env(env_file, index_dir="/from/cli/index", documents_dir=None)
    assert s.index_dir == Path("/from/cli/index")
    assert s.documents_dir == Path("/from/file/docs")  # a flag that wasn't given changes nothing

    args = cli.build_parser().parse_args(["ask", "q", "--index", "/from/cli/index", "--env-file", str(env_file)])
    s = cli._settings(args)
    assert s.index_dir == Path("/from/cli/index") and s.documents_dir == Path("/from/file/docs")
    assert s.max_document_mb == 7.5


def test_missing_env_file_means_defaults(tmp_path, monkeypatch, env_file):
    s = Settings.from_env(tmp_path / "no-such.env")
    assert s == Settings()


@pytest.mark.parametrize("name, value", [
    ("BRIEFBOT_GUILD_RATE_PER_MINUTE", "lots"),
    ("BRIEFBOT_DISCORD_GUILD_ID", "12.5"),
    ("BRIEFBOT_MAX_DOCUMENT_MB", "twenty"),
    ("BRIEFBOT_ADMIN_ROLE_IDS", "1,two"),
])
def test_invalid_numbers_give_a_clear_error(env_file, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^{name} has an invalid value: "):
        Settings.from_env(env_file)


def test_invalid_setting_in_the_cli_is_one_line_not_a_traceback(env_file, cli_main, capsys, monkeypatch):
    monkeypatch.setenv("BRIEFBOT_GUILD_RATE_PER_MINUTE", "lots")
    from bot.surfaces.cli import main

    assert main(["status", "--env-file", str(env_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("briefbot status: BRIEFBOT_GUILD_RATE_PER_MINUTE has an invalid value")
    assert err.count("\n") == 1


def test_secrets_never_appear_in_repr(env_file, monkeypatch):
    monkeypatch.setenv("BRIEFBOT_LLM_API_KEY", "sk-env-secret-456")
    s = Settings.from_env(env_file)
    assert s.llm_api_key == "sk-env-secret-456" and s.discord_token == "file-token-abc.def"
    for shown in (repr(s), str(s), f"{s}", repr(s.with_(log_level="INFO"))):
        assert "secret" not in shown and "file-token" not in shown
        assert "llm_api_key" not in shown and "discord_token" not in shown


def test_chat_keeps_the_conversation_and_new_starts_over(workspace, cli_main, capsys, monkeypatch):
    lines = iter(["Who did Blinken inform about the decision?", "Who else was told?", "new", "", "unused"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert cli_main(["chat", *flags(workspace)]) == 0
    out = capsys.readouterr().out
    first, rest = out.split("(new conversation)", 1)
    # "Who else ...?" is read against the last turn: it is answered (from the sentence naming
    # the others told), not refused; no short answer repeats the one already given
    assert "don't say" not in first and first.count("Andrii Sybiha") >= 2, first
    assert "Mark Rutte. Mark Rutte" not in first
    assert next(lines) == "unused"  # the empty line ended the chat
