"""Answers -> Discord message bodies, within Discord's limits, never allowing a mention.

Why a module of its own: the limits (2,000 content, 4,096 description, 1,024 field value,
25 fields, 10 embeds and 6,000 characters per message) are easy to break with a long answer or
many citations, and a citation must never be cut in half. Everything here is pure (no I/O), so
the packing can be tested exhaustively without Discord.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import discord

from bot.answering.types import Answer, Citation, Passage

CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 2048
EMBEDS_PER_MESSAGE = 10
MESSAGE_TOTAL_MAX = 6000

COLOR_ANSWER = 0x2B6CB0
COLOR_ABSTAIN = 0x718096
COLOR_ERROR = 0xC05621

NO_MENTIONS = discord.AllowedMentions.none()

_LINE_START = re.compile(r"^(\s*)(#{1,3}\s|-#\s|[-*+]\s|\d+[.)]\s|>)")


@dataclass
class Outgoing:
    """One Discord message to send: content, embeds and files (name -> bytes)."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)

    def total(self) -> int:
        return sum(len(e) for e in self.embeds)

    def discord_files(self) -> list[discord.File]:
        import io

        return [discord.File(io.BytesIO(data), filename=name) for name, data in self.files.items()]


def escape(text: str) -> str:
    """Markdown escaped so document text shows literally (``*``, `` ` ``, ``[x](y)``, headings...)."""
    out = []
    for line in text.split("\n"):
        line = discord.utils.escape_markdown(line)
        m = _LINE_START.match(line)
        if m:  # headings, lists and "-#" subtext only act at the start of a line
            line = m.group(1) + "\\" + line[len(m.group(1)):]
        out.append(line)
    return "\n".join(out)


