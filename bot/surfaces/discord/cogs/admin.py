"""Admin and info commands: ``/reindex``, ``/upload``, ``/remove``, ``/sources``, ``/status``.

Every one acts on the server's own collection only. Admin commands are registered with
``default_permissions(manage_guild=True)`` and ``guild_only`` so Discord hides them from
members and DMs; the run-time check stays as a backstop (server owners can re-grant them).
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot.ingest.uploads import UploadRefused, check_upload
from bot.answering.collections import SHARED

from .. import builds
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


# An interaction token lives 15 minutes; a report that would arrive later goes to the channel.
TOKEN_SECONDS = 14 * 60
NO_INDEX = "No briefings are indexed in this server yet; an admin can add one with `/upload`."
admin_only = app_commands.default_permissions(manage_guild=True)


def _code(text: str) -> str:
    """A file name shown literally: markdown and mentions escaped (NO_MENTIONS also blocks pings)."""
    return escape(discord.utils.escape_mentions(text)).replace("\n", " ").replace("\n", " ")


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


class ConfirmRemove(discord.ui.View):
    """Two buttons under the /remove prompt; only the admin who asked can press them."""

    def __init__(self, user_id: int):
        super().__init__(timeout=120)
        self.user_id = user_id
        self.confirmed: bool | None = None
        self.pressed: discord.Interaction | None = None
        self.done = asyncio.Event()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.user_id:
            await interaction.response.send_message("Only the admin who ran /remove can confirm it.", ephemeral=True,
                                                    allowed_mentions=NO_MENTIONS)
            return False
        return True

    async def _finish(self, interaction: discord.Interaction, confirmed: bool) -> None:
        self.confirmed, self.pressed = confirmed, interaction
        self.stop()
        self.done.set()

    @discord.ui.button(label="Remove it", style=discord.ButtonStyle.danger, custom_id="bb:rm:yes")
    async def yes(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._finish(interaction, True)

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary, custom_id="bb:rm:no")
    async def no(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._finish(interaction, False)

    async def on_timeout(self) -> None:
        self.done.set()


class AdminCog(commands.Cog):
    def __init__(self, bot):
        self.bot = bot

    def _collection(self, interaction: discord.Interaction) -> str:
        return self.bot.collection_name(interaction.guild_id)

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

    async def _report(self, interaction: discord.Interaction, messages) -> None:
        """Follow up on the interaction, or post to the channel once its 15-minute token has expired."""
        age = time.time() - interaction.created_at.timestamp()
        if age < TOKEN_SECONDS:
            try:
                await self._send(interaction, messages)
                return
            except discord.NotFound:  # the token expired after all
                pass
        channel = interaction.channel
        log.info("report posted to the channel: the interaction token expired (%.0f s)", age)
        for msg in messages:
            await channel.send(content=f"<@{interaction.user.id}> your request finished:", embeds=msg.embeds,
                               allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="reindex", description="Rebuild this server's briefing index (admins)")
    @app_commands.guild_only()
    @admin_only
    async def reindex(self, interaction: discord.Interaction) -> None:
        if await self._refuse_unless_admin(interaction, "reindex"):
            return
        await interaction.response.defer(thinking=True)
        name = self._collection(interaction)
        log.info("reindex requested user=%s guild=%s", interaction.user.id, interaction.guild_id)
        try:
            result = await builds.rebuild(self.bot.collections, name)
        except Exception as exc:
            log.exception("reindex failed")
            await self._report_text(interaction, f"The rebuild failed: {escape(str(exc))[:1500]}. The old index is "
                                                 "still answering.")
            return
        color = COLOR_ERROR if result.report.failed else 0x2F855A
        await self._report(interaction, render_lines("Index rebuilt", report_lines(result), color=color))

    async def _report_text(self, interaction: discord.Interaction, text: str) -> None:
        try:
            await interaction.followup.send(text, allowed_mentions=NO_MENTIONS)
        except discord.NotFound:
            await interaction.channel.send(text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="upload", description="Add a briefing document to this server and index it (admins)")
    @app_commands.describe(file="A .txt, .md, .pdf, .docx or .html file",
                           overwrite="Replace a document with the same name (default: no)")
    @app_commands.guild_only()
    @admin_only
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
        log.info("upload requested user=%s guild=%s bytes=%d", interaction.user.id, interaction.guild_id, file.size)
        try:
            data = await file.read()
            saved, replaced, result = await builds.upload(self.bot.collections, self._collection(interaction),
                                                          name, data, overwrite)
        except UploadRefused as exc:
            await self._report_text(interaction, f"Upload refused: {escape(str(exc))}. Nothing was changed.")
            return
        except (discord.HTTPException, ValueError, OSError) as exc:
            log.exception("upload failed")
            await self._report_text(interaction, f"Upload failed: {escape(str(exc))[:1500]}")
            return
        head = [f"Saved as {_code(saved)}" + (" (replaced the existing document)" if replaced else "")
                + (f" (renamed from {_code(file.filename)})" if saved != file.filename else "")]
        await self._report(interaction, render_lines("Document uploaded", head + report_lines(result)))

    @app_commands.command(name="remove", description="Remove a briefing document from this server (admins)")
    @app_commands.describe(document="The document's file name, as /sources shows it")
    @app_commands.guild_only()
    @admin_only
    async def remove(self, interaction: discord.Interaction, document: str) -> None:
        if await self._refuse_unless_admin(interaction, "remove"):
            return
        name = self._collection(interaction)
        path = await asyncio.to_thread(builds.find_document, self.bot.collections, name, document)
        if path is None:
            await interaction.response.send_message(
                f"This server has no document called {_code(document)}; `/sources` lists them. Nothing was changed.",
                ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        view = ConfirmRemove(interaction.user.id)
        await interaction.response.send_message(
            f"Remove {_code(path.name)} from this server's briefings? Its answers stop at once.", view=view,
            ephemeral=True, allowed_mentions=NO_MENTIONS)
        await view.done.wait()
        pressed = view.pressed
        if not view.confirmed or pressed is None:
            if pressed is not None:
                await pressed.response.edit_message(content="Kept. Nothing was changed.", view=None)
            return
        await pressed.response.edit_message(content=f"Removing {_code(path.name)} ...", view=None)
        log.info("remove confirmed user=%s guild=%s", interaction.user.id, interaction.guild_id)
        try:
            out = await builds.remove(self.bot.collections, name, path.name)
        except Exception as exc:
            log.exception("remove failed")
            await self._report_text(interaction, f"The removal failed: {escape(str(exc))[:1500]}")
            return
        if out is None:
            await self._report_text(interaction, f"{_code(path.name)} was already gone. Nothing was changed.")
            return
        removed, result = out
        await self._report(interaction, render_lines("Document removed", [f"Removed {_code(removed)}"]
                                                     + report_lines(result)))

    @app_commands.command(name="sources", description="List this server's indexed briefing documents")
    async def sources(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        collections, own = self.bot.collections, self._collection(interaction)

        def listing():
            out = []
            for name, label in ((own, ""), (SHARED if collections.shared_enabled else None, " (shared)")):
                if name is None or (own is not None and name == SHARED and collections.engine(SHARED) is collections.engine(own)):
                    continue
                if not collections.collection(name).has_documents():
                    continue
                with collections.using(name) as engine:
                    out += [(d, label) for d in engine.sources()]
            return out

        try:
            docs = await self.bot.run_blocking(listing)
        except Exception as exc:
            log.warning("sources failed: %r", exc)
            await interaction.followup.send(NO_INDEX, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        lines = [f"**{_code(d.title or d.name)}**{label} · {_code(d.name)} · {d.sentences} sentences · indexed {d.indexed_at}"
                 for d, label in docs] or ["No documents are indexed yet."]
        await self._send(interaction, render_lines(f"Indexed briefings ({len(docs)})", lines), ephemeral=True)

    @app_commands.command(name="status", description="This server's index version, build time, counts, model and uptime")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        uptime = _uptime(self.bot.uptime())
        collections = self.bot.collections
        name = self._collection(interaction) or SHARED

        def status():
            if not collections.collection(name).has_documents():
                raise LookupError("no documents")
            with collections.using(name) as engine:
                return engine.status()

        try:
            st = await self.bot.run_blocking(status)
        except Exception as exc:
            log.info("status without an index: %r", exc)
            lines = [NO_INDEX, f"uptime: {uptime}"]
        else:
            lines = [f"index version: `{st.version}`", f"built: {st.built_at}", f"documents: {st.documents}",
                     f"sentences: {st.sentences}", f"model: {escape(st.model)}", f"uptime: {uptime}"]
        await self._send(interaction, render_lines("briefbot status", lines), ephemeral=True)
