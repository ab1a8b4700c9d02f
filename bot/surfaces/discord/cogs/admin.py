"""Admin and info commands: ``/reindex``, ``/upload``, ``/sources``, ``/status``."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.ingest.uploads import UploadRefused, check_upload

from ..builds import BuildResult
from ..render import COLOR_ERROR, NO_MENTIONS, escape, render_lines

log = logging.getLogger("briefbot.discord")

NOT_ADMIN = ("Sorry, only server managers (Manage Server permission) or members with a briefing-admin role "
             "can do that. Nothing was changed.")
NOT_IN_DMS = "Admin commands only work inside the server, not in direct messages. Nothing was changed."


def admin_refusal(interaction: discord.Interaction, admin_role_ids: tuple[int, ...]) -> str | None:
    """Why this user may not run an admin command, or None if they may."""
    if interaction.guild is None or not isinstance(interaction.user, discord.Member):
        return NOT_IN_DMS
    perms = interaction.permissions
    if perms.manage_guild or perms.administrator:
        return None
    if admin_role_ids and any(r.id in admin_role_ids for r in interaction.user.roles):
        return None
    return NOT_ADMIN


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _uptime(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def report_lines(result: BuildResult) -> list[str]:
    r = result.report
    lines = [escape(line) for line in r.lines()]
    lines.append(f"index version `{r.index_version or '?'}` · took {_duration(result.seconds)}")
    if result.shared:
        lines.append("(a rebuild was already running; this reply shares its result)")
    return lines


class AdminCog(commands.Cog):
    def __init__(self, bot):
        self.bot = bot

    async def _refuse_unless_admin(self, interaction: discord.Interaction, command: str) -> bool:
        reason = admin_refusal(interaction, self.bot.settings.admin_role_ids)
        if reason is None:
            return False
        log.info("refused command=%s user=%s guild=%s", command, interaction.user.id, interaction.guild_id)
        await interaction.response.send_message(reason, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return True

    async def _send(self, interaction: discord.Interaction, messages, *, ephemeral: bool = False) -> None:
        for msg in messages:
            await interaction.followup.send(embeds=msg.embeds, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="reindex", description="Rebuild the briefing index (admins)")
    async def reindex(self, interaction: discord.Interaction) -> None:
        if await self._refuse_unless_admin(interaction, "reindex"):
            return
        await interaction.response.defer(thinking=True)
        log.info("reindex requested user=%s guild=%s", interaction.user.id, interaction.guild_id)
        try:
            result = await self.bot.builds.rebuild()
        except Exception as exc:
            log.exception("reindex failed")
            await interaction.followup.send(f"The rebuild failed: {escape(str(exc))[:1500]}. The old index is still "
                                            "answering.", allowed_mentions=NO_MENTIONS)
            return
        color = COLOR_ERROR if result.report.failed else 0x2F855A
        await self._send(interaction, render_lines("Index rebuilt", report_lines(result), color=color))

    @app_commands.command(name="upload", description="Add a briefing document and index it (admins)")
    @app_commands.describe(file="A .txt, .md, .pdf, .docx or .html file",
                           overwrite="Replace a document with the same name (default: no)")
    async def upload(self, interaction: discord.Interaction, file: discord.Attachment, overwrite: bool = False) -> None:
        if await self._refuse_unless_admin(interaction, "upload"):
            return
        max_bytes = int(self.bot.settings.upload_max_mb * 1024 * 1024)
        try:
            name = check_upload(file.filename, file.size, max_bytes)
        except UploadRefused as exc:
            await interaction.response.send_message(f"Upload refused: {exc}. Nothing was changed.", ephemeral=True,
                                                    allowed_mentions=NO_MENTIONS)
            return
        await interaction.response.defer(thinking=True)
        log.info("upload requested user=%s name=%s bytes=%d", interaction.user.id, name, file.size)
        try:
            data = await file.read()
            saved, replaced, result = await self.bot.builds.upload(name, data, overwrite)
        except UploadRefused as exc:
            await interaction.followup.send(f"Upload refused: {escape(str(exc))}. Nothing was changed.",
                                            allowed_mentions=NO_MENTIONS)
            return
        except (discord.HTTPException, ValueError, OSError) as exc:
            log.exception("upload failed name=%s", name)
            await interaction.followup.send(f"Upload failed: {escape(str(exc))[:1500]}", allowed_mentions=NO_MENTIONS)
            return
        head = [f"Saved as `{saved}`" + (" (replaced the existing document)" if replaced else "")
                + (f" (renamed from `{escape(file.filename)}`)" if saved != file.filename else "")]
        await self._send(interaction, render_lines("Document uploaded", head + report_lines(result)))

    @app_commands.command(name="sources", description="List the indexed briefing documents")
    async def sources(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        try:
            docs = await self.bot.run_blocking(self.bot.engine.sources)
        except Exception as exc:
            log.warning("sources failed: %r", exc)
            await interaction.followup.send("No index is available yet; an admin can build one with `/reindex`.",
                                            ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        lines = [f"**{escape(d.title or d.name)}** · `{d.name}` · {d.sentences} sentences · indexed {d.indexed_at}"
                 for d in docs] or ["No documents are indexed yet."]
        await self._send(interaction, render_lines(f"Indexed briefings ({len(docs)})", lines), ephemeral=True)

    @app_commands.command(name="status", description="Index version, build time, counts, model and uptime")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        uptime = _uptime(self.bot.uptime())
        try:
            st = await self.bot.run_blocking(self.bot.engine.status)
        except Exception as exc:
            log.warning("status failed: %r", exc)
            lines = ["No index is available yet; an admin can build one with `/reindex`.", f"uptime: {uptime}"]
        else:
            lines = [f"index version: `{st.version}`", f"built: {st.built_at}", f"documents: {st.documents}",
                     f"sentences: {st.sentences}", f"model: {escape(st.model)}", f"uptime: {uptime}"]
        await self._send(interaction, render_lines("briefbot status", lines), ephemeral=True)
