"""The Discord client: settings and collections in, a ready-to-start ``commands.Bot`` out."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.answering.collections import SHARED, Collections

from .feedback import AnswerStore
from .ratelimit import RateLimiter
from .render import NO_MENTIONS
from .views import FeedbackButton, SourcesButton

log = logging.getLogger("briefbot.discord")

ASK_WORKERS = 4  # engine.ask is CPU-bound; more threads only add contention
HEALTH_EVERY = 30.0  # seconds between heartbeat writes; `briefbot health` allows three missed
PURGE_EVERY = 86400.0
STOPPING = "I'm restarting right now; please ask again in a minute."


class WrongGuild(Exception):
    """BRIEFBOT_DISCORD_GUILD_ID names a server the bot is not in (403 on command sync)."""


def health_path(settings: Settings) -> Path:
    return Path(settings.feedback_path).with_name("health.json")


def sync_state_path(settings: Settings) -> Path:
    return Path(settings.feedback_path).with_name("commands-sync.json")


class BriefBot(commands.Bot):
    """Holds what the cogs share: settings, collections, answer store, rate limiter."""

    def __init__(self, settings: Settings, collections: Collections, **client_kwargs):
        intents = discord.Intents.default()
        # Only mentions, DMs and thread follow-ups read message text; slash commands need no intent.
        intents.message_content = bool(settings.discord_mentions)
        client_kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
        client_kwargs.setdefault("help_command", None)
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, **client_kwargs)
        self.settings = settings
        self.collections = collections
        self.store = AnswerStore(settings.feedback_path)
        self.limiter = RateLimiter(settings.cooldown_seconds, settings.guild_rate_per_minute)
        self.ask_pool = ThreadPoolExecutor(max_workers=ASK_WORKERS, thread_name_prefix="briefbot-ask")
        self.started_at = time.monotonic()
        self.accepting = True
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.synced = False  # whether this start sent the command set to Discord
        self.tree.on_error = self._on_app_command_error

    # ---- which collection ---------------------------------------------------------------------
    @staticmethod
    def collection_name(guild_id: int | None) -> str | None:
        """A server's own collection is named by its id; ``None`` (a DM) means shared only."""
        return str(guild_id) if guild_id else None

    def engine_for(self, guild_id: int | None):
        name = self.collection_name(guild_id)
        return self.collections.engine(name if name is not None else SHARED)

    # ---- questions in flight, for a clean stop ------------------------------------------------
    @contextlib.contextmanager
    def question(self):
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def shutdown(self, deadline: float | None = None) -> None:
        """Stop taking questions, let the ones in flight finish (up to ``deadline`` s), then close."""
        if not self.accepting:
            return
        self.accepting = False
        deadline = self.settings.shutdown_seconds if deadline is None else deadline
        log.info("stopping: %d question(s) in flight, waiting up to %.0f s", self.in_flight, deadline)
        if self.in_flight:
            try:
                await asyncio.wait_for(self._idle.wait(), deadline)
            except asyncio.TimeoutError:
                log.warning("stopping with %d question(s) unanswered after %.0f s", self.in_flight, deadline)
        await self.close()

    async def on_message(self, message: discord.Message) -> None:
        """No text commands: questions by mention are handled by the ask cog's listener."""

    # ---- start-up -----------------------------------------------------------------------------
    async def setup_hook(self) -> None:
        from .cogs.admin import AdminCog
        from .cogs.ask import AskCog

        await self.add_cog(AskCog(self))
        await self.add_cog(AdminCog(self))
        self.add_dynamic_items(SourcesButton, FeedbackButton)
        await self._sync_commands()
        loop = asyncio.get_running_loop()
        self._tasks += [loop.create_task(self._warm_up()), loop.create_task(self._heartbeat()),
                        loop.create_task(self._purge_loop())]

    def _payload_hash(self, scope: str) -> str:
        payload = [cmd.to_dict(self.tree) for cmd in self.tree.get_commands()]
        blob = json.dumps({"app": self.application_id, "scope": scope, "commands": payload}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def _sync_commands(self) -> None:
        """Sync only when the command set (or where it goes) changed; clear the other scope's copies."""
        guild_id = self.settings.discord_guild_id
        scope = f"guild:{guild_id}" if guild_id else "global"
        digest = self._payload_hash(scope)
        state_file = sync_state_path(self.settings)
        state = await asyncio.to_thread(_read_json, state_file)
        if state.get("hash") == digest:
            log.info("commands unchanged since the last sync; not syncing")
            return
        try:
            if guild_id:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                await self.http.bulk_upsert_global_commands(self.application_id, payload=[])  # no duplicates
            else:
                synced = await self.tree.sync()
                old = str(state.get("scope", ""))
                if old.startswith("guild:"):
                    with contextlib.suppress(discord.HTTPException):
                        await self.http.bulk_upsert_guild_commands(self.application_id, int(old[6:]), payload=[])
        except discord.Forbidden:
            raise WrongGuild(guild_id) from None
        self.synced = True
        await asyncio.to_thread(_write_json, state_file, {"hash": digest, "scope": scope})
        log.info("commands synced count=%d scope=%s", len(synced), "guild" if guild_id else "global")

    async def _warm_up(self) -> None:
        """Load the model and the shared index before the first question, so it isn't the slow one."""
        if not self.collections.shared_enabled:
            await asyncio.to_thread(lambda: self.collections.encoder)
            return
        try:
            await asyncio.to_thread(lambda: self.collections.engine(SHARED).status())
        except Exception as exc:  # no shared index yet: the first question or /reindex builds it
            log.warning("shared collection not ready at start: %s", exc)

    async def _heartbeat(self) -> None:
        """``briefbot health`` (the Docker HEALTHCHECK) reads this file: fresh and connected = healthy."""
        while not self.is_closed():
            await self._beat()
            await asyncio.sleep(HEALTH_EVERY)

    async def _beat(self) -> None:
        data = {"pid": os.getpid(), "at": time.time(), "connected": self.is_ready() and not self.is_closed(),
                "accepting": self.accepting, "in_flight": self.in_flight}
        with contextlib.suppress(OSError):
            await asyncio.to_thread(_write_json, health_path(self.settings), data)

    async def _purge_loop(self) -> None:
        """Retention: stored answers and conversations older than ``retention_days`` go, at start and daily."""
        while not self.is_closed():
            try:
                removed = await asyncio.to_thread(self.store.purge, self.settings.retention_days)
                if removed:
                    log.info("retention: removed %d stored answers older than %.0f days", removed,
                             self.settings.retention_days)
            except Exception as exc:
                log.warning("retention purge failed: %r", exc)
            await asyncio.sleep(PURGE_EVERY)

    async def on_ready(self) -> None:
        log.info("connected as %s (id %s) guilds=%d", self.user, getattr(self.user, "id", "?"), len(self.guilds))
        await self._beat()

    async def close(self) -> None:
        self.accepting = False
        for task in self._tasks:
            task.cancel()
        await super().close()
        self.ask_pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.store.close)
        with contextlib.suppress(OSError):
            health_path(self.settings).unlink(missing_ok=True)

    async def run_blocking(self, func, *args):
        """Run a CPU-bound engine call off the event loop, so heartbeats and acks never wait."""
        return await asyncio.get_running_loop().run_in_executor(self.ask_pool, func, *args)

    async def db(self, func, *args):
        """Answer-store (SQLite) calls run in a thread: no disk I/O on the event loop."""
        return await asyncio.to_thread(func, *args)

    def owns_thread(self, channel) -> bool:
        return isinstance(channel, discord.Thread) and self.user is not None and channel.owner_id == self.user.id

    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    async def _on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        log.error("command failed command=%s user=%s: %r", getattr(interaction.command, "name", "?"),
                  interaction.user.id, error, exc_info=error)
        text = "Sorry, something went wrong on my side. The error is logged; please try again later."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            pass


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def create_bot(settings: Settings, engine=None, collections: Collections | None = None, **client_kwargs) -> BriefBot:
    """Make the bot; ``client_kwargs`` go to discord.py as is (``connector=``, ``proxy=``, ...).

    ``engine`` (single-collection mode, used by tests and one-server setups) serves the server
    named by ``discord_guild_id`` and the shared collection (DMs); every other server gets its own."""
    if collections is None:
        pinned = {}
        if engine is not None:
            pinned[SHARED] = engine
            if settings.discord_guild_id:
                pinned[str(settings.discord_guild_id)] = engine
        collections = Collections(settings, encoder=getattr(engine, "encoder", None), pinned=pinned)
    return BriefBot(settings, collections, **client_kwargs)
