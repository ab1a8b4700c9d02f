"""Questions embedded by ONNX Runtime instead of PyTorch, so a fresh process answers fast.

Importing torch and sentence-transformers costs seconds; onnxruntime and tokenizers cost a
fraction of one. After a build (where torch is loaded anyway) the same weights are exported,
once per model and machine, to ``$BRIEFBOT_CACHE_DIR/query-onnx/`` (default
``~/.cache/briefbot``) with mean pooling and normalization inside the graph, checked against
the PyTorch vectors, and from then on ``Encoder.encode_query`` uses it. Documents are still
embedded by sentence-transformers; the two agree to ~1e-6, so rankings don't change. If
onnxruntime is missing or the export fails, questions simply use PyTorch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EXPORT_DIR = "query-onnx"
MODEL_FILE = "model.onnx"
INFO_FILE = "export.json"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers
_CHECK = ["When was Umerov informed?", "A longer sentence, with punctuation; and numbers like 8,000 and 12th."]


def cache_root() -> Path:
    if os.environ.get("BRIEFBOT_CACHE_DIR"):
        return Path(os.environ["BRIEFBOT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "briefbot"


def export_dir(model_name: str) -> Path:
    return cache_root() / EXPORT_DIR / hashlib.sha1(model_name.encode()).hexdigest()[:16]


def is_current(model_name: str) -> bool:
    folder = export_dir(model_name)
    try:
        return json.loads((folder / INFO_FILE).read_text()).get("model") == model_name and (folder / MODEL_FILE).is_file()
    except (OSError, ValueError):
        return False


def export(encoder) -> bool:
    """Export ``encoder``'s transformer for questions; True when a checked export is in place."""
    if is_current(encoder.name):
        return True
    try:
        import onnxruntime  # noqa: F401  (no runtime, no point exporting)
        import torch
    except ImportError:
        return False
    target = export_dir(encoder.name)
    tmp = target.with_name(f".{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        st = encoder.model
        transformer = st[0].auto_model.eval()
        tokenizer = st.tokenizer

        class Pooled(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(pooled, p=2, dim=1)

        names = ["input_ids", "attention_mask", "token_type_ids"]
        sample = tokenizer(_CHECK, padding=True, return_tensors="pt")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on opsets are not ours to act on
            torch.onnx.export(
                Pooled(transformer), tuple(sample[n] for n in names), str(tmp / MODEL_FILE),
                input_names=names, output_names=["embedding"], opset_version=17, dynamo=False,
                dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}},
            )
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        expected = encoder.encode(_CHECK)
        got = OnnxQueryEncoder(tmp).encode(_CHECK)
        agreement = float(np.min(np.sum(expected * got, axis=1)))
        if agreement < 0.9999:
            raise ValueError(f"ONNX vectors disagree with PyTorch (cosine {agreement:.6f})")
        (tmp / INFO_FILE).write_text(json.dumps({"model": encoder.name, "agreement": agreement}))
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same export first
            shutil.rmtree(tmp, ignore_errors=True)
        return is_current(encoder.name)
    except Exception as exc:  # an optional speed-up: never fail a build over it
        log.warning("query model export skipped (%s: %s); questions will use PyTorch", type(exc).__name__, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return False


class OnnxQueryEncoder:
    """Tokenizer + ONNX graph (pooling and normalization included): text in, unit vectors out."""

    def __init__(self, folder: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        # One short question is too little work to share between threads, and spinning threads
        # steal the cores that other users' questions need.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(Path(folder) / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
        }
        return self.session.run(None, feed)[0].astype(np.float32)