def unix_lines(text: str) -> str:
    """One line ending everywhere: a lone carriage return would show as a quoted line in an
    embed but not in an attached file, so both get "\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def quote(text: str) -> str:
    """A block quote of ``text`` that the text cannot leave: every line is prefixed and escaped."""
    lines = escape(unix_lines(text)).split("\n")
    return "\n".join("> " + line for line in lines)


def defuse_links(text: str) -> str:
    """``[label](url)`` shown literally instead of as a disguised link."""
    return re.sub(r"\]\(", r"]\\(", text)


def unquote(rendered: str) -> str:
    """Inverse of :func:`quote` (for tests and for people checking a citation by hand)."""
    lines = [line[2:] if line.startswith("> ") else line for line in rendered.split("\n")]
    return re.sub(r"\\(.)", r"\1", "\n".join(lines), flags=re.S)


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """Shorten ``text`` to ``limit`` characters at a word boundary; only for non-evidence text."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ellipsis)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    # never leave half a citation marker such as "[1" behind
    cut = re.sub(r"\[\d*$", "", cut).rstrip()
    return cut + ellipsis


def clip_answer(text: str, limit: int) -> str:
    """Trim an answer at a sentence end (after its [n] markers) so no marker is split."""
    if len(text) <= limit:
        return text
    note = "\n*(answer shortened to fit Discord)*"
    room = limit - len(note)
    head = text[:room]
    ends = [m.end() for m in re.finditer(r"[.!?](\s*\[\d+\])*(?=\s|$)", head)]
    if ends and ends[-1] > room * 0.5:
        return head[: ends[-1]].rstrip() + note
    return clip(text, room) + note


def citation_heading(c: Citation) -> str:
    where = f" · {c.location}" if c.location else ""
    head = f"[{c.n}] {c.title or c.document}{where}"
    return clip(head, FIELD_NAME_MAX)


def footer_text(answer: Answer, built_at: str, answer_id: str) -> str:
    parts = [f"index {answer.index_version or '?'}"]
    if built_at:
        parts.append(f"built {built_at}")
    parts.append(f"answerer: {answer.answerer}")
    parts.append(f"answer {answer_id}")
    return clip(" · ".join(parts), FOOTER_MAX)


class _Packer:
    """Places embeds and fields into messages without crossing any per-message limit."""

    def __init__(self) -> None:
        self.messages: list[Outgoing] = []
        self._field_embeds: set[int] = set()  # ids of embeds that may take more citation fields

    def add_embed(self, embed: discord.Embed, *, takes_fields: bool = False) -> None:
        msg = self.messages[-1] if self.messages else None
        if msg is None or len(msg.embeds) >= EMBEDS_PER_MESSAGE or msg.total() + len(embed) > MESSAGE_TOTAL_MAX:
            msg = Outgoing()
            self.messages.append(msg)
        msg.embeds.append(embed)
        if takes_fields:
            self._field_embeds.add(id(embed))

    def add_field(self, name: str, value: str, color: int) -> None:
        msg = self.messages[-1] if self.messages else None
        if msg is not None and msg.embeds and id(msg.embeds[-1]) in self._field_embeds:
            last = msg.embeds[-1]
            if len(last.fields) < FIELDS_MAX and msg.total() + len(name) + len(value) <= MESSAGE_TOTAL_MAX:
                last.add_field(name=name, value=value, inline=False)
                return
        embed = discord.Embed(color=color)
        embed.add_field(name=name, value=value, inline=False)
        self.add_embed(embed, takes_fields=True)

    def add_file(self, name: str, data: bytes) -> None:
        if not self.messages:
            self.messages.append(Outgoing())
        self.messages[-1].files[name] = data


def render_answer(answer: Answer, *, answer_id: str, built_at: str = "") -> list[Outgoing]:
    """The messages that carry one answer: the answer embed first, then every citation whole."""
    if answer.error:
        embed = discord.Embed(title="I can't answer that", color=COLOR_ERROR,
                              description=clip(escape(answer.answer or answer.error), DESCRIPTION_MAX))
        embed.set_footer(text=footer_text(answer, built_at, answer_id))
        return [Outgoing(embeds=[embed])]
    if answer.abstained or not answer.citations:
        text = answer.answer or "The briefings don't cover this question, so I won't guess."
        embed = discord.Embed(title="Not covered by the briefings", color=COLOR_ABSTAIN,
                              description=clip(escape(text), DESCRIPTION_MAX))
        embed.set_footer(text=footer_text(answer, built_at, answer_id))
        if getattr(answer, "understood_as", ""):
            embed.add_field(name="Understood as", value=clip(escape(answer.understood_as), FIELD_VALUE_MAX), inline=False)
        return [Outgoing(embeds=[embed])]

    # The answer is the engine's own text (its **bold** is meant); only masked links are defused,
    # so a document cannot smuggle a disguised link into the answer.
    description = defuse_links(answer.answer)
    if answer.short_answer and not answer.answer.startswith(answer.short_answer):
        description = f"**{escape(answer.short_answer)}**\n\n{description}"
    main = discord.Embed(title="Answer", color=COLOR_ANSWER, description=clip_answer(description, DESCRIPTION_MAX))
    main.set_footer(text=footer_text(answer, built_at, answer_id))
    if getattr(answer, "understood_as", ""):
        main.add_field(name="Understood as", value=clip(escape(answer.understood_as), FIELD_VALUE_MAX), inline=False)
    if answer.note:
        main.add_field(name="Note", value=clip(escape(answer.note), FIELD_VALUE_MAX), inline=False)
    packer = _Packer()
    packer.add_embed(main, takes_fields=True)
    for c in answer.citations:
        name, value = citation_heading(c), quote(c.text)
        if len(value) <= FIELD_VALUE_MAX:
            packer.add_field(name, value, COLOR_ANSWER)
        elif len(value) <= DESCRIPTION_MAX - 2:
            packer.add_embed(discord.Embed(title=clip(name, TITLE_MAX), description=value, color=COLOR_ANSWER))
        else:
            # Too long for any embed: the whole sentence goes into a file rather than being cut.
            filename = f"citation-{c.n}.txt"
            packer.add_embed(discord.Embed(
                title=clip(name, TITLE_MAX), color=COLOR_ANSWER,
                description=f"This cited sentence is {len(c.text):,} characters long; "
                            f"it is quoted in full in the attached file `{filename}`."))
            packer.add_file(filename, (unix_lines(c.text) + "\n").encode("utf-8"))
    return packer.messages


def render_context(citations: Sequence[Citation], contexts: Sequence[Sequence[Passage]]) -> list[Outgoing]:
    """The "Show sources" view: each cited sentence (bold, quoted) inside its neighbours."""
    packer = _Packer()
    for c, passages in zip(citations, contexts):
        lines = []
        for p in passages or ():
            if p.sentence_id == c.sentence_id:
                lines.append(f"**{escape(p.text)}**")
            else:
                lines.append(escape(p.text))
        if not any(p.sentence_id == c.sentence_id for p in passages or ()):
            lines = [f"**{escape(c.text)}**"]
        cited = next(i for i, line in enumerate(lines) if line.startswith("**"))
        # Trim neighbours (never the cited sentence) until the block fits one description.
        while len("\n".join("> " + ln for ln in lines)) > DESCRIPTION_MAX - 2 and len(lines) > 1:
            if cited > 0 and (cited >= len(lines) - 1 - cited):
                lines.pop(0)
                cited -= 1
            else:
                lines.pop()
        body = "\n".join("> " + ln.replace("\n", "\n> ") for ln in lines)
        name = citation_heading(c)
        if len(body) > DESCRIPTION_MAX:
            filename = f"source-{c.n}.txt"
            packer.add_embed(discord.Embed(title=clip(name, TITLE_MAX), color=COLOR_ANSWER,
                                           description=f"Quoted in full in the attached file `{filename}`."))
            packer.add_file(filename, "\n".join(unix_lines(p.text) for p in passages or [c]).encode("utf-8"))
        else:
            heading = c.heading and f"Section: {escape(c.heading)}\n"
            desc = (heading or "") + body
            if len(desc) > DESCRIPTION_MAX:
                desc = body
            packer.add_embed(discord.Embed(title=clip(name, TITLE_MAX), description=desc, color=COLOR_ANSWER))
    if not packer.messages:
        packer.messages.append(Outgoing(content="This answer has no cited sentences."))
    return packer.messages


def render_lines(title: str, lines: Iterable[str], *, color: int = COLOR_ANSWER, footer: str = "") -> list[Outgoing]:
    """A list of short lines (sources, change reports) split across embeds and messages."""
    packer = _Packer()
    chunk: list[str] = []
    first = True

    def flush() -> None:
        nonlocal chunk, first
        if not chunk and not first:
            return
        embed = discord.Embed(title=clip(title, TITLE_MAX) if first else None, color=color,
                              description="\n".join(chunk) or "(none)")
        if footer and first:
            embed.set_footer(text=clip(footer, FOOTER_MAX))
        packer.add_embed(embed)
        chunk, first = [], False

    size = 0
    for line in lines:
        line = clip(line, 1000)
        if chunk and size + len(line) + 1 > 3900:
            flush()
            size = 0
        chunk.append(line)
        size += len(line) + 1
    flush()
    return packer.messages


def check_limits(msg: Outgoing) -> list[str]:
    """Every Discord limit a message breaks (empty when it is sendable); used by tests and asserts."""
    problems = []
    if msg.content and len(msg.content) > CONTENT_MAX:
        problems.append(f"content {len(msg.content)} > {CONTENT_MAX}")
    if len(msg.embeds) > EMBEDS_PER_MESSAGE:
        problems.append(f"{len(msg.embeds)} embeds > {EMBEDS_PER_MESSAGE}")
    if msg.total() > MESSAGE_TOTAL_MAX:
        problems.append(f"embeds total {msg.total()} > {MESSAGE_TOTAL_MAX}")
    for e in msg.embeds:
        if e.title and len(e.title) > TITLE_MAX:
            problems.append("title too long")
        if e.description and len(e.description) > DESCRIPTION_MAX:
            problems.append(f"description {len(e.description)} > {DESCRIPTION_MAX}")
        if len(e.fields) > FIELDS_MAX:
            problems.append(f"{len(e.fields)} fields > {FIELDS_MAX}")
        for f in e.fields:
            if len(f.name or "") > FIELD_NAME_MAX or len(f.value or "") > FIELD_VALUE_MAX:
                problems.append("field too long")
        if e.footer.text and len(e.footer.text) > FOOTER_MAX:
            problems.append("footer too long")
    if not msg.content and not msg.embeds and not msg.files:
        problems.append("empty message")
    return problems
