"""End to end: the real discord.py client against the fake Discord, with the real engine."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.answering.types import Turn
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
    assert names == {"ask", "reindex", "upload", "sources", "status"}
    assert "global" not in fake.commands
    assert bot.user.id == int(fake.bot_user["id"])
