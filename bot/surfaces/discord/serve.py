"""``briefbot serve``: run the Discord bot until stopped, with clear messages instead of tracebacks
for the two things people get wrong first (no token, a rejected token)."""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp
import discord

from bot.config import Settings

from .app import create_bot

log = logging.getLogger("briefbot.discord")

NO_TOKEN = (
    "DISCORD_TOKEN is not set, so the bot can't log in to Discord.\n"
    "Copy .env.example to .env and put your bot's token in DISCORD_TOKEN (or export DISCORD_TOKEN).\n"
    "The README's Discord section explains where to find the token."
)
BAD_TOKEN = (
    "Discord rejected the token in DISCORD_TOKEN (401 Unauthorized).\n"
    "Reset the token under Developer Portal > your application > Bot, put the new one in .env, and try again."
)
NO_INTENT = (
    "Discord refused the Message Content intent.\n"
    "Enable \"Message Content Intent\" under Developer Portal > your application > Bot > Privileged Gateway Intents."
)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run(settings: Settings, engine=None, **client_kwargs) -> int:
    """Run until the connection ends; returns the process exit code. Never prints the token."""
    if not settings.discord_token:
        _say(NO_TOKEN)
        return 2
    bot = create_bot(settings, engine, **client_kwargs)
    try:
        async with bot:
            await bot.start(settings.discord_token)
    except discord.LoginFailure:
        _say(BAD_TOKEN)
        return 1
    except discord.PrivilegedIntentsRequired:
        _say(NO_INTENT)
        return 1
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        _say(f"Could not reach Discord ({type(exc).__name__}). Check the network connection and try again.")
        return 1
    return 0


def serve(settings: Settings, **client_kwargs) -> int:
    """Entry point for the CLI: logging set up, the bot run, Ctrl-C a clean exit (0)."""
    if not settings.discord_token:
        _say(NO_TOKEN)
        return 2
    level = getattr(logging, str(settings.log_level).upper(), logging.WARNING)
    if not logging.getLogger().handlers:  # the CLI may have set logging up already: one handler only
        discord.utils.setup_logging(level=level, root=True)
    # this bot has no voice features; discord.py's "voice will NOT be supported" warnings are noise
    logging.getLogger("discord.client").addFilter(lambda r: "voice will NOT be supported" not in r.getMessage())
    # our own lines (answer ids, builds, refusals; never tokens or question text) are worth keeping
    logging.getLogger("briefbot").setLevel(min(level, logging.INFO))
    try:
        return asyncio.run(run(settings, **client_kwargs))
    except KeyboardInterrupt:
        _say("Stopped.")
        return 0
