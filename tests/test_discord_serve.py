"""``briefbot serve`` start-up failures, and what the logs may not contain."""

from __future__ import annotations

import logging

import pytest

from bot.config import Settings
from bot.surfaces.discord.serve import run, serve
from discord_fake.fixtures import fake, make_bot, settings_for, shared_engine  # noqa: F401

aio = pytest.mark.asyncio(loop_scope="session")


def test_serve_without_a_token_names_the_variable_and_the_example(capsys):
    code = serve(Settings(discord_token=""))
    err = capsys.readouterr().err
    assert code == 2
    assert "DISCORD_TOKEN" in err and ".env.example" in err
    assert "Traceback" not in err


@aio
async def test_a_rejected_token_gives_a_clear_message_and_never_shows_the_token(fake, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "MTIzNDU2Nzg5.rejected-secret-token"
    settings = settings_for(tmp_path, shared_engine(), discord_token=secret)
    code = await run(settings, engine=shared_engine(), connector=fake.connector())
    out = capsys.readouterr()
    assert code == 1
    assert "rejected the token in DISCORD_TOKEN" in out.err
    assert "Traceback" not in out.err + out.out
    assert secret not in out.err + out.out + caplog.text
    assert [r.path for r in fake.requests] == ["/api/v10/users/@me"]


@aio
async def test_info_logs_carry_the_answer_id_but_not_the_question_or_token(fake, make_bot, caplog):
    caplog.set_level(logging.INFO)
    await make_bot()
    question = "What did Biden drop his opposition to? zebra-marker-7731"
    inter = await fake.slash(fake.user("quiet"), "ask", {"question": question})
    body = await inter.wait_answer()
    answer_id = body["embeds"][0]["footer"]["text"].rsplit("answer ", 1)[1]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("briefbot.discord"))
    assert f"answer id={answer_id}" in ours
    info_and_up = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "zebra-marker-7731" not in info_and_up
    assert "test-token" not in caplog.text
