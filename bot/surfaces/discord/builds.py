"""Builds from Discord: a thin async wrapper over the collection engine's own build coordinator.

``Engine.build`` is the one place that runs builds (one at a time per collection, joined
callers get their own report); here it only runs in a worker thread, so answers keep flowing
from the old index, and the collection stays loaded while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge.report import ChangeReport

log = logging.getLogger("briefbot.discord.builds")


@dataclass
class BuildResult:
    report: ChangeReport
    seconds: float
    shared: bool = False  # kept for callers that show it; the engine returns each caller its own report


async def rebuild(collections, name: str) -> BuildResult:
    def work():
        with collections.using(name) as engine:
            return engine.build()

    started = time.monotonic()
    report = await asyncio.to_thread(work)
    seconds = time.monotonic() - started
    log.info("build done collection=%s version=%s seconds=%.1f changes=%s", name, report.index_version, seconds,
             report.has_changes)
    return BuildResult(report, seconds)


async def upload(collections, name: str, filename: str, data: bytes, overwrite: bool) -> tuple[str, bool, BuildResult]:
    """Save one document into the collection and index it; (saved name, replaced one, build).

    Raises the core's ``UploadRefused`` (wrong type, too big, not what it claims, exists)."""
    def work():
        with collections.using(name) as engine:
            docs = Path(engine.settings.documents_dir)
            existed = docs.is_dir() and any(p.name.lower() == filename.lower() for p in docs.iterdir())
            saved, report = engine.add_document(filename, data, overwrite)
            return saved, existed, report

    started = time.monotonic()
    saved, existed, report = await asyncio.to_thread(work)
    return saved, existed, BuildResult(report, time.monotonic() - started)


def find_document(collections, name: str, filename: str) -> Path | None:
    """The collection's document called ``filename`` (case-insensitive), only a plain file directly in it."""
    docs = collections.collection(name).documents_dir
    if not docs.is_dir():
        return None
    return next((p for p in docs.iterdir()
                 if p.name.lower() == filename.strip().lower() and p.is_file() and not p.is_symlink()), None)


async def remove(collections, name: str, filename: str) -> tuple[str, BuildResult] | None:
    """Delete one document from the collection and re-index; ``None`` when there is no such document."""
    def work():
        path = find_document(collections, name, filename)
        if path is None:
            return None
        with collections.using(name) as engine:
            path.unlink()
            return path.name, engine.build()

    started = time.monotonic()
    out = await asyncio.to_thread(work)
    if out is None:
        return None
    return out[0], BuildResult(out[1], time.monotonic() - started)
