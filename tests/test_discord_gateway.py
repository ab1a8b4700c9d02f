"""Gateway faults (issue 6): the connection drops, Discord asks for a reconnect or invalidates the
session; the bot resumes or identifies again, and the next question is answered."""

from __future__ import annotations

import asyncio

import pytest

from discord_fake.fixtures import fake, make_bot  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")

Q = "What did Biden drop his opposition to?"


async def answered(fake, name: str):
    inter = await fake.slash(fake.user(name), "ask", {"question": Q})
    body = await inter.wait_answer(timeout=20)
    assert inter.callback["type"] == 5 and body["embeds"][0]["title"] == "Answer"
    return inter


async def reconnected(fake, *, identifies: int, resumes: int):
    await fake.wait_until(lambda: fake.identifies == identifies and fake.resumes == resumes
                          and any(g.identified.is_set() and not g.ws.closed for g in fake.gateways), timeout=20)


@pytest.mark.parametrize("fault", ["close_4000", "tcp_cut", "reconnect_op7"])
async def test_bot_resumes_after_a_drop_and_answers_the_next_question(fake, make_bot, fault):
    await make_bot()
    await answered(fake, "before")
    if fault == "close_4000":
        await fake.drop_gateway(4000)
    elif fault == "tcp_cut":
        await fake.cut_gateway()
    else:
        await fake.request_reconnect()
    await reconnected(fake, identifies=1, resumes=1)
    await answered(fake, "after")


async def test_invalid_session_makes_the_bot_identify_again(fake, make_bot):
    bot = await make_bot()
    await fake.invalidate_session(resumable=False)
    await reconnected(fake, identifies=2, resumes=0)
    await answered(fake, "after")
    assert bot.is_ready() and not bot.is_closed()


async def test_events_sent_while_disconnected_are_replayed_on_resume(fake, make_bot):
    await make_bot()
    await fake.drop_gateway(4000)
    # the question arrives while the bot is away; Discord keeps it for the RESUME
    inter = await fake.slash(fake.user("patient"), "ask", {"question": Q})
    body = await inter.wait_answer(timeout=20)
    assert fake.resumes == 1 and fake.identifies == 1
    assert body["embeds"][0]["title"] == "Answer"
    assert inter.ack_seconds < 3.0
    await asyncio.sleep(0)
