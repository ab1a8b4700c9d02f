"""Questions embedded through the ONNX export must land where PyTorch puts them."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from bot.knowledge import onnx_query  # noqa: E402
from bot.knowledge.embed import Encoder  # noqa: E402


def test_export_agrees_with_pytorch_and_the_engine_uses_it(tmp_path, monkeypatch, encoder, briefing_index):
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(tmp_path / "cache"))
    assert not onnx_query.is_current(encoder.name)
    assert onnx_query.export(encoder)
    assert onnx_query.is_current(encoder.name)
    assert onnx_query.export_dir(encoder.name).is_relative_to(tmp_path / "cache")

    questions = ["When was Umerov informed?", "who won the super bowl", "Ünïcödé — and 8,000 troops?"]
    fast = onnx_query.OnnxQueryEncoder(onnx_query.export_dir(encoder.name)).encode(questions)
    slow = encoder.encode(questions)
    assert fast.shape == slow.shape == (3, 384)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fast * slow, axis=1))) > 0.9999

    from bot.answering.engine import Engine

    fresh = Encoder()  # a new process's encoder: PyTorch not loaded yet
    engine = Engine(briefing_index, encoder=fresh)
    answer = engine.ask("When was Umerov informed?")
    assert fresh._query_model is not None and fresh._model is None  # answered without loading torch's model
    assert answer.answer.startswith("November 12th")


def test_a_damaged_export_falls_back_to_pytorch(tmp_path, monkeypatch, encoder):
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(tmp_path / "cache"))
    assert onnx_query.export(encoder)
    (onnx_query.export_dir(encoder.name) / onnx_query.MODEL_FILE).write_bytes(b"not a model")
    fresh = Encoder()
    assert not fresh.use_query_model(onnx_query.export_dir(encoder.name))
    vec = fresh.encode_query("When was Umerov informed?")
    assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
