"""Fixtures for the Discord end-to-end tests: one real engine per session, a fresh fake Discord
and bot per test (login against the fake takes a few milliseconds)."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import pytest

from bot.config import Settings

from .ca import make_tls
from .server import FakeDiscord

REPO = Path(__file__).resolve().parents[2]
BRIEFING = REPO / "documents" / "briefing-us-missile-policy-2024-11.txt"

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def shared_tls():
    with _CACHE_LOCK:
        if "tls" not in _CACHE:
            _CACHE["tls"] = make_tls()
        return _CACHE["tls"]


def shared_engine():
    """The real Engine (real model, real FAISS) over a copy of one briefing; built once."""
    with _CACHE_LOCK:
        if "engine" not in _CACHE:
            from bot.answering.engine import Engine

            root = Path(tempfile.mkdtemp(prefix="briefbot-discord-"))
            atexit.register(shutil.rmtree, root, True)
            (root / "documents").mkdir()
            shutil.copy(BRIEFING, root / "documents" / BRIEFING.name)
            settings = Settings(documents_dir=root / "documents", index_dir=root / "index")
            engine = Engine(settings)
            engine.build()
            _CACHE["engine"] = engine
            _CACHE["root"] = root
        return _CACHE["engine"]


def fresh_engine(tmp: Path):
    """A second real Engine with its own documents (for uploads), reusing the loaded model."""
    from bot.answering.engine import Engine

    base = shared_engine()
    (tmp / "documents").mkdir(parents=True, exist_ok=True)
    shutil.copy(BRIEFING, tmp / "documents" / BRIEFING.name)
    settings = Settings(documents_dir=tmp / "documents", index_dir=tmp / "index")
    engine = Engine(settings, encoder=base.encoder)
    engine.build()
    return engine


class RecordingEngine:
    """Delegates to a real engine and remembers the calls, so tests can see the history passed
    to ``ask`` and count builds. It changes nothing about the answers."""

    def __init__(self, engine, build_delay: float = 0.0):
        self._engine = engine
        self.settings = engine.settings
        self.asks: list[tuple[str, tuple]] = []
        self.builds = 0
        self.build_delay = build_delay
        self._lock = threading.Lock()

    def ask(self, question: str, history: Sequence = ()):
        with self._lock:
            self.asks.append((question, tuple(history)))
        return self._engine.ask(question, history)

    def build(self, rebuild: bool = False):
        import time

        with self._lock:
            self.builds += 1
        if self.build_delay:
            time.sleep(self.build_delay)
        return self._engine.build(rebuild=rebuild)

    def __getattr__(self, name):
        return getattr(self._engine, name)


def settings_for(tmp: Path, engine, **overrides) -> Settings:
    base = dict(
        discord_token="test-token", documents_dir=engine.settings.documents_dir, index_dir=engine.settings.index_dir,
        cooldown_seconds=0.0, guild_rate_per_minute=1000, allow_dms=True, feedback_path=tmp / "data" / "feedback.jsonl",
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def fake():
    server = await FakeDiscord(shared_tls()).start()
    yield server
    await server.close()
    assert not server.unknown, f"the bot made requests the fake does not know: {server.unknown}"
    assert not server.errors, f"protocol errors: {server.errors}"


@pytest.fixture
def engine():
    return shared_engine()


@pytest.fixture
async def make_bot(fake, tmp_path):
    """``await make_bot(engine=..., **settings)`` starts a real bot against the fake and waits for READY."""
    from bot.surfaces.discord import create_bot

    running = []

    async def _make(engine=None, *, guild=True, collections=False, **overrides):
        """``collections=True``: no pinned engine; each server gets its own collection under
        ``tmp_path`` (documents/<guild id>/, index/<guild id>/), sharing the loaded model."""
        base = shared_engine()
        if guild:
            overrides.setdefault("discord_guild_id", int(fake.guild_id))
        if collections:
            from bot.answering.collections import Collections

            overrides.setdefault("documents_dir", tmp_path / "documents")
            overrides.setdefault("index_dir", tmp_path / "index")
            settings = settings_for(tmp_path, base, **overrides)
            registry = Collections(settings, encoder=base.encoder)
            bot = create_bot(settings, collections=registry, connector=fake.connector(), guild_ready_timeout=0.05)
        else:
            engine = engine or base
            settings = settings_for(tmp_path, engine, **overrides)
            bot = create_bot(settings, engine=engine, connector=fake.connector(), guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start(settings.discord_token))
        running.append((bot, task))
        await asyncio.wait_for(bot.wait_until_ready(), 20)
        return bot

    yield _make
    for bot, task in running:
        await bot.close()
        try:
            await asyncio.wait_for(task, 10)
        except Exception:
            pass
