"""``briefbot serve``: run the Discord bot until stopped, with clear messages instead of tracebacks
for what people get wrong first (no token, a rejected token, a wrong server id, the intent).

SIGTERM (``docker stop``, systemd) and SIGINT (Ctrl-C) stop it cleanly: no new questions, the
ones in flight finish within ``BRIEFBOT_SHUTDOWN_SECONDS``, exit code 0. A running build is
left to its own lock and temp-folder rules (a killed build never damages the live index)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import aiohttp
import discord

from bot.config import Settings

from .app import WrongGuild, create_bot

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
    "Discord refused the Message Content intent (needed for questions by mention, DM and thread follow-up).\n"
    "Enable \"Message Content Intent\" under Developer Portal > your application > Bot > Privileged Gateway Intents,\n"
    "or set BRIEFBOT_DISCORD_MENTIONS=false to answer /ask only."
)
WRONG_GUILD = (
    "Discord refused to register commands in server {guild} (403 Missing Access): the bot is not in that server,\n"
    "or it was invited without the applications.commands scope. Check BRIEFBOT_DISCORD_GUILD_ID (Developer Mode >\n"
    "right-click the server > Copy Server ID), re-invite with the link in docs/discord.md, or leave it empty."
)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run(settings: Settings, engine=None, **client_kwargs) -> int:
    """Run until the connection ends; returns the process exit code. Never prints the token."""
    if not settings.discord_token:
        _say(NO_TOKEN)
        return 2
    bot = create_bot(settings, engine, **client_kwargs)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task] = []

    def stop(signame: str) -> None:
        if not stopping:
            log.info("%s received: stopping", signame)
            stopping.append(loop.create_task(bot.shutdown()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    try:
        async with bot:
            await bot.start(settings.discord_token)
    except WrongGuild as exc:
        _say(WRONG_GUILD.format(guild=exc.args[0] if exc.args else "?"))
        return 1
    except discord.LoginFailure:
        _say(BAD_TOKEN)
        return 1
    except discord.PrivilegedIntentsRequired:
        _say(NO_INTENT)
        return 1
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        _say(f"Could not reach Discord ({type(exc).__name__}). Check the network connection and try again.")
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    if stopping:
        await asyncio.gather(*stopping, return_exceptions=True)
        _say("Stopped.")
    return 0


class _Redact(logging.Filter):
    """Last line of defence: a log line that carries the token has it replaced."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secret and self.secret in record.getMessage():
            record.msg, record.args = record.getMessage().replace(self.secret, "[token]"), ()
        return True


def setup_logging(settings: Settings) -> int:
    """BRIEFBOT_LOG_LEVEL decides what ``serve`` logs. discord.py stays at INFO or above even at
    DEBUG: its DEBUG lines carry raw gateway payloads (question text) and interaction tokens."""
    level = getattr(logging, str(settings.log_level).strip().upper(), None)
    if not isinstance(level, int):
        level = logging.WARNING
    root = logging.getLogger()
    if not root.handlers:
        discord.utils.setup_logging(level=level, root=True)
    root.setLevel(level)
    for handler in root.handlers:
        handler.setLevel(logging.NOTSET)
        handler.addFilter(_Redact(settings.discord_token))
    for name in ("bot", "briefbot"):  # the CLI quiets "bot" for one-shot commands; serve follows the setting
        logging.getLogger(name).setLevel(level)
    logging.getLogger("discord").setLevel(max(level, logging.INFO))
    return level


def serve(settings: Settings, **client_kwargs) -> int:
    """Entry point for the CLI: logging set up, the bot run, Ctrl-C a clean exit (0)."""
    if not settings.discord_token:
        _say(NO_TOKEN)
        return 2
    setup_logging(settings)
    # this bot has no voice features; discord.py's "voice will NOT be supported" warnings are noise
    logging.getLogger("discord.client").addFilter(lambda r: "voice will NOT be supported" not in r.getMessage())
    try:
        return asyncio.run(run(settings, **client_kwargs))
    except KeyboardInterrupt:
        _say("Stopped.")
        return 0
