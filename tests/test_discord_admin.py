"""Admin commands end to end: who may run them, what they change, what they say."""

from __future__ import annotations

import asyncio

import pytest

from discord_fake.fixtures import RecordingEngine, fake, fresh_engine, make_bot  # noqa: F401
from discord_fake.server import ADMINISTRATOR, MANAGE_GUILD, MEMBER_PERMS, embed_text

pytestmark = pytest.mark.asyncio(loop_scope="session")

NEW_DOC = (
    "# Harbour logistics briefing\n\n"
    "The quartermaster confirmed that the Zephyr convoy reached Port Alder on 14 March. "
    "Fuel stocks at Port Alder will last for nineteen days. "
    "A second convoy is planned for early April.\n"
)


@pytest.fixture(scope="module")
def admin_engine(tmp_path_factory):
    """A real engine with its own documents folder, so uploads don't touch other tests' index."""
    return fresh_engine(tmp_path_factory.mktemp("admin"))


def reply_text(inter) -> str:
    return "\n".join(embed_text(b) for b in inter.replies)


async def done(inter, timeout=60.0):
    """Wait for the final reply: an immediate one, or the follow-up after a deferral."""
    await inter.wait(lambda i: i.callback is not None and (i.callback["type"] == 4 or i.followups), timeout)
    return inter


async def test_reindex_is_refused_politely_to_non_admins_and_in_dms(fake, make_bot, admin_engine):
    rec = RecordingEngine(admin_engine)
    await make_bot(rec)
    eve = fake.user("eve")
    refused = [
        await fake.slash(eve, "reindex"),
        await fake.slash(eve, "reindex", permissions=MEMBER_PERMS | MANAGE_GUILD, dm=True),
        await fake.slash(eve, "upload", files={"file": ("x.txt", b"hello")}),
    ]
    for inter in refused:
        await done(inter)
        assert inter.callback["type"] == 4 and inter.callback["data"]["flags"] == 64
    assert "only server managers" in refused[0].callback["data"]["content"]
    assert "not in direct messages" in refused[1].callback["data"]["content"]
    assert "Nothing was changed" in refused[2].callback["data"]["content"]
    await asyncio.sleep(0.2)
    assert rec.builds == 0
    assert not any(r.path.startswith("/attachments") for r in fake.requests)  # the upload was never fetched


async def test_reindex_by_manage_server_or_admin_role_reports_changes_and_time(fake, make_bot, admin_engine):
    rec = RecordingEngine(admin_engine)
    await make_bot(rec, admin_role_ids=(int(fake.admin_role_id),))
    boss, lead = fake.user("boss"), fake.user("lead")
    first = await done(await fake.slash(boss, "reindex", permissions=MEMBER_PERMS | MANAGE_GUILD))
    assert first.callback["type"] == 5  # deferred, the build runs in the background
    text = reply_text(first)
    assert "Index rebuilt" in text and "unchanged (1): briefing-us-missile-policy-2024-11.txt" in text
    assert "took" in text and f"`{admin_engine.status().version}`" in text
    second = await done(await fake.slash(lead, "reindex", roles=[fake.admin_role_id]))
    assert "Index rebuilt" in reply_text(second)
    third = await done(await fake.slash(fake.user("root"), "reindex", permissions=MEMBER_PERMS | ADMINISTRATOR))
    assert "Index rebuilt" in reply_text(third)
    assert rec.builds == 3


async def test_two_reindex_at_once_each_get_a_report(fake, make_bot, admin_engine):
    # the engine is the one build coordinator: each caller gets its own true report
    rec = RecordingEngine(admin_engine, build_delay=1.0)
    await make_bot(rec)
    perms = MEMBER_PERMS | MANAGE_GUILD
    a = await fake.slash(fake.user("a"), "reindex", permissions=perms)
    b = await fake.slash(fake.user("b"), "reindex", permissions=perms)
    await asyncio.gather(done(a), done(b))
    assert rec.builds == 2
    texts = [reply_text(a), reply_text(b)]
    assert all("Index rebuilt" in t and admin_engine.status().version in t for t in texts)
    # both acknowledged at once, long before the build finished
    assert max(a.ack_seconds, b.ack_seconds) < 1.0


