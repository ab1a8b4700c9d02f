"""The index on disk: versioned folders swapped in atomically, and their in-memory form.

``index/CURRENT`` names the live ``v-*`` folder. A build writes a complete new folder, then
replaces ``CURRENT`` with one ``os.replace``: a reader sees the old version or the new one,
never a mix, and a build that dies half way leaves only a ``.tmp-*`` folder that the next build
removes. Nothing is pickled: FAISS's own format, SQLite, JSON and NumPy arrays without pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import bm25s
import faiss
import numpy as np

FORMAT = 3  # 3: sha256 of every file, pipeline version (names.json, format 2, is gone)
# Bump when loading, normalization or segmentation changes what a document's bytes turn into:
# a build then re-reads documents whose bytes did not change (their sentences would differ).
PIPELINE_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "sentences.faiss"
META = "meta.sqlite"
BM25_DIR = "bm25"


# What load_snapshot needs from a manifest, and of which type.
_MANIFEST_FIELDS = {"version": str, "built_at": str, "model": str, "dimension": int, "sentences": int, "files": dict}


class IndexMissing(Exception):
    """There is no index yet: build one."""


class IndexCorrupt(Exception):
    """The index on disk can't be used (truncated, other model, other format); rebuild it."""


@dataclass(frozen=True)
class DocumentRecord:
    name: str
    title: str
    content_hash: str
    sentences: int
    indexed_at: str
    first_row: int  # a document's sentences occupy rows [first_row, first_row + sentences)


@dataclass
class SentenceTable:
    """Column-wise sentence metadata; row i matches vector i in FAISS and document i in BM25."""

    ids: list[str]
    texts: list[str]
    headings: list[str]
    doc: np.ndarray  # int32 row -> document number
    index: np.ndarray  # position of the sentence in its document
    start: np.ndarray
    end: np.ndarray
    paragraph: np.ndarray
    position: np.ndarray  # sentence number inside its paragraph
    # Where a reader finds the sentence (0 = not applicable): PDF page, table number, table row.
    page: np.ndarray | None = None
    table: np.ndarray | None = None
    row: np.ndarray | None = None

    def __post_init__(self):
        for name in ("page", "table", "row"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(len(self.ids), dtype=np.int32))

    def __len__(self) -> int:
        return len(self.ids)

    def location(self, row: int) -> str:
        """"page 3, table 1, row 4" / "paragraph 5, sentence 1", for citations."""
        return format_location(int(self.page[row]), int(self.table[row]), int(self.row[row]),
                               int(self.paragraph[row]), int(self.position[row]))


def format_location(page: int = 0, table: int = 0, row: int = 0, paragraph: int = -1, position: int = -1) -> str:
    """Where a sentence is, for people: "page 3, table 1, row 4" or "page 2, paragraph 5, sentence 1"."""
    parts = [f"page {page}"] if page else []
    if table:
        parts.append(f"table {table}, row {row}" if row else f"table {table}")
    elif paragraph >= 0:
        parts.append(f"paragraph {paragraph + 1}")
        if position >= 0:
            parts.append(f"sentence {position + 1}")
    return ", ".join(parts)


@dataclass
class IndexSnapshot:
    """One immutable, fully loaded version of the index; answers hold on to one snapshot."""

    version: str
    built_at: str
    model: str
    dimension: int
    documents: list[DocumentRecord]
    sentences: SentenceTable
    vectors: np.ndarray  # (n, dimension) float32, L2-normalized
    faiss_index: faiss.Index
    bm25: bm25s.BM25 | None
    path: Path | None = None
    pipeline: int = PIPELINE_VERSION  # the PIPELINE_VERSION that produced its sentences

    def __post_init__(self):
        self.row_of = {sid: i for i, sid in enumerate(self.sentences.ids)}
        self.doc_by_name = {d.name: i for i, d in enumerate(self.documents)}


