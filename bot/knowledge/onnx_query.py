"""The sentence encoder exported to ONNX: fp32 for questions, int8 for documents and questions.

Importing torch and sentence-transformers costs seconds and runs the model at fp32; ONNX
Runtime with dynamically quantized int8 weights (per channel) encodes about twice as fast and
answers the same (bench/README.md, benchmark 7 and "int8 quality"). The packaged weights are
exported once per model and machine to ``$BRIEFBOT_CACHE_DIR/query-onnx/<hash>/`` (default
``~/.cache/briefbot``): ``torch.onnx.export`` with mean pooling and normalization inside the
graph (``model.onnx``), then ``onnxruntime.quantization.quantize_dynamic`` (``model.int8.onnx``).
Both are checked against the PyTorch vectors before they are used. Exporting needs torch and
the ``onnx`` package (the quantizer reads and writes ONNX graphs), so ``onnx`` stays a runtime
dependency: an installation makes its own export on its first build instead of shipping one.

If the export can't be made (no onnxruntime, the cache folder can't be written), everything
still works on PyTorch: ``Encoder`` says so once and uses its fp32 model id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EXPORT_DIR = "query-onnx"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INFO_FILE = "export.json"
INT8_SUFFIX = "+onnx-int8"  # appended to the model id of indexes embedded with the int8 export
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers
_CHECK = ["When was Umerov informed?", "A longer sentence, with punctuation; and numbers like 8,000 and 12th."]
MIN_INT8_AGREEMENT = 0.95  # cosine with fp32 on _CHECK (measured 0.97-1.0 on corpus sentences)
STALE_TMP_SECONDS = 6 * 3600  # a temp folder this old is abandoned even if its pid is reused
_TMP_NAME = re.compile(r"^\.[0-9a-f]{16}-(\d+)$")


def base_model(name: str) -> str:
    """The model id without the int8 marker."""
    return name[: -len(INT8_SUFFIX)] if name.endswith(INT8_SUFFIX) else name


def cache_root() -> Path:
    if os.environ.get("BRIEFBOT_CACHE_DIR"):
        return Path(os.environ["BRIEFBOT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "briefbot"


def export_dir(model_name: str) -> Path:
    return cache_root() / EXPORT_DIR / hashlib.sha1(base_model(model_name).encode()).hexdigest()[:16]


def is_current(model_name: str) -> bool:
    """An export for this model id is in place (the int8 file too, for an int8 id)."""
    folder = export_dir(model_name)
    needed = INT8_FILE if model_name.endswith(INT8_SUFFIX) else MODEL_FILE
    try:
        info = json.loads((folder / INFO_FILE).read_text())
        return info.get("model") == base_model(model_name) and (folder / needed).is_file() \
            and (folder / MODEL_FILE).is_file() and bool(info.get("int8_agreement"))
    except (OSError, ValueError, AttributeError):
        return False


def clean_stale_exports(parent: Path) -> list[str]:
    """Remove temp folders of exports whose process died (a killed export leaves ~90 MB)."""
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if not match or not entry.is_dir():
            continue
        pid = int(match.group(1))
        try:
            old = time.time() - entry.stat().st_mtime > STALE_TMP_SECONDS
        except OSError:
            continue
        if pid == os.getpid() or not (old or not _alive(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    if removed:
        log.info("removed %d unfinished ONNX export folder(s) in %s", len(removed), parent)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def export_graph(module, sample, path: Path, *outputs: str, per_token: tuple[str, ...] = ()) -> None:
    """A BERT-style ``module`` (input_ids, attention_mask, token_type_ids) to ONNX, opset 17, with
    dynamic batch and length (``per_token`` outputs have a token axis too); ``sample`` is a
    tokenizer's output to trace with. Shared by the question encoder's export and
    bench/export_cross_encoder.py."""
    import torch

    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in (*names, *per_token)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on opsets are not ours to act on
        torch.onnx.export(
            module.eval(), tuple(sample[n] for n in names), str(path),
            input_names=names, output_names=list(outputs), opset_version=17, dynamo=False,
            dynamic_axes={**{o: {0: "batch"} for o in outputs}, **axes},
        )


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization, per channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer advises on the root logger ("consider pre-processing"), to users
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def export(encoder) -> bool:
    """Export ``encoder``'s PyTorch model (fp32 and int8); True when a checked export is in place.

    Never raises: the export is an optimization and the PyTorch model still works without it."""
    if is_current(encoder.model_name + INT8_SUFFIX):
        return True
    try:
        import onnxruntime  # noqa: F401  (no runtime, no point exporting)
        import torch
        from onnxruntime.quantization import quantize_dynamic  # noqa: F401  (needs the onnx package)
    except ImportError as exc:
        log.warning("ONNX export skipped (%s); the encoder stays on PyTorch", exc)
        return False
    target = export_dir(encoder.model_name)
    tmp = target.with_name(f".{target.name}-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_exports(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
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

        export_graph(Pooled(transformer), tokenizer(_CHECK, padding=True, return_tensors="pt"), tmp / MODEL_FILE,
                     "embedding")
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        quantize_int8(tmp / MODEL_FILE, tmp / INT8_FILE)
        expected = encoder.encode_torch(_CHECK)
        agreement = float(np.min(np.sum(expected * OnnxQueryEncoder(tmp).encode(_CHECK), axis=1)))
        if agreement < 0.9999:
            raise ValueError(f"ONNX vectors disagree with PyTorch (cosine {agreement:.6f})")
        int8 = float(np.min(np.sum(expected * OnnxQueryEncoder(tmp, int8=True).encode(_CHECK), axis=1)))
        if int8 < MIN_INT8_AGREEMENT:
            raise ValueError(f"int8 vectors disagree with PyTorch (cosine {int8:.4f})")
        (tmp / INFO_FILE).write_text(json.dumps({"model": encoder.model_name, "agreement": agreement,
                                                 "int8_agreement": int8}))
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same export first
            shutil.rmtree(tmp, ignore_errors=True)
        return is_current(encoder.model_name + INT8_SUFFIX)
    except Exception as exc:  # an optional speed-up: never fail a build over it
        log.warning("ONNX export to %s skipped (%s: %s)", target.parent, type(exc).__name__, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return False


class OnnxQueryEncoder:
    """Tokenizer + ONNX graph (pooling and normalization included): text in, unit vectors out.

    ``threads=1`` (questions): one short question is too little work to share between threads,
    and spinning threads steal the cores that other users' questions need. Batches of documents
    get every core, still without spinning (the machine may be shared)."""

    def __init__(self, folder: Path, int8: bool = False, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = Path(folder) / (INT8_FILE if int8 else MODEL_FILE)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.int8 = int8

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
        }
        return self.session.run(None, feed)[0].astype(np.float32)
