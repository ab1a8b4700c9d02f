"""Hardening gaps the other suites leave open (issue 6).

- A 50 MB document is refused by its size without being read, and, together with a DOCX and a
  PDF that expand to hundreds of megabytes / a gigabyte, is skipped with a reason in the
  change report of a real build, within bounded time and memory, while the old index answers.
- A PDF whose pages expand to a gigabyte of text-drawing operators is refused in bounded time.
- At INFO, ``Engine.ask`` with the LLM answerer logs neither the question nor the API key.
- A document that says "@everyone" (or names a role) is quoted in an answer, in "Show sources"
  and in a reply to a mention, and still no message the bot sends allows a mention.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from bot.answering.engine import Engine
from bot.ingest.loaders import DocumentError, load_document
from discord_fake.fixtures import fake, fresh_engine, make_bot  # noqa: F401  (fixtures)
from discord_fake.server import custom_ids, embed_text
from fake_openai import FakeOpenAI
from pdf_bytes import serialize_pdf

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
Q1 = "What did Biden drop his opposition to?"


# --------------------------------------------------------------------------- hostile files


def sparse_file(path: Path, size: int) -> Path:
    """``size`` bytes on paper, none on disk: made instantly, and reading it would still cost."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def docx_bomb(path: Path, megabytes: int = 200) -> Path:
    """A valid zip whose word/document.xml inflates to ``megabytes`` of spaces (< 1 MB on disk)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b" " * MB
            for _ in range(megabytes):
                member.write(chunk)
    return path


def flate_of_repeats(chunk: bytes, times: int) -> bytes:
    """A zlib stream of ``chunk`` repeated ``times`` times, made without compressing all of it:
    after a full flush the compressor forgets its history, so every chunk compresses alike."""
    c = zlib.compressobj(9)
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert first[2:] == again  # the zlib header, then identical blocks
    adler = 1
    for _ in range(times):
        adler = zlib.adler32(chunk, adler)
    return first + again * (times - 1) + b"\x03\x00" + adler.to_bytes(4, "big")  # empty final block


def pdf_with_streams(streams: list[bytes]) -> bytes:
    """A PDF with one page per FlateDecode content stream, xref offsets computed."""
    n = len(streams)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, stream in enumerate(streams):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                       b" /Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * i))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return serialize_pdf(objects)


def test_a_50_mb_document_is_refused_by_its_size_without_being_read(tmp_path):
    path = sparse_file(tmp_path / "huge.txt", 50 * MB)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DocumentError) as info:
            load_document(path, tmp_path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.reason == "too large (50.0 MB > 20 MB limit)"
    assert peak < 1 * MB, f"loading a refused file allocated {peak / MB:.1f} MB: it was read"
    assert elapsed < 1.0


def test_huge_files_and_bombs_are_skipped_with_reasons_in_bounded_time_and_memory(tmp_path):
    engine = fresh_engine(tmp_path)
    docs = Path(engine.settings.documents_dir)
    before = engine.status().version
    sparse_file(docs / "huge.txt", 50 * MB)
    docx_bomb(docs / "bomb.docx", 200)
    # one content stream that inflates to 1 GiB of spaces, in a ~1 MB file
    (docs / "bomb.pdf").write_bytes(pdf_with_streams([flate_of_repeats(b" " * MB, 1024)]))
    assert sum(p.stat().st_blocks * 512 for p in docs.iterdir()) < 4 * MB  # sparse: nothing real on disk

    tracemalloc.start()
    started = time.perf_counter()
    try:
        report = engine.build()
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    failed = dict(report.failed)
    assert set(failed) == {"huge.txt", "bomb.docx", "bomb.pdf"}, report.to_json()
    assert failed["huge.txt"] == "too large (50.0 MB > 20 MB limit)"
    assert failed["bomb.docx"] == "expands to 200.0 MB when unzipped (zip bomb?)"
    assert failed["bomb.pdf"].startswith("unreadable PDF: ") and "imit" in failed["bomb.pdf"], failed["bomb.pdf"]
    assert any(line.startswith("failed: bomb.pdf: ") for line in report.lines())
    # bounded: a fraction of what the files claim (250 MB + 1 GiB), and seconds, not minutes
    assert peak < 300 * MB, f"peak {peak / MB:.0f} MB"
    assert elapsed < 60, f"{elapsed:.1f} s"
    # nothing else changed, and the index that was live still answers
    assert report.unchanged == ["briefing-us-missile-policy-2024-11.txt"] and not report.has_changes
    assert engine.status().version == before
    answer = engine.ask(Q1)
    assert not answer.abstained and answer.index_version == before


LOAD_ONE = """
import json, sys, time
from pathlib import Path
from bot.ingest.loaders import DocumentError, load_document
path = Path(sys.argv[1])
started = time.perf_counter()
try:
    doc = load_document(path, path.parent)
    out = {"loaded_chars": len(doc.text)}
except DocumentError as exc:
    out = {"reason": exc.reason}
