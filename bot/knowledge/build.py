"""Incremental, crash-safe index builds.

A document whose bytes hash the same as in the live index keeps its sentences and vectors;
new sentences are looked up in the embedding cache before the model is asked. One build at a
time per index folder (a file lock); the result is written beside the live index and swapped
in by ``store.write_snapshot``, so a failure at any point leaves the old index serving.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import faiss
import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from bot.config import Settings
from bot.ingest.loaders import DocumentError, DocumentSkipped, human_limit, human_size, list_documents, load_document, skip_reason
from bot.ingest.segment import segment
from bot.knowledge import onnx_query
from bot.knowledge.embed import EmbeddingCache, Encoder
from bot.knowledge.report import ChangeReport
from bot.knowledge.store import (
    DocumentRecord,
    IndexCorrupt,
    IndexMissing,
    file_sha256,
    PIPELINE_VERSION,
    IndexSnapshot,
    SentenceTable,
    current_version_dir,
    index_vectors,
    load_snapshot,
    new_version_name,
    now_iso,
    remove_stale,
    write_snapshot,
)
from bot.knowledge.terms import terms

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


STALE_GRACE_S = 600.0  # an old version younger than this may still be loading in another process


class BuildBusy(Exception):
    """Another process holds the build lock for this index folder."""


class IndexUnwritable(Exception):
    """The index folder can't be created or written (permissions, a file in the way)."""


class DiskFull(OSError):
    """A build ran out of space; the previous index is still live."""


@dataclass
class _DocRows:
    record: DocumentRecord  # first_row is filled in when rows are laid out
    ids: list[str]
    texts: list[str]
    headings: list[str]
    index: list[int]
    start: list[int]
    end: list[int]
    paragraph: list[int]
    position: list[int]
    page: list[int]
    table: list[int]
    row: list[int]
    vectors: np.ndarray | None = None


