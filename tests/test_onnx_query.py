"""The ONNX export: fp32 lands where PyTorch puts vectors, int8 close to it and the default for
documents and questions; without a writable cache everything still works on PyTorch."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from bot.knowledge import embed, onnx_query  # noqa: E402
from bot.knowledge.build import build_index  # noqa: E402
from bot.knowledge.embed import Encoder  # noqa: E402

from conftest import settings_for, write_docs  # noqa: E402

QUESTIONS = ["When was Umerov informed?", "who won the super bowl", "Ünïcödé — and 8,000 troops?"]


def test_export_agrees_with_pytorch_and_the_engine_uses_it(tmp_path, monkeypatch, encoder, briefing_index):
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(tmp_path / "cache"))
    assert encoder.uses_int8 and encoder.name == encoder.model_name + onnx_query.INT8_SUFFIX
    assert not onnx_query.is_current(encoder.name)
    assert onnx_query.export(encoder)
    assert onnx_query.is_current(encoder.name) and onnx_query.is_current(encoder.model_name)
    assert onnx_query.export_dir(encoder.name).is_relative_to(tmp_path / "cache")
    assert onnx_query.export_dir(encoder.name) == onnx_query.export_dir(encoder.model_name)

    folder = onnx_query.export_dir(encoder.name)
    fp32 = onnx_query.OnnxQueryEncoder(folder).encode(QUESTIONS)
    int8 = onnx_query.OnnxQueryEncoder(folder, int8=True).encode(QUESTIONS)
    slow = encoder.encode_torch(QUESTIONS)
    assert fp32.shape == int8.shape == slow.shape == (3, 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fp32 * slow, axis=1))) > 0.9999
    assert float(np.min(np.sum(int8 * slow, axis=1))) > 0.95
    assert not np.allclose(int8, slow, atol=1e-4)  # really the quantized graph

    from bot.answering.engine import Engine

    fresh = Encoder()  # a new process's encoder: PyTorch not loaded yet
    engine = Engine(briefing_index, encoder=fresh)
    answer = engine.ask("When was Umerov informed?")
    assert fresh._query_model is not None and fresh._query_model.int8
    assert fresh._model is None  # answered without loading torch's model
    assert answer.answer.startswith("November 12th")
    batch = fresh.encode(QUESTIONS)  # documents go through the int8 graph too, still without torch
    assert fresh._model is None and np.allclose(batch, int8, atol=1e-5)


def test_a_damaged_export_falls_back_to_pytorch(tmp_path, monkeypatch, encoder, caplog):
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(tmp_path / "cache"))
    assert onnx_query.export(encoder)
    (onnx_query.export_dir(encoder.name) / onnx_query.INT8_FILE).write_bytes(b"not a model")
    fresh = Encoder()
    fresh._model = encoder._model  # share the loaded PyTorch model (saves seconds)
    assert not fresh.use_query_model(onnx_query.export_dir(encoder.name))
    with caplog.at_level(logging.WARNING):
        vec = fresh.encode_query("When was Umerov informed?")
    assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert not fresh.uses_int8 and fresh.name == fresh.model_name
    assert "could not be loaded" in fresh.fallback_reason


def test_unwritable_cache_builds_on_pytorch_and_says_so(tmp_path, monkeypatch, encoder, caplog):
    """Issue 12: a cache folder that can't be written ended the build in a traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the cache folder should be")
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(embed, "_said_fallback", False)
    fresh = Encoder()
    fresh._model = encoder._model
    settings = settings_for(tmp_path)
    write_docs(settings.documents_dir)
    with caplog.at_level(logging.WARNING):
        report, snap = build_index(settings, fresh)
        build_index(settings, fresh)
    assert snap is not None and report.added and not report.failed
    assert snap.model == fresh.model_name == fresh.name  # recorded as the fp32 model it is
    said = [r.getMessage() for r in caplog.records if "using the PyTorch fp32 encoder" in r.getMessage()]
    assert len(said) == 1, said


def test_an_index_of_the_other_encoder_is_re_embedded_once(workspace, encoder):
    torch_encoder = Encoder(backend="torch")
    torch_encoder._model = encoder._model
    report, snap = build_index(workspace, torch_encoder)
    assert snap.model == encoder.model_name and report.sentences_embedded > 20
    assert any("model" in note for note in report.notes)
    report, snap = build_index(workspace, encoder)
    assert snap.model == encoder.name and report.sentences_embedded == 0  # int8 vectors were cached
    assert any(encoder.name in note for note in report.notes)
    report, _ = build_index(workspace, encoder)
    assert not report.notes and report.sentences_embedded == 0


def test_a_killed_export_leaves_no_temp_folder_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIEFBOT_CACHE_DIR", str(tmp_path / "cache"))
    parent = onnx_query.export_dir("some/model").parent
    parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = parent / f".{'a' * 16}-{int(dead.stdout)}"
    (stale / "model.onnx").parent.mkdir()
    (stale / "model.onnx").write_bytes(b"\0" * 1024)
    running = parent / f".{'b' * 16}-{os.getppid()}"  # a live process's export in progress
    running.mkdir()
    finished = parent / ("c" * 16)
    finished.mkdir()
    assert onnx_query.clean_stale_exports(parent) == [stale.name]
    assert not stale.exists() and running.is_dir() and finished.is_dir()
    old = os.stat(running).st_mtime - onnx_query.STALE_TMP_SECONDS - 60
    os.utime(running, (old, old))  # abandoned long ago (pid since reused)
    assert onnx_query.clean_stale_exports(parent) == [running.name]


def test_unknown_encoder_setting_says_so_and_uses_int8(monkeypatch, caplog):
    monkeypatch.setenv("BRIEFBOT_ENCODER", "TORCH")
    assert Encoder().backend == "torch"  # case does not matter
    monkeypatch.setenv("BRIEFBOT_ENCODER", "fp16")
    with caplog.at_level(logging.WARNING):
        assert Encoder().backend == "int8"
    assert any("BRIEFBOT_ENCODER='fp16'" in r.getMessage() for r in caplog.records)
