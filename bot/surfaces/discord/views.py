"""The buttons under every answer: "Show sources" and helpful / not helpful.

They are :class:`discord.ui.DynamicItem` s whose ``custom_id`` carries the answer id, so they keep
working after the bot restarts (the answer itself is looked up in the answer store).
"""

from __future__ import annotations

import asyncio
import logging
import re

import discord

from bot.answering.collections import SHARED, SHARED_MARK

from .render import NO_MENTIONS, render_context

log = logging.getLogger("briefbot.discord")

_AID = r"(?P<aid>[0-9a-f]{6,32})"


class SourcesButton(discord.ui.DynamicItem[discord.ui.Button], template=r"bb:src:" + _AID):
    def __init__(self, answer_id: str):
        super().__init__(discord.ui.Button(label="Show sources", style=discord.ButtonStyle.secondary,
                                           custom_id=f"bb:src:{answer_id}", emoji="📄"))
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["aid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        await interaction.response.defer(ephemeral=True, thinking=True)
        scope = str(interaction.guild_id or "")
        record = await asyncio.to_thread(bot.store.get, self.answer_id, scope)  # type: ignore[attr-defined]
        if record is None:
            await interaction.followup.send("I no longer have that answer on record.", ephemeral=True,
                                            allowed_mentions=NO_MENTIONS)
            return
        collections = bot.collections  # type: ignore[attr-defined]
        own = bot.collection_name(interaction.guild_id)  # type: ignore[attr-defined]

        def contexts():
            out = []
            for c in record.citations:
                name = SHARED if own is None or c.title.endswith(SHARED_MARK) else own
                try:
                    with collections.using(name) as engine:
                        out.append(engine.context(c.sentence_id, 2))
                except Exception:  # the sentence left the index since: show it alone
                    log.warning("context lookup failed answer=%s sentence=%s", self.answer_id, c.sentence_id)
                    out.append([])
            return out

        passages = await asyncio.to_thread(contexts)
        for msg in render_context(record.citations, passages):
            await interaction.followup.send(content=msg.content, embeds=msg.embeds, files=msg.discord_files(),
                                            ephemeral=True, allowed_mentions=NO_MENTIONS)
        log.info("sources shown answer=%s user=%s", self.answer_id, interaction.user.id)


class FeedbackButton(discord.ui.DynamicItem[discord.ui.Button], template=r"bb:fb:(?P<verdict>up|down):" + _AID):
    def __init__(self, verdict: str, answer_id: str):
        label, style, emoji = (
            ("Helpful", discord.ButtonStyle.success, "👍") if verdict == "up"
            else ("Not helpful", discord.ButtonStyle.danger, "👎")
        )
        super().__init__(discord.ui.Button(label=label, style=style, emoji=emoji,
                                           custom_id=f"bb:fb:{verdict}:{answer_id}"))
        self.verdict, self.answer_id = verdict, answer_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(match["verdict"], match["aid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        verdict = "helpful" if self.verdict == "up" else "not_helpful"
        entry = await asyncio.to_thread(
            interaction.client.store.record_feedback, self.answer_id, interaction.user.id, verdict,  # type: ignore[attr-defined]
            str(interaction.guild_id or ""),
        )
        if entry is None:
            text = "I no longer have that answer on record, so I couldn't save your feedback."
        elif verdict == "helpful":
            text = "Thanks! Recorded as helpful."
        else:
            text = "Thanks for telling me. Recorded as not helpful; the team reviews these."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        log.info("feedback answer=%s user=%s verdict=%s", self.answer_id, interaction.user.id, verdict)


def answer_view(answer_id: str, *, sources: bool) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if sources:
        view.add_item(SourcesButton(answer_id))
    view.add_item(FeedbackButton("up", answer_id))
    view.add_item(FeedbackButton("down", answer_id))
    return view
