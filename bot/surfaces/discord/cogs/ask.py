"""Questions: ``/ask``, mentions, DMs, and follow-ups in the answer's thread or reply chain."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Sequence

import discord
from discord import app_commands
from discord.ext import commands

from bot.answering.types import Answer, Turn
from bot.answering.collections import SHARED

from ..app import STOPPING
from ..render import NO_MENTIONS, Outgoing, clip, render_answer
from ..views import answer_view

log = logging.getLogger("briefbot.discord")

DM_OFF = "I don't answer direct messages here. Please ask in the server with `/ask`."
EMPTY = "Ask me a question about the briefings, for example: `/ask question: What changed in US missile policy?`"
FAILED = "Sorry, something went wrong while answering (answer id `{aid}`). Please try again in a moment."
TEAM_IN_SERVER = ("Questions about a team's briefings belong in that team's server: each server's documents are "
                  "private to it, so I can't answer them here. Ask there with `/ask`.")
DM_NOTICE_SECONDS = 600.0
DM_NOTICE_MAX = 10_000


class AskCog(commands.Cog):
    def __init__(self, bot):
        self.bot = bot
        self._dm_notice: dict[int, float] = {}  # bounded: entries expire after DM_NOTICE_SECONDS

    def _notice_due(self, user_id: int) -> bool:
        """Say the DM notice once per user per ``DM_NOTICE_SECONDS``; the map never grows without bound."""
        now = time.monotonic()
        if len(self._dm_notice) >= DM_NOTICE_MAX:
            self._dm_notice = {u: t for u, t in self._dm_notice.items() if now - t <= DM_NOTICE_SECONDS}
            while len(self._dm_notice) >= DM_NOTICE_MAX:
                self._dm_notice.pop(next(iter(self._dm_notice)))
        if now - self._dm_notice.get(user_id, -1e18) <= DM_NOTICE_SECONDS:
            return False
        self._dm_notice.pop(user_id, None)
        self._dm_notice[user_id] = now
        return True

    def _dm_refusal(self) -> str | None:
        """What a DM gets instead of an answer, or None when DMs are answered (from the shared collection)."""
        if not self.bot.settings.allow_dms:
            return DM_OFF
        if not self.bot.collections.shared_enabled:
            return TEAM_IN_SERVER
        return None

    def _wants_thread(self, answer: Answer) -> bool:
        return bool(self.bot.settings.discord_threads) and not answer.error and not answer.abstained

    # ---- the shared path: question in, messages out -----------------------------------------
    async def _answer(self, question: str, history: Sequence[Turn], *, aid: str, surface: str,
                      user_id: int, guild_id: int | None, conversation: str) -> tuple[Answer, list[Outgoing]]:
        collections = self.bot.collections
        name = self.bot.collection_name(guild_id)

        def work():
            answer = collections.ask(name, question, tuple(history))
            built_at = ""
            for candidate in (name, SHARED):
                if candidate is None or not answer.index_version:
                    continue
                try:
                    status = collections.engine(candidate).status()
                    if status.version == answer.index_version:
                        built_at = status.built_at
                        break
                except Exception:  # status is decoration; the answer stands without it
                    pass
            return answer, built_at

        started = time.monotonic()
        answer, built_at = await self.bot.run_blocking(work)
        if not answer.error:
            await self.bot.db(self.bot.store.record, aid, conversation, user_id, answer, name or "")
        log.info(
            "answer id=%s engine_id=%s surface=%s user=%s guild=%s question_chars=%d history=%d abstained=%s citations=%d "
            "version=%s answerer=%s error=%s ms=%.0f",
            aid, answer.id, surface, user_id, guild_id, len(question), len(history), answer.abstained, len(answer.citations),
            answer.index_version, answer.answerer, bool(answer.error), (time.monotonic() - started) * 1000,
        )
        return answer, render_answer(answer, answer_id=aid, built_at=built_at)

    @staticmethod
    def _kwargs(msg: Outgoing) -> dict:
        kw: dict = {"allowed_mentions": NO_MENTIONS}
        if msg.content:
            kw["content"] = msg.content
        if msg.embeds:
            kw["embeds"] = msg.embeds
        if msg.files:
            kw["files"] = msg.discord_files()
        return kw

    async def _open_thread(self, channel, message: discord.abc.Snowflake, question: str) -> discord.Thread | None:
        """Threads keep a conversation together; without permission we fall back to reply chains."""
        if not isinstance(channel, discord.TextChannel):
            return None
        name = clip(re.sub(r"\s+", " ", question).strip(), 90) or "Briefing question"
        try:
            return await channel.create_thread(name=name, message=message, auto_archive_duration=1440)
        except (discord.HTTPException, ValueError) as exc:
            log.warning("could not open a thread channel=%s: %r", channel.id, exc)
            return None

    # ---- /ask ---------------------------------------------------------------------------------
    @app_commands.command(name="ask", description="Ask a question about the briefings")
    @app_commands.describe(question="What you want to know; the answer quotes the briefings word for word")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        bot = self.bot
        if not bot.accepting:
            await interaction.response.send_message(STOPPING, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        refusal = self._dm_refusal() if interaction.guild_id is None else None
        if refusal:
            await interaction.response.send_message(refusal, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        with bot.question():
            await self._slash(interaction, question)

    async def _slash(self, interaction: discord.Interaction, question: str) -> None:
        bot, user = self.bot, interaction.user
        decision = bot.limiter.acquire(user.id, interaction.guild_id)
        if not decision.ok:
            await interaction.response.send_message(decision.message(), ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        aid = uuid.uuid4().hex[:12]
        try:
            await interaction.response.defer(thinking=True)
            channel = interaction.channel
            in_thread = bot.owns_thread(channel)
            conversation = str(channel.id) if in_thread and channel is not None else f"ask:{aid}"
            history = await bot.db(bot.store.history, conversation) if in_thread else []
            answer, messages = await self._answer(question, history, aid=aid, surface="slash", user_id=user.id,
                                                  guild_id=interaction.guild_id, conversation=conversation)
            first, sent_ids = None, []
            for i, msg in enumerate(messages):
                kw = self._kwargs(msg)
                if i == 0 and not answer.error:
                    kw["view"] = answer_view(aid, sources=bool(answer.citations))
                sent = await interaction.followup.send(wait=True, **kw)
                sent_ids.append(sent.id)
                first = first or sent
            bot.limiter.release(user.id)  # answered: the next question may come while the thread opens
            for mid in sent_ids:
                await bot.db(bot.store.link_message, mid, aid)
            if first is not None and not in_thread and self._wants_thread(answer):
                thread = await self._open_thread(channel, first, question)
                if thread is not None:
                    await bot.db(bot.store.set_conversation, aid, str(thread.id))
        except Exception:
            log.exception("ask failed id=%s user=%s", aid, user.id)
            try:
                await interaction.followup.send(FAILED.format(aid=aid), ephemeral=True, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException:
                pass
        finally:
            bot.limiter.release(user.id)

    # ---- mentions, DMs, thread follow-ups, reply chains ---------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        bot = self.bot
        if not bot.settings.discord_mentions:
            return  # slash commands only: the Message Content intent is not even requested
        if message.author.bot or bot.user is None or message.author.id == bot.user.id:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        dm = message.guild is None
        in_thread = bot.owns_thread(message.channel)
        mentioned = any(u.id == bot.user.id for u in message.mentions)
        scope = str(message.guild.id) if message.guild else ""
        replied = None
        if message.reference is not None and message.reference.message_id:
            replied = await bot.db(bot.store.by_message, message.reference.message_id, scope)
        if in_thread and not mentioned:
            # in its threads the bot answers the person who asked, or anyone who mentions it
            asker = await bot.db(bot.store.asker, str(message.channel.id))
            if asker is not None and asker != message.author.id:
                return
        if not (dm or in_thread or mentioned or replied):
            return
        refusal = self._dm_refusal() if dm else None
        if refusal:
            if self._notice_due(message.author.id):  # say it once, not per message
                await message.channel.send(refusal, allowed_mentions=NO_MENTIONS)
            return
        if not bot.accepting:
            await message.reply(STOPPING, mention_author=False, allowed_mentions=NO_MENTIONS)
            return
        with bot.question():
            await self._message(message, dm=dm, in_thread=in_thread, replied=replied)

    async def _message(self, message: discord.Message, *, dm: bool, in_thread: bool, replied) -> None:
        bot = self.bot
        question = re.sub(rf"<@!?{bot.user.id}>", " ", message.content).strip()
        if not question:
            await message.reply(EMPTY, mention_author=False, allowed_mentions=NO_MENTIONS)
            return
        decision = bot.limiter.acquire(message.author.id, message.guild.id if message.guild else None)
        if not decision.ok:
            await message.reply(decision.message(), mention_author=False, allowed_mentions=NO_MENTIONS)
            return
        aid = uuid.uuid4().hex[:12]
        try:
            if in_thread:
                conversation = str(message.channel.id)
            elif replied is not None:
                conversation = replied.conversation
            else:
                conversation = f"chain:{aid}"
            history = await bot.db(bot.store.history, conversation) if (in_thread or replied) else []
            async with message.channel.typing():
                answer, messages = await self._answer(
                    question, history, aid=aid, surface="dm" if dm else ("thread" if in_thread else "mention"),
                    user_id=message.author.id, guild_id=message.guild.id if message.guild else None,
                    conversation=conversation)
            first, sent_ids = None, []
            for i, msg in enumerate(messages):
                kw = self._kwargs(msg)
                if i == 0 and not answer.error:
                    kw["view"] = answer_view(aid, sources=bool(answer.citations))
                if i == 0:
                    sent = await message.reply(mention_author=False, **kw)
                else:
                    sent = await message.channel.send(**kw)
                sent_ids.append(sent.id)
                first = first or sent
            bot.limiter.release(message.author.id)
            for mid in sent_ids:
                await bot.db(bot.store.link_message, mid, aid)
            if first is not None and not in_thread and replied is None and not dm and self._wants_thread(answer):
                thread = await self._open_thread(message.channel, first, question)
                if thread is not None:
                    await bot.db(bot.store.set_conversation, aid, str(thread.id))
        except Exception:
            log.exception("answer failed id=%s user=%s", aid, message.author.id)
            try:
                await message.channel.send(FAILED.format(aid=aid), allowed_mentions=NO_MENTIONS)
            except discord.HTTPException:
                pass
        finally:
            bot.limiter.release(message.author.id)
