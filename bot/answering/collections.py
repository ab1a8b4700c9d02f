"""Many collections in one process: a private knowledge base per team, one model in memory.

A *collection* is one documents folder plus its index. Each Discord server gets its own
(``documents/<guild id>/`` and ``index/<guild id>/`` by default, or a mapping in settings), created
on first use. One :class:`Encoder` is shared by every collection's :class:`Engine`; each
engine keeps its own locks, so a build in one collection never blocks answers in another.
Engines are loaded on demand and the least recently used idle one is evicted beyond
``max_loaded_collections``, which bounds memory by the number of loaded indexes.

The optional *shared* collection (``documents/shared/``, ``index/shared/``) is searched beside
each server's own when ``shared_collection`` is on; its citations are marked as shared. It is
not the top-level ``documents/`` folder because a build lists its folder recursively and would
pull every server's documents into it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

from bot.config import Settings

log = logging.getLogger(__name__)

SHARED = "shared"
SHARED_MARK = " (shared)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

NO_DOCUMENTS = ("This server has no briefings yet. An admin can add one with `/upload`; "
                "nothing from other servers is ever used here.")


class UnknownCollection(ValueError):
    pass


@dataclass(frozen=True)
class Collection:
    name: str
    documents_dir: Path
    index_dir: Path

    def has_documents(self) -> bool:
        """Cheap: is there anything to answer from (a document, or an index built earlier)?"""
        docs = self.documents_dir
        if (self.index_dir / "CURRENT").is_file():
            return True
        return docs.is_dir() and any(not p.name.startswith(".") for p in docs.iterdir())


def parse_mapping(text: str) -> dict[str, tuple[Path, Path]]:
    """``"name=DOCS:INDEX;name2=DOCS2:INDEX2"`` -> {name: (docs, index)}; a clear error otherwise."""
    out: dict[str, tuple[Path, Path]] = {}
    for entry in filter(None, (e.strip() for e in (text or "").split(";"))):
        name, sep, dirs = entry.partition("=")
        docs, sep2, index = dirs.partition(":")
        name = name.strip()
        if not sep or not sep2 or not docs.strip() or not index.strip() or not _NAME.match(name):
            raise ValueError(f"BRIEFBOT_COLLECTIONS entry {entry!r} should look like NAME=DOCUMENTS_DIR:INDEX_DIR")
        out[name] = (Path(docs.strip()), Path(index.strip()))
    return out


def resolve(settings: Settings, name: str) -> Collection:
    """Where collection ``name`` lives: the settings' mapping, else ``documents/<name>/`` + ``index/<name>/``."""
    name = str(name).strip()
    if not _NAME.match(name):
        raise UnknownCollection(f"collection name {name!r} is not valid: use letters, digits, '-' or '_' (at most 64)")
    mapped = parse_mapping(settings.collections).get(name)
    if mapped is not None:
        return Collection(name, *mapped)
    return Collection(name, Path(settings.documents_dir) / name, Path(settings.index_dir) / name)


def settings_for(settings: Settings, name: str) -> Settings:
    """The settings an engine for collection ``name`` runs with (its own folders, all else shared)."""
    col = resolve(settings, name)
    return settings.with_(documents_dir=col.documents_dir, index_dir=col.index_dir, collection=name)


class Collections:
    """The registry: ``engine(name)`` gives the collection's engine, loading it on first use."""

    def __init__(self, settings: Settings, encoder=None, pinned: dict[str, object] | None = None):
        parse_mapping(settings.collections)  # a malformed mapping stops start-up with one line, not each question
        self.settings = settings
        self._encoder = encoder
        self._lock = threading.Lock()
        self._engines: OrderedDict[str, object] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self._pinned = dict(pinned or {})  # engines handed in whole (tests, single-server mode)
        self.evictions = 0

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                from bot.knowledge.embed import Encoder

                self._encoder = Encoder(self.settings.model)
            return self._encoder

    @property
    def max_loaded(self) -> int:
        return max(1, int(self.settings.max_loaded_collections))

    def collection(self, name: str) -> Collection:
        engine = self._pinned.get(str(name))
        if engine is not None:
            s = engine.settings
            return Collection(str(name), Path(s.documents_dir), Path(s.index_dir))
        return resolve(self.settings, name)

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._engines)

    def engine(self, name: str):
        """The collection's engine, created (and its folder made) on first use; LRU-evicts idle ones."""
        name = str(name)
        if name in self._pinned:
            return self._pinned[name]
        col = resolve(self.settings, name)
        encoder = self.encoder
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                self._engines.move_to_end(name)
                return engine
            from bot.answering.engine import Engine

            col.documents_dir.mkdir(parents=True, exist_ok=True)
            engine = Engine(settings_for(self.settings, name), encoder=encoder)
            self._engines[name] = engine
            self._evict_locked()
            return engine

    def _evict_locked(self) -> None:
        for old in list(self._engines):
            if len(self._engines) <= self.max_loaded:
                return
            if self._in_use.get(old):
                continue  # answering or building right now: it goes when it is done
            self._engines.pop(old)
            self.evictions += 1
            log.info("collection %s evicted (over %d loaded)", old, self.max_loaded)

    @contextmanager
    def using(self, name: str) -> Iterator[object]:
        """The engine, kept loaded while the block runs (a build or an answer is never evicted)."""
        name = str(name)
        engine = self.engine(name)
        with self._lock:
            self._in_use[name] = self._in_use.get(name, 0) + 1
        try:
            yield engine
        finally:
            with self._lock:
                self._in_use[name] -= 1
                if not self._in_use[name]:
                    del self._in_use[name]
                self._evict_locked()

    # ---- answers over a server's own collection and, if enabled, the shared one ----------------
    @property
    def shared_enabled(self) -> bool:
        return bool(self.settings.shared_collection) or SHARED in self._pinned

    def ask(self, name: str | None, question: str, history: Sequence = ()):
        """Answer from collection ``name`` (``None``: a DM, the shared collection only).

        The server's own collection answers first; when it doesn't cover the question and the
        shared collection is enabled, the shared one is asked and its citations are marked."""
        from bot.answering.types import Answer

        own_engine = None
        if name is not None:
            col = self.collection(name)
            if col.has_documents():
                with self.using(name) as own_engine:
                    answer = own_engine.ask(question, history)
                if not answer.abstained or answer.error or not self.shared_enabled:
                    return answer
            elif not self.shared_enabled:
                return Answer(question=question, answer=NO_DOCUMENTS, abstained=True)
        if not self.shared_enabled:
            raise UnknownCollection("no shared collection in this deployment")
        with self.using(SHARED) as shared:
            if shared is own_engine:
                return answer
            if not self.collection(SHARED).has_documents():
                return answer if own_engine is not None else Answer(question=question, answer=NO_DOCUMENTS, abstained=True)
            extra = shared.ask(question, history)
        if own_engine is not None and extra.abstained:
            return answer  # the own collection's "not covered" names this server's briefings
        return mark_shared(extra) if name is not None else extra  # in a DM everything is shared


def mark_shared(answer):
    """Citations from the shared collection say so, in every surface that shows a title."""
    answer.citations = [replace(c, title=(c.title or c.document) + SHARED_MARK) for c in answer.citations]
    return answer
