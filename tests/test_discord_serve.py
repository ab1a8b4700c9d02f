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


def test_log_level_applies_to_serve_and_discord_never_logs_below_info():
    from bot.surfaces.discord.serve import setup_logging

    root = logging.getLogger()
    saved = (root.level, [h.filters[:] for h in root.handlers], logging.getLogger("bot").level,
             logging.getLogger("briefbot").level, logging.getLogger("discord").level)
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        logging.getLogger("bot").setLevel(logging.ERROR)  # what the CLI does for one-shot commands
        setup_logging(Settings(log_level="debug", discord_token="secret-token-xyz"))
        assert root.level == logging.DEBUG
        assert logging.getLogger("bot").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("briefbot.discord").getEffectiveLevel() == logging.DEBUG
        for name in ("discord.http", "discord.gateway", "discord.client", "discord.state", "discord.webhook.async_"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "auth %s", ("Bot secret-token-xyz",), None)
        for f in handler.filters:
            f.filter(record)
        assert "secret-token-xyz" not in record.getMessage()
        setup_logging(Settings(log_level="ERROR"))
        assert logging.getLogger("briefbot.discord").getEffectiveLevel() == logging.ERROR
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for h, filters in zip(root.handlers, saved[1]):
            h.filters[:] = filters
        logging.getLogger("bot").setLevel(saved[2])
        logging.getLogger("briefbot").setLevel(saved[3])
        logging.getLogger("discord").setLevel(saved[4])


def test_the_dm_notice_map_stays_bounded(monkeypatch):
    from bot.surfaces.discord.cogs import ask as ask_mod

    monkeypatch.setattr(ask_mod, "DM_NOTICE_MAX", 50)
    cog = ask_mod.AskCog(bot=None)
    for user in range(500):
        assert cog._notice_due(user)
    assert len(cog._dm_notice) <= 50
    assert not cog._notice_due(499)  # said recently: not again