def new_version_name(content_key: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{content_key[:6]}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_snapshot(index_dir: Path, snap: IndexSnapshot) -> Path:
    """Write ``snap`` as a new version folder and make it the live one."""
    index_dir.mkdir(parents=True, exist_ok=True)
    final = index_dir / f"v-{snap.version}"
    if final.exists():
        # A build in the same second as the live one gets the live folder's name; never
        # delete a folder that may be serving: give this version a name of its own.
        base, n = snap.version, 2
        while (index_dir / f"v-{base}-{n}").exists():
            n += 1
        snap.version = f"{base}-{n}"
        final = index_dir / f"v-{snap.version}"
    tmp = index_dir / f".tmp-{snap.version}-{os.getpid()}"
    pointer = index_dir / f".{CURRENT}.{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_files(tmp, snap)
        os.replace(tmp, final)
        pointer.write_text(final.name + "\n")
        _fsync_file(pointer)
        os.replace(pointer, index_dir / CURRENT)
    except BaseException:
        # Disk full, killed, ...: the live version is untouched; leave no partial folder behind.
        # (Once ``final`` exists it is a complete version: kept, the next build prunes it.)
        shutil.rmtree(tmp, ignore_errors=True)
        pointer.unlink(missing_ok=True)
        raise
    _fsync_dir(index_dir)
    snap.path = final
    return final


def _write_files(tmp: Path, snap: IndexSnapshot) -> None:
    faiss.write_index(snap.faiss_index, str(tmp / VECTORS))
    _write_meta(tmp / META, snap)
    if snap.bm25 is not None:
        snap.bm25.save(str(tmp / BM25_DIR), show_progress=False)
    files = {}
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            files[path.relative_to(tmp).as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    manifest = {
        "format": FORMAT,
        "pipeline": snap.pipeline,
        "version": snap.version,
        "built_at": snap.built_at,
        "model": snap.model,
        "dimension": snap.dimension,
        "sentences": len(snap.sentences),
        "documents": {
            d.name: {"hash": d.content_hash, "title": d.title, "sentences": d.sentences, "indexed_at": d.indexed_at}
            for d in snap.documents
        },
        "files": files,
    }
    _write_json_durably(tmp / MANIFEST, manifest)
    _fsync_dir(tmp)


def file_sha256(path: Path) -> str:
    """Read in 1 MB blocks: index files and documents can be large."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Owned:
    """Exposes FAISS's stored vectors to NumPy while keeping the index that owns them alive."""

    def __init__(self, index: faiss.Index):
        self.index = index
        n, d = index.ntotal, index.d
        view = faiss.rev_swig_ptr(index.get_xb(), n * d)
        self.__array_interface__ = {"shape": (n, d), "typestr": "<f4", "data": (view.ctypes.data, True), "version": 3}


def index_vectors(index: faiss.Index) -> np.ndarray:
    """The (n, d) float32 vectors inside a flat FAISS index, without a copy; the array's
    ``base`` references the index, so the memory can't be freed while the array lives."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), np.float32)
    return np.asarray(_Owned(index))


def current_version_dir(index_dir: Path) -> Path:
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexMissing(f"no index in {index_dir}/ yet")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{pointer} is unreadable ({exc})") from None
    folder = index_dir / name
    if not name.startswith("v-") or "/" in name or not folder.is_dir():
        raise IndexCorrupt(f"{pointer} names {name!r}, which is not an index folder")
    return folder


def load_snapshot(index_dir: Path, model: str | None = None, dimension: int | None = None) -> IndexSnapshot:
    """Load the live version, checking it against the expected model before trusting it."""
    folder = current_version_dir(index_dir)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{folder.name}/{MANIFEST} is unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise IndexCorrupt(f"{folder.name}/{MANIFEST} is not an index manifest")
    if manifest.get("format") != FORMAT:
        raise IndexCorrupt(f"index format {manifest.get('format')!r}, this briefbot reads format {FORMAT}")
    if model is not None and manifest.get("model") != model:
        raise IndexCorrupt(f"index was built with model {manifest.get('model')!r}, settings ask for {model!r}")
    if dimension is not None and manifest.get("dimension") != dimension:
        raise IndexCorrupt(f"index vectors have dimension {manifest.get('dimension')}, the model gives {dimension}")
    broken = [key for key, kind in _MANIFEST_FIELDS.items() if not isinstance(manifest.get(key), kind)]
    if broken:
        raise IndexCorrupt(f"{folder.name}/{MANIFEST} has no valid {', '.join(broken)}")
    expected = _expected_files(folder, manifest["files"])
    for rel, (size, _digest) in expected.items():
        path = folder / rel
        if not path.is_file():
            raise IndexCorrupt(f"{folder.name}/{rel} is missing")
        if path.stat().st_size != size:
            raise IndexCorrupt(f"{folder.name}/{rel} is {path.stat().st_size} bytes, expected {size} (truncated?)")
    # Same-size damage (a flipped byte, a changed fact) shows only in the content: hash every
    # file once per load. The vectors are hashed from the very bytes FAISS then reads.
    for rel, (_size, digest) in expected.items():
        if rel != VECTORS and file_sha256(folder / rel) != digest:
            raise IndexCorrupt(f"{folder.name}/{rel} does not match its recorded checksum (damaged on disk)")
    try:
        raw = (folder / VECTORS).read_bytes()
    except OSError as exc:
        raise IndexCorrupt(f"{folder.name}/{VECTORS} is unreadable ({exc})") from None
    if hashlib.sha256(raw).hexdigest() != expected[VECTORS][1]:
        raise IndexCorrupt(f"{folder.name}/{VECTORS} does not match its recorded checksum (damaged on disk)")
    try:
        index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
        del raw
        documents, table = _read_meta(folder / META)
        bm25 = bm25s.BM25.load(str(folder / BM25_DIR), show_progress=False) if (folder / BM25_DIR).is_dir() else None
    except Exception as exc:  # faiss and sqlite raise assorted types on damaged files
        raise IndexCorrupt(f"{folder.name} is damaged ({type(exc).__name__}: {exc})") from None
    n = len(table)
    if index.d != manifest["dimension"]:
        raise IndexCorrupt(f"{folder.name}/{VECTORS} holds vectors of dimension {index.d}, the manifest says "
                           f"{manifest['dimension']} (another model's index?)")
    if index.ntotal != n or manifest["sentences"] != n:
        raise IndexCorrupt(f"{folder.name} is inconsistent: {index.ntotal} vectors for {n} sentences")
    if not isinstance(index, faiss.IndexFlat):
        raise IndexCorrupt(f"{folder.name}/{VECTORS} is not a flat index")
    vectors = index_vectors(index)
    return IndexSnapshot(
        version=manifest["version"],
        built_at=manifest["built_at"],
        model=manifest["model"],
        dimension=manifest["dimension"],
        documents=documents,
        sentences=table,
        vectors=vectors,
        faiss_index=index,
        bm25=bm25,
        path=folder,
        pipeline=manifest.get("pipeline") if isinstance(manifest.get("pipeline"), int) else 0,
    )


def _expected_files(folder: Path, files: dict) -> dict[str, tuple[int, str]]:
    """``{relative path: (size, sha256)}`` from the manifest; anything else means a damaged manifest."""
    out = {}
    for rel, entry in files.items():
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or not isinstance(digest, str) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise IndexCorrupt(f"{folder.name}/{MANIFEST} has an invalid entry for {rel!r}")
        out[rel] = (size, digest)
    if VECTORS not in out or META not in out:
        raise IndexCorrupt(f"{folder.name}/{MANIFEST} does not list {VECTORS} and {META}")
    return out


def remove_stale(index_dir: Path, keep: int = 2, min_age_s: float = 0.0) -> list[str]:
    """Delete leftovers of dead builds and old versions (call it under the build lock).

    Kept: the live version, the newest ``keep`` versions, and any version replaced less than
    ``min_age_s`` ago: another process may have read ``CURRENT`` just before a swap and still
    be loading it. Temp folders can go at once: only a build holding the lock writes them."""
    if not index_dir.is_dir():
        return []
    try:
        live = current_version_dir(index_dir).name
    except (IndexMissing, IndexCorrupt):
        live = None
    removed = []
    now = time.time()
    for path in index_dir.iterdir():
        if path.name.startswith((".tmp-", f".{CURRENT}.")):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path.name)
    written = {}
    for p in index_dir.glob("v-*"):
        try:
            written[p.name] = p.stat().st_mtime
        except OSError:
            continue
    # newest first; names only break ties (two builds in one second share a timestamp prefix)
    versions = sorted((index_dir / name for name in written), key=lambda p: (written[p.name], p.name), reverse=True)
    for n, (newer, path) in enumerate(zip(versions, versions[1:]), 1):
        if path.name == live or n < keep:
            continue
        if now - written[newer.name] >= min_age_s:  # replaced (by the version after it) long enough ago
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _write_meta(path: Path, snap: IndexSnapshot) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript(
            """
            CREATE TABLE documents (num INTEGER PRIMARY KEY, name TEXT, title TEXT, hash TEXT,
                                    sentences INTEGER, indexed_at TEXT, first_row INTEGER);
            CREATE TABLE sentences (row INTEGER PRIMARY KEY, id TEXT, doc INTEGER, idx INTEGER,
                                    start INTEGER, end INTEGER, paragraph INTEGER, position INTEGER,
                                    heading TEXT, text TEXT, page INTEGER, tbl INTEGER, tbl_row INTEGER);
            """
        )
        db.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?)",
            [(i, d.name, d.title, d.content_hash, d.sentences, d.indexed_at, d.first_row) for i, d in enumerate(snap.documents)],
        )
        t = snap.sentences
        db.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            zip(range(len(t)), t.ids, t.doc.tolist(), t.index.tolist(), t.start.tolist(), t.end.tolist(),
                t.paragraph.tolist(), t.position.tolist(), t.headings, t.texts,
                t.page.tolist(), t.table.tolist(), t.row.tolist()),
        )
        db.commit()
    finally:
        db.close()


def _read_meta(path: Path) -> tuple[list[DocumentRecord], SentenceTable]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        docs = [DocumentRecord(*row) for row in db.execute(
            "SELECT name, title, hash, sentences, indexed_at, first_row FROM documents ORDER BY num")]
        # Indexes written before locations existed read as "no page, no table".
        have = {r[1] for r in db.execute("PRAGMA table_info(sentences)")}
        where = ", ".join(c if c in have else "0" for c in ("page", "tbl", "tbl_row"))
        rows = db.execute(
            f"SELECT id, text, heading, doc, idx, start, end, paragraph, position, {where} FROM sentences ORDER BY row"
        ).fetchall()
    finally:
        db.close()
    cols = list(zip(*rows)) if rows else [[] for _ in range(12)]
    ints = [np.asarray(c, dtype=np.int32) for c in cols[3:]]
    return docs, SentenceTable(list(cols[0]), list(cols[1]), list(cols[2]), *ints)


def _write_json_durably(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1))
    _fsync_file(path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
