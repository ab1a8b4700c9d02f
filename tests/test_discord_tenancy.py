"""One bot, many servers: each server's documents stay in that server (real client, fake Discord,
real engines sharing one model), plus the Discord conventions that go with it."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

import pytest

from bot.surfaces.discord import serve as serve_mod
from bot.surfaces.discord.cogs import admin as admin_mod
from bot.surfaces.discord.cogs.ask import TEAM_IN_SERVER
from discord_fake.fixtures import REPO, fake, fresh_engine, make_bot, settings_for, shared_engine  # noqa: F401
from discord_fake.server import MANAGE_GUILD, MEMBER_PERMS, custom_ids, embed_text

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADMIN = MEMBER_PERMS | MANAGE_GUILD
DOC_A = ("# Alpha harbour\n\nThe Alpha harbour crane was repaired on March 3rd by the Vostok repair team. "
         "The crane lifts containers from the Nordholm ferry.\n")
DOC_B = ("# Beta orchard\n\nThe Beta orchard harvest began on September 9th under supervisor Lindqvist. "
         "The orchard grows Kestrel apples for the Marrow cider works.\n")
DOC_C = ("# Gamma depot\n\nThe Gamma depot opened its new cold store on June 21st. "
         "The cold store holds Pelican vaccines for the Ostrava clinics.\n")
QA = "When was the Alpha harbour crane repaired?"
QB = "When did the Beta orchard harvest begin?"
QC = "When did the Gamma depot open its new cold store?"


def text_of(inter) -> str:
    return "\n".join(embed_text(b) for b in inter.replies)


async def done(inter, timeout=90.0):
    await inter.wait(lambda i: i.callback is not None and (i.callback["type"] == 4 or i.followups), timeout)
    return inter


async def upload(fake, channel_id, name, text):
    inter = await fake.slash(fake.user("boss"), "upload", permissions=ADMIN, channel_id=channel_id,
                             files={"file": (name, text.encode())})
    await done(inter)
    assert "Document uploaded" in text_of(inter), text_of(inter)
    return inter


async def ask(fake, channel_id, question, *, dm=False):
    inter = await fake.slash(fake.user("member"), "ask", {"question": question}, channel_id=channel_id, dm=dm)
    body = await inter.wait_answer(timeout=90)
    return embed_text(body)


async def test_a_document_uploaded_in_one_server_never_reaches_another(fake, make_bot, tmp_path):
    guild_b, chan_b = await fake.add_guild()
    await make_bot(collections=True, guild=False)
    await upload(fake, fake.channel_id, "harbour-alpha.md", DOC_A)
    await upload(fake, chan_b, "orchard-beta.md", DOC_B)
    # each server's files live in its own folder
    assert sorted(p.name for p in (tmp_path / "documents" / fake.guild_id).iterdir()) == ["harbour-alpha.md"]
    assert sorted(p.name for p in (tmp_path / "documents" / guild_b).iterdir()) == ["orchard-beta.md"]

    a_own, b_own = await ask(fake, fake.channel_id, QA), await ask(fake, chan_b, QB)
    assert "March 3rd" in a_own and "Alpha harbour" in a_own
    assert "September 9th" in b_own and "Beta orchard" in b_own
    a_cross, b_cross = await ask(fake, fake.channel_id, QB), await ask(fake, chan_b, QA)
    assert "not covered" in a_cross.lower() and "September" not in a_cross and "Lindqvist" not in a_cross
    assert "not covered" in b_cross.lower() and "March 3rd" not in b_cross and "Vostok" not in b_cross
    # a mention in server B does not reach A's documents either
    said = await fake.say(fake.user("nosy"), QA, channel_id=chan_b, mention_bot=True)
    reply = (await fake.wait_until(lambda: [m for m in fake.bot_messages(chan_b)
                                            if (m.get("message_reference") or {}).get("message_id") == said["id"]]))[0]
    assert "March 3rd" not in embed_text(reply) and "harbour-alpha" not in embed_text(reply)

    # listed and counted only where they belong
    for chan, mine, other in ((fake.channel_id, "harbour-alpha.md", "orchard-beta.md"),
                              (chan_b, "orchard-beta.md", "harbour-alpha.md")):
        src = await done(await fake.slash(fake.user("member"), "sources", channel_id=chan))
        assert mine in text_of(src) and other not in text_of(src) and "(1)" in text_of(src)
        st = await done(await fake.slash(fake.user("member"), "status", channel_id=chan))
        assert "documents: 1" in text_of(st)

    # a DM reaches no server's documents
    dm = await ask(fake, None, QA, dm=True)
    assert dm == TEAM_IN_SERVER and "March 3rd" not in dm
    dm_user = fake.user("dm-user")
    await fake.say(dm_user, QB, dm=True)
    notice = await fake.wait_until(lambda: fake.bot_messages(fake.dm_channel(dm_user)))
    assert notice[0]["content"] == TEAM_IN_SERVER

    # each server's /reindex reports only its own documents
    for chan, mine, other in ((fake.channel_id, "harbour-alpha.md", "orchard-beta.md"),
                              (chan_b, "orchard-beta.md", "harbour-alpha.md")):
        rx = await done(await fake.slash(fake.user("boss"), "reindex", permissions=ADMIN, channel_id=chan))
        assert f"unchanged (1): {mine}" in text_of(rx) and other not in text_of(rx)


async def test_remove_asks_for_confirmation_and_then_forgets_the_document(fake, make_bot, tmp_path):
    await make_bot(collections=True)
    await upload(fake, fake.channel_id, "harbour-alpha.md", DOC_A)
    await upload(fake, fake.channel_id, "orchard-beta.md", DOC_B)
    nobody = await done(await fake.slash(fake.user("boss"), "remove", {"document": "nope.md"}, permissions=ADMIN))
    assert "no document called nope.md" in text_of(nobody)
    refused = await done(await fake.slash(fake.user("eve"), "remove", {"document": "orchard-beta.md"}))
    assert "Nothing was changed" in text_of(refused)
    assert (tmp_path / "documents" / fake.guild_id / "orchard-beta.md").exists()

    boss = fake.user("boss")
    prompt = await fake.slash(boss, "remove", {"document": "Orchard-Beta.md"}, permissions=ADMIN)
    await prompt.wait(lambda i: i.callback is not None)
    message = prompt.messages[0]
    assert set(custom_ids(message)) == {"bb:rm:yes", "bb:rm:no"} and "Remove orchard-beta.md" in message["content"]
    click = await fake.click(boss, message, "bb:rm:yes")
    await click.wait(lambda i: i.callback is not None)
    assert click.callback["type"] == 7  # the prompt is edited, its buttons go
    await prompt.wait(lambda i: any("Document removed" in embed_text(b) for b in i.followups), 90)
    assert "removed (1): orchard-beta.md" in text_of(prompt)
    assert not (tmp_path / "documents" / fake.guild_id / "orchard-beta.md").exists()
    assert "September 9th" not in await ask(fake, fake.channel_id, QB)


async def test_admin_commands_carry_permissions_and_a_second_start_does_not_sync(fake, make_bot):
    await make_bot(guild=False)
    cmds = {c["name"]: c for c in fake.commands["global"]}
    for name in ("reindex", "upload", "remove"):
        assert int(cmds[name]["default_member_permissions"]) == MANAGE_GUILD
        assert cmds[name]["dm_permission"] is False and cmds[name]["contexts"] == [0]
    for name in ("ask", "sources", "status"):
        assert cmds[name]["default_member_permissions"] is None
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert len(puts) == 1
    second = await make_bot(guild=False)  # same data folder: the stored hash matches
    assert second.synced is False
    assert [r for r in fake.requests if r.method == "PUT"] == puts


async def test_guild_scope_clears_global_duplicates_and_changed_scope_resyncs(fake, make_bot):
    await make_bot(guild=False)
    assert fake.commands["global"]
    bot = await make_bot()  # now scoped to the guild: a different command set destination
    assert bot.synced is True
    assert fake.commands["global"] == [] and {c["name"] for c in fake.commands[fake.guild_id]} >= {"ask", "remove"}


async def test_a_wrong_guild_id_gives_one_clear_line(fake, tmp_path, capsys):
    settings = settings_for(tmp_path, shared_engine(), discord_guild_id=123456789012345678)
    code = await serve_mod.run(settings, engine=shared_engine(), connector=fake.connector(), guild_ready_timeout=0.05)
    err = capsys.readouterr().err
    assert code == 1
    assert "123456789012345678" in err and "BRIEFBOT_DISCORD_GUILD_ID" in err and "Traceback" not in err


async def test_intent_follows_the_mentions_setting(fake, make_bot):
    bot = await make_bot(discord_mentions=False)
    assert bot.intents.message_content is False
    await fake.say(fake.user("m"), "What did Biden drop his opposition to?", mention_bot=True)
    await asyncio.sleep(1.0)
    assert not fake.bot_messages(fake.channel_id)  # slash commands only


async def test_threads_only_for_covered_answers_and_only_for_the_asker(fake, make_bot):
    await make_bot()
    asker, other = fake.user("asker"), fake.user("other")
    await fake.say(asker, "What is the price of tea in the briefings?", mention_bot=True)
    await fake.wait_until(lambda: fake.bot_messages(fake.channel_id))
    await asyncio.sleep(0.5)
    assert not fake.threads  # a "not covered" answer opens no thread
    await fake.say(asker, "What did Biden drop his opposition to?", mention_bot=True)
    thread_id = await fake.wait_until(lambda: next(iter(fake.threads), None))
    await fake.say(other, "I think it was about missiles", channel_id=thread_id)
    await asyncio.sleep(1.5)
    assert not fake.bot_messages(thread_id)  # people talking to each other: not for the bot
    await fake.say(asker, "Which missiles can reach far into Russian territory?", channel_id=thread_id)
    await fake.wait_until(lambda: len(fake.bot_messages(thread_id)) >= 1, 60)
    await fake.say(other, "Where did North Korean soldiers deploy?", channel_id=thread_id, mention_bot=True)
    await fake.wait_until(lambda: len(fake.bot_messages(thread_id)) >= 2, 60)


async def test_threads_can_be_turned_off(fake, make_bot):
    await make_bot(discord_threads=False)
    inter = await fake.slash(fake.user("a"), "ask", {"question": "What did Biden drop his opposition to?"})
    await inter.wait_answer()
    await asyncio.sleep(0.5)
    assert not fake.threads


async def test_a_build_longer_than_the_token_posts_its_report_to_the_channel(fake, make_bot, tmp_path, monkeypatch):
    monkeypatch.setattr(admin_mod, "TOKEN_SECONDS", -1.0)  # as if 15 minutes had passed
    await make_bot(fresh_engine(tmp_path / "long"))
    inter = await fake.slash(fake.user("boss"), "reindex", permissions=ADMIN)
    posted = await fake.wait_until(lambda: [m for m in fake.bot_messages(fake.channel_id)
                                            if "Index rebuilt" in embed_text(m) and not m.get("webhook_id")], 90)
    assert "your request finished" in posted[0]["content"]
    assert not inter.followups


async def test_sources_escapes_file_names(fake, make_bot, tmp_path):
    await make_bot(collections=True)
    docs = tmp_path / "documents" / fake.guild_id
    docs.mkdir(parents=True)
    (docs / "x_@everyone_*bold* `tick`.md").write_text(DOC_A, encoding="utf-8")  # copied in by an operator
    await done(await fake.slash(fake.user("boss"), "reindex", permissions=ADMIN))
    src = await done(await fake.slash(fake.user("member"), "sources"))
    shown = embed_text(src.followups[-1])
    assert "x\\_@\u200beveryone\\_\\*bold\\* \\`tick\\`.md" in shown, shown


async def test_a_cli_build_while_the_bot_runs_is_answered_from_without_a_restart(fake, make_bot, tmp_path):
    await make_bot(collections=True, index_check_seconds=0.5)
    await upload(fake, fake.channel_id, "harbour-alpha.md", DOC_A)
    assert "June 21st" not in await ask(fake, fake.channel_id, QC)
    (tmp_path / "documents" / fake.guild_id / "gamma-depot.md").write_text(DOC_C, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.surfaces.cli", "index", "--collection", fake.guild_id,
        "--documents", str(tmp_path / "documents"), "--index", str(tmp_path / "index"),
        cwd=str(tmp_path), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()
    built_at = asyncio.get_running_loop().time()
    answer = await ask(fake, fake.channel_id, QC)
    assert "June 21st" in answer and "Gamma depot" in answer
    assert asyncio.get_running_loop().time() - built_at < 10


async def test_sigterm_with_a_question_in_flight_delivers_it_and_exits_0(fake, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text(fake.tls.ca_pem, encoding="utf-8")
    docs = tmp_path / "documents" / fake.guild_id
    docs.mkdir(parents=True)
    shutil.copy(REPO / "documents" / "briefing-us-missile-policy-2024-11.txt", docs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]), "FAKE_PORT": str(fake.port),
           "FAKE_CA": str(ca), "FAKE_ASK_DELAY": "3", "DISCORD_TOKEN": "test-token",
           "BRIEFBOT_DISCORD_GUILD_ID": fake.guild_id, "BRIEFBOT_DOCUMENTS": str(tmp_path / "documents"),
           "BRIEFBOT_INDEX": str(tmp_path / "index"), "BRIEFBOT_FEEDBACK_PATH": str(tmp_path / "data" / "fb.jsonl"),
           "BRIEFBOT_LOG_LEVEL": "INFO"}
    # the server's index is built beforehand (as an operator would with `briefbot index --collection`)
    from bot.answering.engine import Engine
    from bot.answering.collections import settings_for as col_settings

    Engine(col_settings(settings_for(tmp_path, shared_engine(), documents_dir=tmp_path / "documents",
                                     index_dir=tmp_path / "index"), fake.guild_id),
           encoder=shared_engine().encoder).build()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "discord_fake.launch", cwd=str(tmp_path), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_until(lambda: fake.commands.get(fake.guild_id), 120)
        await fake.wait_connected(60)
        # a first question loads the model and the server's index (slow on a busy machine) ...
        warm = await fake.slash(fake.user("early"), "ask", {"question": "Where did North Korean soldiers deploy?"})
        await warm.wait_answer(timeout=180)
        # ... the second one is in flight (held 3 s) when SIGTERM arrives
        inter = await fake.slash(fake.user("late"), "ask", {"question": "What did Biden drop his opposition to?"})
        await inter.wait(lambda i: i.callback is not None, 30)
        proc.send_signal(15)
        stopped = asyncio.get_running_loop().time()
        body = await inter.wait_answer(timeout=30)
        rc = await asyncio.wait_for(proc.wait(), 30)
        took = asyncio.get_running_loop().time() - stopped
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = (await proc.stderr.read()).decode()
    assert "antipersonnel" in embed_text(body).lower() or "missile" in embed_text(body).lower()
    assert rc == 0, err
    assert took < 10, (took, err)
    assert "Traceback" not in err and "test-token" not in err