out["seconds"] = round(time.perf_counter() - started, 2)
print(json.dumps(out))
"""


def test_a_pdf_whose_pages_inflate_to_a_gigabyte_of_text_is_refused_in_bounded_time(tmp_path):
    line = b"BT /F1 12 Tf 72 720 Td (The convoy reached the depot at dawn.) Tj ET\n"
    stream = zlib.compress(line * (5 * MB // len(line)), 9)  # 5 MB a page: under pypdf's caps
    path = tmp_path / "text-bomb.pdf"
    path.write_bytes(pdf_with_streams([stream] * 200))  # 200 pages: 1 GB of operators
    assert path.stat().st_size < 5 * MB
    budget = 12.0  # start-up and imports included; refusing from the content size takes seconds
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run([sys.executable, "-c", LOAD_ONE, str(path)], capture_output=True, text=True,
                              timeout=budget, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a {path.stat().st_size / MB:.1f} MB PDF was still being parsed after {budget:.0f} s")
    out = json.loads(proc.stdout)
    assert "reason" in out, out


# --------------------------------------------------------------------------- logs


@pytest.fixture(scope="module")
def llm_server():
    with FakeOpenAI() as server:
        yield server


API_KEY = "sk-hardening-SECRET-4c1d"
MARKER = "zebra-marker-4412"


def llm_engine(tmp_path, server) -> Engine:
    base = fresh_engine(tmp_path)
    settings = base.settings.with_(answerer="llm", llm_provider="openai", llm_model="fake-model",
                                   llm_base_url=server.base_url, llm_api_key=API_KEY, llm_timeout=5.0)
    return Engine(settings, encoder=base.encoder)


def info_text(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def test_llm_answers_log_neither_the_question_nor_the_api_key(tmp_path, llm_server, caplog):
    caplog.set_level(logging.DEBUG)
    llm_server.reset()
    engine = llm_engine(tmp_path, llm_server)
    question = f"{Q1} {MARKER}"
    top = engine.retrieve(question).passages[0]
    llm_server.reply_json({"claims": [{"text": top.text, "citations": ["S1"]}], "answerable": True})
    verified = engine.ask(question)
    llm_server.fail(500, f"upstream broke while answering {question}")
    fell_back = engine.ask(question)
    llm_server.reply("I cannot answer in JSON, sorry.")
    malformed = engine.ask(question)

    assert verified.answerer == "llm" and verified.citations and verified.citations[0].text == top.text
    assert fell_back.answerer == "extractive" and fell_back.note and malformed.note
    assert len(llm_server.requests) == 3
    assert llm_server.requests[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"  # it was really used
    logged = info_text(caplog)
    assert all(a.id in logged for a in (verified, fell_back, malformed)), "each answer is findable by its id"
    assert MARKER not in logged
    assert API_KEY not in caplog.text  # at any level


def test_a_model_echoing_the_question_does_not_put_it_in_info_logs(tmp_path, llm_server, caplog):
    caplog.set_level(logging.INFO)
    llm_server.reset()
    engine = llm_engine(tmp_path, llm_server)
    question = f"{Q1} {MARKER}"
    top = engine.retrieve(question).passages[0]
    llm_server.reply_json({"claims": [{"text": top.text, "citations": ["S1"]},
                                      {"text": f"You asked: {question}", "citations": ["S1"]}],
                           "answerable": True})
    answer = engine.ask(question)
    assert len(llm_server.requests) == 1 and answer.answerer == "llm" and "removed" in answer.note
    assert MARKER not in info_text(caplog)


# --------------------------------------------------------------------------- mentions

NOTICE = "staff-notice.txt"
NOTICE_TEXT = """Staff notice

@everyone The generator drill at Camp Rusk starts on Friday at 09:00 sharp.
The drill is led by Sergeant Okoro, and <@&112233445566778899> must report to the motor pool.
If it rains, @here will be told by the duty officer.
"""


def assert_no_mention_allowed(fake) -> int:
    bodies = fake.sent_bodies()
    for body in bodies:
        allowed = body.get("allowed_mentions")
        assert allowed is not None and allowed.get("parse") == [], body
        assert not allowed.get("users") and not allowed.get("roles") and not allowed.get("replied_user")
    return len(bodies)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_document_saying_everyone_is_quoted_but_never_pings(fake, make_bot, tmp_path):  # noqa: F811
    engine = fresh_engine(tmp_path / "engine")
    (Path(engine.settings.documents_dir) / NOTICE).write_text(NOTICE_TEXT, encoding="utf-8")
    assert engine.build().added == [NOTICE]
    await make_bot(engine=engine)
    question = "When does the generator drill at Camp Rusk start?"
    expected = engine.ask(question)
    cited = [c.text for c in expected.citations]
    assert any("@everyone" in t for t in cited), cited

    ann = fake.user("ann")
    inter = await fake.slash(ann, "ask", {"question": question})
    body = await inter.wait_answer(timeout=30)
    assert "@everyone" in embed_text(body).replace("\\", "")
    press = await fake.click(ann, inter.messages[0], custom_ids(body)[0])  # "Show sources"
    await press.wait(lambda i: i.followups, timeout=30)
    assert "@everyone" in embed_text(press.followups[0]).replace("\\", "")

    role_question = "Who must report to the motor pool for the drill?"
    assert any("<@&" in c.text for c in engine.ask(role_question).citations)
    await fake.say(fake.user("ben"), role_question, mention_bot=True)
    reply = await fake.wait_until(lambda: [m for m in fake.bot_messages(fake.channel_id)
                                           if m.get("message_reference") and "<@&" in embed_text(m)], timeout=30)
    assert reply
    await fake.wait_until(lambda: len(fake.threads) >= 2, timeout=30)  # both answers opened their threads
    assert assert_no_mention_allowed(fake) >= 3