def sentence_id(document: str, index: int, text: str) -> str:
    """Stable across rebuilds: same document, same place, same words -> same id."""
    return f"{document}:{index}:{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def build_index(
    settings: Settings,
    encoder: Encoder,
    rebuild: bool = False,
    progress: bool = False,
    lock_timeout: float = 600.0,
    live: IndexSnapshot | None = None,
) -> tuple[ChangeReport, IndexSnapshot | None]:
    """Bring the index in ``settings.index_dir`` up to date with ``settings.documents_dir``.

    ``live`` is the snapshot the caller already holds: reused instead of read again from disk
    when it is still the live version (another process may have built since)."""
    started = time.perf_counter()
    encoder.prepare()  # settles the model id (int8, or PyTorch if no export can be made) first
    index_dir = Path(settings.index_dir)
    check_documents_dir(Path(settings.documents_dir))  # before anything is created on disk
    prepare_index_dir(index_dir)
    lock = FileLock(str(index_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("another build holds %s; waiting up to %.0fs", index_dir / LOCK_NAME, lock_timeout)
        if progress:
            print(f"another briefbot build is running on {index_dir}/; waiting for it...", file=sys.stderr)
        try:
            lock.acquire(timeout=lock_timeout)
        except Timeout:
            raise BuildBusy(f"another build is still running on {index_dir}/ (lock {LOCK_NAME}); try again later") from None
    except OSError as exc:
        raise IndexUnwritable(f"cannot create the build lock in {index_dir}/ ({exc.strerror or exc}); "
                              "choose a folder you can write with --index or BRIEFBOT_INDEX") from None
    try:
        report = ChangeReport()
        remove_stale(index_dir, min_age_s=STALE_GRACE_S)
        previous = None
        try:
            if live is not None and live.model == encoder.name and live.path is not None \
                    and current_version_dir(index_dir).resolve() == live.path.resolve():
                previous = live
            else:
                previous = load_snapshot(index_dir, model=encoder.name)
        except IndexMissing:
            pass
        except IndexCorrupt as exc:
            report.notes.append(f"the existing index could not be used ({exc}); rebuilt from scratch")
        try:
            snapshot = _build_locked(settings, encoder, previous, rebuild, progress, report)
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            raise DiskFull(f"the disk holding {index_dir}/ is full ({exc}); the previous index is still in use: "
                           "free some space and run the build again") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"the disk holding {index_dir}/ is full ({exc.strerror or exc}); the previous index "
                               "is still in use: free some space and run the build again") from exc
            raise
        report.seconds = time.perf_counter() - started
        return report, snapshot
    finally:
        lock.release()


def check_documents_dir(docs_dir: Path) -> None:
    """A missing folder or a file where a folder belongs: one line saying which, and what to pass."""
    if docs_dir.is_file():
        raise FileNotFoundError(f"{docs_dir} is a file, not a folder; pass the folder that holds your briefings "
                                f"(e.g. --documents {docs_dir.parent or '.'})")
    if not docs_dir.is_dir():
        raise FileNotFoundError(f"documents folder {docs_dir}/ does not exist; create it and put your briefings "
                                "(.txt, .md, .html, .pdf, .docx) in it, or pass --documents DIR")


def prepare_index_dir(index_dir: Path) -> None:
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise IndexUnwritable(f"{index_dir} is a file, not a folder; choose an index folder with --index or "
                              "BRIEFBOT_INDEX") from None
    except NotADirectoryError:
        raise IndexUnwritable(f"cannot create the index folder {index_dir}/: part of that path is a file; "
                              "choose another folder with --index or BRIEFBOT_INDEX") from None
    except PermissionError:
        raise IndexUnwritable(f"cannot create the index folder {index_dir}/ (permission denied); choose a folder "
                              "you can write with --index or BRIEFBOT_INDEX") from None
    if not os.access(index_dir, os.W_OK | os.X_OK):
        raise IndexUnwritable(f"the index folder {index_dir}/ is not writable; choose a folder you can write "
                              "with --index or BRIEFBOT_INDEX")


def _export_query_model(encoder: Encoder, report: ChangeReport) -> None:
    """The ONNX question encoder is a speed-up: a failure (e.g. an unwritable cache) is a note, never an error."""
    try:
        ok = onnx_query.export(encoder)
    except Exception as exc:  # after the swap nothing may undo a finished build
        log.warning("query model export failed (%s: %s)", type(exc).__name__, exc)
        ok = False
    if not ok:
        report.notes.append(f"note: the fast question encoder could not be saved in {onnx_query.cache_root()}/ "
                            "(set BRIEFBOT_CACHE_DIR to a writable folder); questions will use PyTorch, slower to start")


def _build_locked(settings, encoder, previous, rebuild, progress, report) -> IndexSnapshot | None:
    docs_dir = Path(settings.documents_dir)
    check_documents_dir(docs_dir)
    old = {d.name: d for d in previous.documents} if previous else {}
    max_bytes = int(settings.max_document_mb * 1024 * 1024)
    kept: list[_DocRows] = []
    seen: set[str] = set()
    first_with: dict[str, str] = {}  # content hash -> first document name with it
    paths = list_documents(docs_dir)
    if progress:  # the first build loads the model for ~20 s: say something at once
        print(f"reading {len(paths)} file{'' if len(paths) == 1 else 's'} from {docs_dir}/ ...", file=sys.stderr, flush=True)
    same_pipeline = previous is not None and previous.pipeline == PIPELINE_VERSION
    # Documents already indexed come first, so when two files hold the same bytes the copy
    # indexed first stays and the newcomer ("library copy (2).pdf") is the skipped duplicate.
    paths.sort(key=lambda p: p.relative_to(docs_dir).as_posix() not in old)
    embedder = _Embedder(settings, encoder, progress)  # embeds while later documents still load
    for path in tqdm(paths, desc="documents", unit="doc", disable=not progress or len(paths) < 20, file=sys.stderr):
        name = path.relative_to(docs_dir).as_posix()
        seen.add(name)
        if reason := skip_reason(path):  # symbolic links, unsupported types: never opened
            report.skipped.append((name, reason))
            continue
        try:
            size = path.stat().st_size
            if size > max_bytes:  # refused before a byte is read (hashing a huge file costs time too)
                raise DocumentError(f"too large ({human_size(size)} > {human_limit(max_bytes)} limit)")
            digest = file_sha256(path)
        except DocumentError as exc:
            report.failed.append((name, exc.reason))
            continue
        except OSError as exc:
            report.failed.append((name, f"unreadable ({exc.strerror or exc})"))
            continue
        if digest in first_with:
            # Identical files would answer twice with the same sentence; index one copy.
            report.skipped.append((name, f"duplicate of {first_with[digest]}"))
            continue
        first_with[digest] = name
        before = old.get(name)
        same_bytes = before is not None and before.content_hash == digest
        if same_bytes and same_pipeline and not rebuild:
            kept.append(_reuse(previous, before))
            report.unchanged.append(name)
            continue
        try:
            doc = load_document(path, docs_dir, max_bytes=max_bytes)
            # The hash of the bytes actually loaded: if the file changed after it was hashed
            # above, the record matches the text indexed and the next build sees the change.
            rows = _segment_document(doc, doc.content_hash or digest)
        except DocumentSkipped as exc:
            report.skipped.append((name, exc.reason))
            continue
        except DocumentError as exc:
            report.failed.append((name, exc.reason))
            continue
        except Exception as exc:  # a parser bug must cost one document, not the build
            log.exception("loading %s failed", name)
            report.failed.append((name, f"could not be read ({type(exc).__name__}: {exc})"))
            continue
        if not rows.ids:
            report.failed.append((name, "no sentences found"))
            continue
        kept.append(rows)
        if same_bytes and rows.record.content_hash == digest:
            report.unchanged.append(name)  # re-read (--rebuild or a new pipeline), but not changed
        else:
            (report.changed if before else report.added).append(name)
        embedder.submit(rows.texts)
    # An indexed document now skipped (a duplicate, a link) leaves the index: say so.
    report.removed = sorted((set(old) - seen) | {name for name, _ in report.skipped if name in old})
    # A document that failed now but was indexed before is kept as it was: loses nothing.
    for name, reason in report.failed:
        if name in old and name not in report.removed:
            kept.append(_reuse(previous, old[name]))
            report.notes.append(f"{name}: kept the previously indexed version")
    if previous and not rebuild and same_pipeline and not report.has_changes:
        report.index_version = previous.version
        embedder.close()
        _export_query_model(encoder, report)  # once, if an older build lacks it
        return previous
    if previous is None and not kept:
        embedder.close()
        return None  # nothing to index and nothing to replace: no empty index, no model load
    report.sentences_embedded = _fill_vectors(embedder, kept)
    snapshot = _assemble(encoder, kept)
    write_snapshot(Path(settings.index_dir), snapshot)
    report.index_version = snapshot.version
    report.swapped = True
    _export_query_model(encoder, report)
    return snapshot


def _segment_document(doc, digest: str) -> _DocRows:
    sentences, _headings = segment(doc.text, doc.blocks, doc.page_starts)
    rows = _DocRows(
        record=DocumentRecord(doc.name, doc.title, digest, len(sentences), now_iso(), 0),
        ids=[], texts=[], headings=[], index=[], start=[], end=[], paragraph=[], position=[],
        page=[], table=[], row=[],
    )
    for s in sentences:
        rows.ids.append(sentence_id(doc.name, s.index, s.text))
        rows.texts.append(s.text)
        rows.headings.append(s.heading)
        rows.index.append(s.index)
        rows.start.append(s.start)
        rows.end.append(s.end)
        rows.paragraph.append(s.paragraph)
        rows.position.append(s.position)
        rows.page.append(s.page)
        rows.table.append(s.table)
        rows.row.append(s.row)
    return rows


def _reuse(previous: IndexSnapshot, record: DocumentRecord) -> _DocRows:
    lo, hi = record.first_row, record.first_row + record.sentences
    t = previous.sentences
    return _DocRows(
        record=record,
        ids=t.ids[lo:hi], texts=t.texts[lo:hi], headings=t.headings[lo:hi],
        index=t.index[lo:hi].tolist(), start=t.start[lo:hi].tolist(), end=t.end[lo:hi].tolist(),
        paragraph=t.paragraph[lo:hi].tolist(), position=t.position[lo:hi].tolist(),
        page=t.page[lo:hi].tolist(), table=t.table[lo:hi].tolist(), row=t.row[lo:hi].tolist(),
        vectors=previous.vectors[lo:hi],
    )


class _Embedder:
    """Embeds new documents' sentences in a background thread while the build is still loading
    and segmenting the next documents, so the encoder starts working within the first seconds.

    Texts arrive with ``submit`` and are embedded in chunks of ``CHUNK`` unique texts (length-
    sorted inside each chunk, as ``Encoder.encode`` does), after a look-up in the embedding cache.
    ``finish`` embeds what is left and returns the vectors by text. Started on the first submit:
    a build that loads nothing new starts no thread."""

    CHUNK = 2048

    def __init__(self, settings, encoder: Encoder, progress: bool):
        self.settings, self.encoder, self.progress = settings, encoder, progress
        self.found: dict[str, np.ndarray] = {}
        self.embedded = 0
        self.cache: EmbeddingCache | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._bar = None

    def submit(self, texts: list[str]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="briefbot-embed", daemon=True)
            self._thread.start()
        self._queue.put(list(texts))

    def finish(self) -> dict[str, np.ndarray]:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            if self._error is not None:
                raise self._error
        return self.found

    def close(self) -> None:
        """Stop the thread (after its current chunk) and close the cache."""
        try:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
        finally:
            if self.cache is not None:
                self.cache.close()
                self.cache = None
            if self._bar is not None:
                self._bar.close()

    def _run(self) -> None:
        try:
            if self.cache is None:
                self.cache = EmbeddingCache(Path(self.settings.index_dir) / "embeddings.sqlite",
                                            self.encoder.name, self.encoder.dimension)
            pending: list[str] = []
            seen: set[str] = set()
            while True:
                try:
                    item = self._queue.get(timeout=3600)
                except queue.Empty:  # the build died without closing us
                    return
                if item is None:
                    self._embed(pending, last=True)
                    return
                for text in item:
                    if text not in seen:
                        seen.add(text)
                        pending.append(text)
                if len(pending) >= self.CHUNK:
                    self._embed(pending, last=False)
                    pending = []
        except BaseException as exc:  # handed to finish(), in the build's thread
            self._error = exc

    def _embed(self, texts: list[str], last: bool) -> None:
        if not texts:
            return
        found = self.cache.get_many(texts)
        missing = [t for t in texts if t not in found]
        if missing:
            if self._bar is None:
                self._bar = tqdm(total=0, desc="embedding", unit="sent", file=sys.stderr,
                                 disable=not self.progress or (last and len(missing) < 200))
            self._bar.total += len(missing)
            self._bar.refresh()
            vecs = self.encoder.encode(missing, on_batch=self._bar.update)
            self.cache.put_many(missing, vecs)
            found.update(zip(missing, vecs))
            self.embedded += len(missing)
        self.found.update(found)


def _fill_vectors(embedder: _Embedder, docs: list[_DocRows]) -> int:
    """Vectors for new documents (from the cache where seen before, else from the model), once
    the embedder has caught up; then the cache drops vectors no document holds any more."""
    try:
        found = embedder.finish()
        pending = [d for d in docs if d.vectors is None]
        missing = sorted({t for d in pending for t in d.texts} - set(found))
        if missing:  # a document kept without being submitted (nothing should be): embed it now
            embedder.submit(missing)
            found = embedder.finish()
        for d in pending:
            d.vectors = np.stack([found[t] for t in d.texts]).astype(np.float32, copy=False)
        if pending and embedder.cache is not None:
            embedder.cache.prune([t for d in docs for t in d.texts])
        return embedder.embedded
    finally:
        embedder.close()


@lru_cache(maxsize=200_000)
def _keyword_terms(heading: str, text: str) -> tuple[str, ...]:
    """A sentence's BM25 terms; cached so an incremental build re-tokenizes only new sentences."""
    return tuple(terms(f"{heading} {text}")) or ("_",)


def _assemble(encoder: Encoder, docs: list[_DocRows]) -> IndexSnapshot:
    docs = sorted(docs, key=lambda d: d.record.name)
    records, row = [], 0
    for d in docs:
        r = d.record
        records.append(DocumentRecord(r.name, r.title, r.content_hash, len(d.ids), r.indexed_at, row))
        row += len(d.ids)

    def cat(attr):
        return [x for d in docs for x in getattr(d, attr)]

    def ints(attr):
        return np.asarray(cat(attr), dtype=np.int32)

    doc_of_row = np.repeat(np.arange(len(docs), dtype=np.int32), [len(d.ids) for d in docs])
    table = SentenceTable(cat("ids"), cat("texts"), cat("headings"), doc_of_row, ints("index"), ints("start"),
                          ints("end"), ints("paragraph"), ints("position"), ints("page"), ints("table"), ints("row"))
    dim = encoder.dimension
    vectors = np.concatenate([d.vectors for d in docs]) if docs else np.zeros((0, dim), np.float32)
    index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    bm25 = None
    if len(table):
        bm25 = bm25s.BM25()
        bm25.index([list(_keyword_terms(h, t)) for h, t in zip(table.headings, table.texts)], show_progress=False)
    content_key = hashlib.sha1("".join(r.content_hash for r in records).encode()).hexdigest()
    stored = index_vectors(index)  # FAISS's copy, kept alive by the array itself; ours is freed
    return IndexSnapshot(
        version=new_version_name(content_key),
        built_at=now_iso(),
        model=encoder.name,
        dimension=dim,
        documents=records,
        sentences=table,
        vectors=stored,
        faiss_index=index,
        bm25=bm25,
        pipeline=PIPELINE_VERSION,
    )
