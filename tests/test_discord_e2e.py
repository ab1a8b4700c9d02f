"""End to end: the real discord.py client against the fake Discord, with the real engine."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.answering.conversation import Turn
from bot.surfaces.discord.render import unquote
from discord_fake.fixtures import BRIEFING, RecordingEngine, engine, fake, make_bot, shared_engine  # noqa: F401
from discord_fake.server import custom_ids, embed_text

pytestmark = pytest.mark.asyncio(loop_scope="session")

Q1 = "What did Biden drop his opposition to?"


def citation_fields(body: dict) -> list[dict]:
    return [f for e in body.get("embeds", []) for f in e.get("fields", []) if f["name"].startswith("[")]


def assert_no_mentions(fake) -> None:
    bodies = fake.sent_bodies()
    assert bodies, "the bot sent nothing"
    for body in bodies:
        assert body.get("allowed_mentions", {}).get("parse") == [], body
        assert not body["allowed_mentions"].get("users") and not body["allowed_mentions"].get("roles")
        assert body["allowed_mentions"].get("replied_user") in (None, False)


async def test_login_syncs_commands_to_the_guild(fake, make_bot):
    bot = await make_bot()
    paths = [(r.method, r.path) for r in fake.requests]
    assert ("GET", "/api/v10/users/@me") in paths
    assert ("GET", "/api/v10/oauth2/applications/@me") in paths
    names = {c["name"] for c in fake.commands[fake.guild_id]}
    assert names == {"ask", "reindex", "upload", "remove", "sources", "status"}
    assert fake.commands.get("global", []) == []  # stale global duplicates cleared
    assert bot.user.id == int(fake.bot_user["id"])


async def ask_and_wait(fake, user, question, **kw):
    inter = await fake.slash(user, "ask", {"question": question}, **kw)
    body = await inter.wait_answer(timeout=30)
    return inter, body


async def test_slash_ask_defers_then_answers_with_verbatim_citations(fake, make_bot, engine):
    await make_bot()
    alice = fake.user("alice")
    inter, body = await ask_and_wait(fake, alice, Q1)
    # acknowledged by a deferral ("thinking") well inside Discord's 3 s, then a follow-up
    assert inter.callback["type"] == 5
    assert inter.ack_seconds < 3.0
    assert inter.followups and body is inter.followups[0]
    expected = engine.ask(Q1)
    assert not expected.abstained and expected.citations
    embed = body["embeds"][0]
    assert embed["title"] == "Answer"
    assert "[1]" in embed["description"]
    fields = citation_fields(body)
    assert len(fields) == len(expected.citations)
    source = BRIEFING.read_text(encoding="utf-8")
    for field, cit in zip(fields, expected.citations):
        assert field["name"].startswith(f"[{cit.n}] {cit.title}")
        assert cit.location in field["name"]
        assert all(line.startswith("> ") for line in field["value"].split("\n"))
        assert unquote(field["value"]) == cit.text  # verbatim, character for character
        assert cit.text in source
    footer = embed["footer"]["text"]
    status = engine.status()
    assert f"index {status.version}" in footer and status.built_at in footer and "answerer: extractive" in footer
    ids = custom_ids(body)
    assert [i.split(":")[1] for i in ids] == ["src", "fb", "fb"]
    # the answer opened a thread on the follow-up message
    thread_posts = await fake.wait_until(lambda: [r for r in fake.requests if r.path.endswith("/threads")])
    assert len(thread_posts) == 1
    assert inter.messages[-1]["id"] in thread_posts[0].path
    assert thread_posts[0].json["name"] == Q1
    assert_no_mentions(fake)


async def test_follow_up_in_the_thread_is_answered_with_the_thread_history(fake, make_bot):
    rec = RecordingEngine(shared_engine())
    await make_bot(rec)
    alice = fake.user("alice")
    inter, body = await ask_and_wait(fake, alice, Q1)
    thread_id = await fake.wait_until(lambda: next(iter(fake.threads), None))
    first_answer = rec.asks[0]
    assert first_answer == (Q1, ())
    # no mention needed inside the bot's thread
    await fake.say(alice, "Which missiles can reach far into Russian territory?", channel_id=thread_id)
    replies = await fake.wait_until(lambda: fake.bot_messages(thread_id))
    reply = replies[0]
    assert reply["message_reference"]["channel_id"] == thread_id
    question, history = rec.asks[1]
    assert question == "Which missiles can reach far into Russian territory?"
    assert len(history) == 1 and isinstance(history[0], Turn)
    assert history[0].question == Q1
    assert history[0].answer == shared_engine().ask(Q1).answer
    assert "ATACM" in embed_text(reply)
    # a third question carries both earlier turns, oldest first
    await fake.say(alice, "Where did North Korean soldiers deploy?", channel_id=thread_id)
    await fake.wait_until(lambda: len(rec.asks) == 3 and len(fake.bot_messages(thread_id)) >= 2)
    assert [t.question for t in rec.asks[2][1]] == [Q1, "Which missiles can reach far into Russian territory?"]
    # follow-ups stay in the thread: no second thread
    assert len([r for r in fake.requests if r.path.endswith("/threads")]) == 1
    assert_no_mentions(fake)


async def test_mention_gets_a_typing_indicator_a_reply_and_a_thread(fake, make_bot):
    await make_bot()
    bob = fake.user("bob")
    msg = await fake.say(bob, Q1, mention_bot=True)
    replies = await fake.wait_until(lambda: fake.bot_messages(fake.channel_id))
    reply = replies[0]
    assert reply["message_reference"]["message_id"] == msg["id"]
    typing = [r for r in fake.requests if r.path == f"/api/v10/channels/{fake.channel_id}/typing"]
    assert typing and typing[0].at < next(r.at for r in fake.requests if r.path.endswith(f"/channels/{fake.channel_id}/messages"))
    assert citation_fields(reply)
    await fake.wait_until(lambda: fake.threads)
    assert reply["id"] in fake.threads
    # a plain message without a mention is ignored
    before = len(fake.requests)
    await fake.say(bob, "just chatting, not for the bot")
    await asyncio.sleep(0.3)
    assert len(fake.requests) == before
    assert_no_mentions(fake)


async def test_everyone_in_a_question_never_pings(fake, make_bot):
    await make_bot()
    mallory, trudy = fake.user("mallory"), fake.user("trudy")
    q = f"@everyone @here <@&{fake.admin_role_id}> <@{mallory['id']}> what did Biden drop his opposition to?"
    await fake.say(mallory, q, mention_bot=True)
    inter, body = await ask_and_wait(fake, trudy, q)
    assert body["embeds"]
    await fake.wait_until(lambda: len(fake.bot_messages(fake.channel_id)) >= 2 and len(fake.threads) >= 2)
    # every body that could carry a mention allowed none: the reply to mallory and the follow-up
    assert len(fake.sent_bodies()) >= 2
    assert_no_mentions(fake)


async def test_buttons_show_sources_and_record_feedback(fake, make_bot, engine, tmp_path):
    await make_bot()
    carol = fake.user("carol")
    inter, body = await ask_and_wait(fake, carol, Q1)
    message = inter.messages[0]
    src, up, down = custom_ids(body)
    press = await fake.click(carol, message, src)
    await press.wait(lambda i: i.followups)
    assert press.callback["type"] == 5 and press.callback["data"]["flags"] == 64  # ephemeral thinking
    shown = press.followups[0]
    assert shown["flags"] & 64
    expected = engine.ask(Q1)
    ctx = engine.context(expected.citations[0].sentence_id, 2)
    text = embed_text(shown)
    assert f"**{expected.citations[0].text}**" in text.replace("\\", "")
    assert any(p.text in text.replace("\\", "") for p in ctx if p.sentence_id != expected.citations[0].sentence_id)

    for cid, verdict in ((up, "helpful"), (down, "not_helpful")):
        press = await fake.click(carol, message, cid)
        await press.wait(lambda i: i.callback is not None)
        assert press.callback["type"] == 4 and press.callback["data"]["flags"] == 64
        assert f"Recorded as {verdict.replace('_', ' ')}" in press.callback["data"]["content"]
    lines = (tmp_path / "data" / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["verdict"] for r in records] == ["helpful", "not_helpful"]
    r = records[0]
    assert r["question"] == Q1 and r["answer"] == expected.answer
    assert [c["text"] for c in r["citations"]] == [c.text for c in expected.citations]
    assert r["index_version"] == expected.index_version and r["user_id"] == carol["id"]
    assert r["timestamp"].endswith("Z")
    assert_no_mentions(fake)


async def test_buttons_keep_working_after_a_restart(fake, make_bot, tmp_path):
    first = await make_bot()
    dave = fake.user("dave")
    inter, body = await ask_and_wait(fake, dave, Q1)
    await first.close()
    await make_bot()  # same feedback path: a new process would see the same files
    press = await fake.click(dave, inter.messages[0], custom_ids(body)[0])
    await press.wait(lambda i: i.followups)
    assert "no longer" not in embed_text(press.followups[0])
    assert citation_fields(body)[0]["name"].split(" ·")[0] in embed_text(press.followups[0])


async def test_abstains_honestly_without_sources_button(fake, make_bot):
    await make_bot()
    inter, body = await ask_and_wait(fake, fake.user("erin"), "What is the capital of France?")
    embed = body["embeds"][0]
    assert embed["title"] == "Not covered by the briefings"
    assert "don't say" in embed["description"]
    assert not embed.get("fields")
    assert [c.split(":")[1] for c in custom_ids(body)] == ["fb", "fb"]


async def test_cooldown_says_when_to_try_again(fake, make_bot):
    await make_bot(cooldown_seconds=30)
    frank = fake.user("frank")
    await ask_and_wait(fake, frank, Q1)
    second = await fake.slash(frank, "ask", {"question": "And then?"})
    await second.wait(lambda i: i.callback is not None)
    assert second.callback["type"] == 4 and second.callback["data"]["flags"] == 64
    text = second.callback["data"]["content"]
    assert "try again" in text.lower() or "ask again" in text.lower()
    wait = int(text.split("in ")[-1].split(" s")[0])
    assert 25 <= wait <= 30
    # someone else is not affected by frank's cooldown
    await ask_and_wait(fake, fake.user("grace"), Q1)


async def test_a_flood_from_one_user_does_not_starve_others(fake, make_bot):
    rec = RecordingEngine(shared_engine())
    await make_bot(rec, cooldown_seconds=0, guild_rate_per_minute=6)
    flood, heidi = fake.user("flood"), fake.user("heidi")
    floods = [await fake.slash(flood, "ask", {"question": f"{Q1} #{i}"}) for i in range(12)]
    await asyncio.gather(*(f.wait(lambda i: i.callback is not None) for f in floods))
    accepted = [f for f in floods if f.callback["type"] == 5]
    assert 1 <= len(accepted) <= 3
    await asyncio.gather(*(f.wait_answer() for f in accepted))
    inter, body = await ask_and_wait(fake, heidi, Q1)
    assert inter.callback["type"] == 5 and citation_fields(body)
    assert sum(1 for q, _ in rec.asks if q.endswith(tuple(f"#{i}" for i in range(12)))) == len(accepted)


async def test_direct_messages_can_be_turned_off(fake, make_bot):
    rec = RecordingEngine(shared_engine())
    await make_bot(rec, allow_dms=False)
    ivan = fake.user("ivan")
    await fake.say(ivan, Q1, dm=True)
    dm = fake.dm_channel(ivan)
    sent = await fake.wait_until(lambda: fake.bot_messages(dm))
    assert "don't answer direct messages" in sent[0]["content"]
    inter = await fake.slash(ivan, "ask", {"question": Q1}, dm=True)
    await inter.wait(lambda i: i.callback is not None)
    assert inter.callback["type"] == 4 and "direct messages" in inter.callback["data"]["content"]
    assert rec.asks == []
    assert_no_mentions(fake)


async def test_direct_messages_are_answered_when_allowed(fake, make_bot):
    await make_bot(allow_dms=True)
    judy = fake.user("judy")
    await fake.say(judy, Q1, dm=True)
    dm = fake.dm_channel(judy)
    sent = await fake.wait_until(lambda: fake.bot_messages(dm))
    assert citation_fields(sent[0])
    assert not fake.threads  # no threads in DMs: the reply chain carries the conversation


async def test_slash_ask_inside_the_answer_thread_uses_its_history(fake, make_bot):
    rec = RecordingEngine(shared_engine())
    await make_bot(rec)
    kim = fake.user("kim")
    await ask_and_wait(fake, kim, Q1)
    thread_id = await fake.wait_until(lambda: next(iter(fake.threads), None))
    inter, body = await ask_and_wait(fake, kim, "Where did North Korean soldiers deploy?", channel_id=thread_id)
    assert [t.question for t in rec.asks[1][1]] == [Q1]
    await asyncio.sleep(0.2)
    assert len(fake.threads) == 1  # no thread inside a thread


async def test_replying_to_an_answer_in_dms_continues_the_conversation(fake, make_bot):
    rec = RecordingEngine(shared_engine())
    await make_bot(rec)
    lee = fake.user("lee")
    dm = fake.dm_channel(lee)
    await fake.say(lee, Q1, dm=True)
    first = (await fake.wait_until(lambda: fake.bot_messages(dm)))[0]
    await fake.say(lee, "Which missiles can reach far into Russian territory?", dm=True, reference=first["id"])
    await fake.wait_until(lambda: len(fake.bot_messages(dm)) >= 2)
    assert rec.asks[1][1] and rec.asks[1][1][0].question == Q1
    # a fresh DM question (no reply) starts a new conversation
    await fake.say(lee, "Where did North Korean soldiers deploy?", dm=True)
    await fake.wait_until(lambda: len(fake.bot_messages(dm)) >= 3)
    assert rec.asks[2][1] == ()
