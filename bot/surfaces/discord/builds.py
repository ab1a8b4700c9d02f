"""One index build at a time, shared by everyone who asks for it while it runs.

``engine.build`` blocks for seconds to minutes, so it runs in a worker thread and answers keep
coming from the old index meanwhile (the engine swaps atomically). A ``/reindex`` that arrives
while a build runs joins that build instead of starting a second one; uploads wait their turn.
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
    shared: bool = False  # True when this caller joined a build someone else started


class BuildRunner:
    def __init__(self, engine, settings):
        self.engine = engine
        self.settings = settings
        self._lock = asyncio.Lock()
        self._current: asyncio.Task | None = None

    async def rebuild(self) -> BuildResult:
        if self._current is not None and not self._current.done():
            result = await asyncio.shield(self._current)
            return BuildResult(result.report, result.seconds, shared=True)
        self._current = asyncio.get_running_loop().create_task(self._build())
        return await asyncio.shield(self._current)

    async def _build(self) -> BuildResult:
        async with self._lock:
            started = time.monotonic()
            report = await asyncio.to_thread(self.engine.build)
            seconds = time.monotonic() - started
            log.info("build done version=%s seconds=%.1f changes=%s", report.index_version, seconds, report.has_changes)
            return BuildResult(report, seconds)

    async def upload(self, name: str, data: bytes, overwrite: bool) -> tuple[str, bool, BuildResult]:
        """Save one document and index it; returns (saved name, replaced an existing one, build).

        Raises the core's ``UploadRefused`` (wrong type, too big, not what it claims, exists)."""
        async with self._lock:
            started = time.monotonic()
            docs = Path(self.engine.settings.documents_dir)
            existed = docs.is_dir() and any(p.name.lower() == name.lower() for p in docs.iterdir())
            saved, report = await asyncio.to_thread(self.engine.add_document, name, data, overwrite)
            return saved, existed, BuildResult(report, time.monotonic() - started)