async def test_questions_are_answered_while_a_build_runs(fake, make_bot, admin_engine):
    rec = RecordingEngine(admin_engine, build_delay=2.0)
    await make_bot(rec)
    build = await fake.slash(fake.user("boss"), "reindex", permissions=MEMBER_PERMS | MANAGE_GUILD)
    await build.wait(lambda i: i.callback is not None)
    ask = await fake.slash(fake.user("asker"), "ask", {"question": "What did Biden drop his opposition to?"})
    await ask.wait_answer(timeout=10)
    assert not build.followups  # the answer came while the build was still running
    await done(build)


async def test_upload_saves_a_sanitized_name_indexes_it_and_answers_from_it(fake, make_bot, admin_engine):
    await make_bot(admin_engine)
    boss = fake.user("boss")
    perms = MEMBER_PERMS | MANAGE_GUILD
    up = await done(await fake.slash(boss, "upload", permissions=perms,
                                     files={"file": ("../../Harbour Logistics!.md", NEW_DOC.encode())}))
    assert up.callback["type"] == 5
    text = reply_text(up)
    docs = admin_engine.settings.documents_dir
    saved = [p.name for p in docs.iterdir() if p.name.lower().startswith("harbour")]
    assert len(saved) == 1 and "/" not in saved[0] and not saved[0].startswith(".")
    assert f"Saved as {saved[0]}" in text and "added (1)" in text
    assert not list(docs.parent.glob("*.md"))  # nothing escaped documents/
    ask = await fake.slash(fake.user("sailor"), "ask", {"question": "When did the Zephyr convoy reach Port Alder?"})
    body = await ask.wait_answer()
    assert "The quartermaster confirmed that the Zephyr convoy reached Port Alder on 14 March." in embed_text(body)

    # the same name again: refused unless overwrite is asked for, then replaced
    again = await done(await fake.slash(boss, "upload", permissions=perms,
                                        files={"file": (saved[0], NEW_DOC.encode() + b"\nA third convoy was cancelled.\n")}))
    assert "already exists" in reply_text(again) and "overwrite" in reply_text(again)
    assert "third convoy" not in (docs / saved[0]).read_text()
    over = await done(await fake.slash(boss, "upload", {"overwrite": True}, permissions=perms,
                                       files={"file": (saved[0], NEW_DOC.encode() + b"\nA third convoy was cancelled.\n")}))
    assert "replaced the existing document" in reply_text(over) and "changed (1)" in reply_text(over)
    assert "third convoy" in (docs / saved[0]).read_text()


@pytest.mark.parametrize(
    "filename, data, expect",
    [
        ("payload.exe", b"MZ\x90\x00", "can't be indexed"),
        ("report.pdf", b"just text pretending", "not a PDF"),
        ("notes.txt", b"\x00\x01\x02binary", "binary data"),
        ("huge.txt", b"a" * (2 * 1024 * 1024 + 10), "limit is 2 MB"),
        (".hidden", b"text", "no usable characters"),
        ("../../../etc/passwd", b"root:x:0:0", "without an extension can't be indexed"),
    ],
)
async def test_upload_refuses_bad_files_and_changes_nothing(fake, make_bot, admin_engine, filename, data, expect):
    rec = RecordingEngine(admin_engine)
    await make_bot(rec, upload_max_mb=2)
    before = sorted(p.name for p in admin_engine.settings.documents_dir.iterdir())
    inter = await done(await fake.slash(fake.user("boss"), "upload", permissions=MEMBER_PERMS | MANAGE_GUILD,
                                        files={"file": (filename, data)}))
    text = reply_text(inter)
    assert "refused" in text and expect in text, text
    assert rec.builds == 0
    assert sorted(p.name for p in admin_engine.settings.documents_dir.iterdir()) == before


async def test_sources_and_status_describe_the_index(fake, make_bot, admin_engine):
    await make_bot(admin_engine)
    src = await done(await fake.slash(fake.user("x"), "sources"))
    assert src.callback["type"] == 5 and src.callback["data"]["flags"] == 64
    text = reply_text(src)
    for doc in admin_engine.sources():
        assert doc.name in text and f"{doc.sentences} sentences" in text and doc.indexed_at in text
    st = await done(await fake.slash(fake.user("x"), "status"))
    text = reply_text(st)
    status = admin_engine.status()
    for expected in (status.version, status.built_at, f"documents: {status.documents}",
                     f"sentences: {status.sentences}", status.model, "uptime: 00:00:"):
        assert expected in text
