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

from . import uploads

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
        """Save one document and index it; returns (saved name, replaced an existing one, build)."""
        async with self._lock:
            started = time.monotonic()
            docs = Path(getattr(getattr(self.engine, "settings", None), "documents_dir", self.settings.documents_dir))
            existed = docs.is_dir() and any(p.name.lower() == name.lower() for p in docs.iterdir())
            add = getattr(self.engine, "add_document", None)
            if add is not None:
                if existed and not overwrite:
                    raise uploads.UploadExists(
                        f"`{name}` already exists in the briefings; run /upload again with overwrite:True to replace it"
                    )
                saved, report = await asyncio.to_thread(add, name, data, overwrite)
                saved_name = getattr(saved, "name", None) or str(saved).rsplit("/", 1)[-1]
            else:
                path, _ = await asyncio.to_thread(uploads.save_upload, docs, name, data, overwrite)
                saved_name = path.name
                report = await asyncio.to_thread(self.engine.build)
            return saved_name, existed, BuildResult(report, time.monotonic() - started)
