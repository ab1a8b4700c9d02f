"""The embedding cache is disposable: damage never breaks a build, and it does not grow forever."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np

from bot.knowledge.build import build_index
from bot.knowledge.embed import EmbeddingCache

from conftest import EXTRA_MD, EXTRA_NAME, write_docs

CACHE = "embeddings.sqlite"


def cache_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM vectors").fetchone()[0]


def rebuild_and_check(settings, encoder, caplog, expected_vectors) -> list[str]:
    with caplog.at_level(logging.WARNING, logger="bot.knowledge.embed"):
        report, snap = build_index(settings, encoder, rebuild=True)
    assert report.swapped and not report.failed
    assert np.allclose(snap.vectors, expected_vectors, atol=1e-6)
    return [r.getMessage() for r in caplog.records if "embedding cache" in r.getMessage()]


def test_truncated_cache_is_discarded_and_rebuilt(workspace, encoder, caplog):
    path = Path(workspace.index_dir) / CACHE
    _, before = build_index(workspace, encoder, rebuild=True)
    size = path.stat().st_size
    assert size > 8192 and cache_rows(path) >= len(before.sentences)
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    said = rebuild_and_check(workspace, encoder, caplog, before.vectors)
    assert len(said) == 1 and "discarded" in said[0], said
    assert cache_rows(path) >= len(before.sentences)  # a working cache again
    caplog.clear()
    report, _ = build_index(workspace, encoder, rebuild=True)
    assert report.sentences_embedded == 0 and not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_garbage_cache_file_is_discarded(workspace, encoder, caplog):
    path = Path(workspace.index_dir) / CACHE
    _, before = build_index(workspace, encoder, rebuild=True)
    path.write_bytes(b"this is not an SQLite database at all" * 100)
    said = rebuild_and_check(workspace, encoder, caplog, before.vectors)
    assert len(said) == 1 and "discarded" in said[0], said


def test_cache_that_cannot_be_opened_builds_without_it(workspace, encoder, caplog):
    path = Path(workspace.index_dir) / CACHE
    _, before = build_index(workspace, encoder, rebuild=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()  # a folder where the file should be: can be neither opened nor deleted
    said = rebuild_and_check(workspace, encoder, caplog, before.vectors)
    assert said and "building without it" in said[-1], said


def test_damaged_rows_are_misses(tmp_path):
    cache = EmbeddingCache(tmp_path / CACHE, "m", 4)
    cache.put_many(["a", "b"], np.ones((2, 4), np.float32))
    with sqlite3.connect(tmp_path / CACHE) as db:
        db.execute("UPDATE vectors SET vec = ? WHERE key = ?", (b"short", cache.key("a")))
    assert set(cache.get_many(["a", "b"])) == {"b"}
    cache.close()


def test_stale_vectors_are_pruned(workspace, encoder):
    path = Path(workspace.index_dir) / CACHE
    cache = EmbeddingCache(path, encoder.name, 384)
    stale = [f"a sentence no document holds any more, number {i}" for i in range(3000)]
    cache.put_many(stale, np.zeros((len(stale), 384), np.float32))
    assert cache.prune(stale) == 0  # nothing to drop while everything is still indexed
    cache.close()
    write_docs(workspace.documents_dir, {EXTRA_NAME: EXTRA_MD}, briefing=False)
    report, snap = build_index(workspace, encoder)
    assert report.added == [EXTRA_NAME]
    rows = cache_rows(path)
    assert len(set(snap.sentences.texts)) <= rows < 1000
    cache = EmbeddingCache(path, encoder.name, 384)
    assert not cache.get_many(stale[:10]) and len(cache.get_many(snap.sentences.texts)) == len(set(snap.sentences.texts))
    cache.close()
