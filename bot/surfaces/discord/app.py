"""The Discord client: settings and an engine in, a ready-to-start ``commands.Bot`` out."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings

from .builds import BuildRunner
from .feedback import AnswerStore
from .ratelimit import RateLimiter
from .render import NO_MENTIONS
from .views import FeedbackButton, SourcesButton

log = logging.getLogger("briefbot.discord")

ASK_WORKERS = 4  # engine.ask is CPU-bound; more threads only add contention


class BriefBot(commands.Bot):
    """Holds what the cogs share: settings, engine, answer store, rate limiter, build runner."""

    def __init__(self, settings: Settings, engine, **client_kwargs):
        intents = discord.Intents.default()
        intents.message_content = True  # questions asked in the bot's threads carry no mention
        client_kwargs.setdefault("allowed_mentions", discord.AllowedMentions.none())
        client_kwargs.setdefault("help_command", None)
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, **client_kwargs)
        self.settings = settings
        self.engine = engine
        self.store = AnswerStore(settings.feedback_path)
        self.limiter = RateLimiter(settings.cooldown_seconds, settings.guild_rate_per_minute)
        self.builds = BuildRunner(engine, settings)
        self.ask_pool = ThreadPoolExecutor(max_workers=ASK_WORKERS, thread_name_prefix="briefbot-ask")
        self.started_at = time.monotonic()
        self.tree.on_error = self._on_app_command_error

    async def on_message(self, message: discord.Message) -> None:
        """No text commands: questions by mention are handled by the ask cog's listener."""

    async def setup_hook(self) -> None:
        from .cogs.admin import AdminCog
        from .cogs.ask import AskCog

        await self.add_cog(AskCog(self))
        await self.add_cog(AdminCog(self))
        self.add_dynamic_items(SourcesButton, FeedbackButton)
        if self.settings.discord_guild_id:
            guild = discord.Object(id=self.settings.discord_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("commands synced count=%d scope=%s", len(synced),
                 "guild" if self.settings.discord_guild_id else "global")
        self._warm = asyncio.get_running_loop().create_task(self._warm_up())

    async def _warm_up(self) -> None:
        """Load the model and index before the first question, so it isn't the slow one."""
        try:
            await asyncio.to_thread(self.engine.status)
        except Exception as exc:  # no index yet: the first /reindex or question builds it
            log.warning("index not ready at start: %s", exc)

    async def on_ready(self) -> None:
        log.info("connected as %s (id %s) guilds=%d", self.user, getattr(self.user, "id", "?"), len(self.guilds))

    async def close(self) -> None:
        await super().close()
        self.ask_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    async def run_blocking(self, func, *args):
        """Run a CPU-bound engine call off the event loop, so heartbeats and acks never wait."""
        return await asyncio.get_running_loop().run_in_executor(self.ask_pool, func, *args)

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


def create_bot(settings: Settings, engine=None, **client_kwargs) -> BriefBot:
    """Make the bot; ``client_kwargs`` go to discord.py as is (``connector=``, ``proxy=``, ...)."""
    if engine is None:
        from bot.answering.engine import Engine

        engine = Engine(settings)
    return BriefBot(settings, engine, **client_kwargs)
