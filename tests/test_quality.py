"""Quality on questions nobody tuned for: a fixed sample of the qa-train val split (passages
and questions copied into tests/data, so this never skips on a plain clone), indexed together
so every question meets distractors, plus the briefing dev set. The val thresholds guard against
regressions: they sit a margin below what the shipped model (ranker + cross-encoder) measures on
this sample (top-1 0.786, answerable refused 0.092, unanswerable refused 0.500; the ranker alone
measured 0.694 / 0.061 / 0.269). The whole val split is short of issue 9's targets (0.80 / 0.10 /
0.70); see docs/quality.md.

Also: the shipped ranker's weights are checked against their recorded sha256, and a Searcher
holds no caches that keep a swapped-out snapshot alive.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import weakref
from pathlib import Path

import pytest

from conftest import DEV_EVAL, REPO

sys.path.insert(0, str(REPO))

from bench.qa_data import document_text, is_answer_sentence  # noqa: E402

SAMPLE = REPO / "tests" / "data" / "qa_val_sample.jsonl"


@pytest.fixture(scope="module")
def val_sample(tmp_path_factory, encoder):
    from bot.answering.engine import Engine
    from bot.config import Settings

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    passages = {r["id"]: r for r in rows if r["kind"] == "passage"}
    questions = [r for r in rows if r["kind"] == "question"]
    root = tmp_path_factory.mktemp("qa-val")
    (root / "docs").mkdir()
    for p in passages.values():
        if p["indexed"]:
            (root / "docs" / p["doc"]).write_text(document_text(p), encoding="utf-8")
    engine = Engine(Settings(documents_dir=root / "docs", index_dir=root / "idx"), encoder=encoder)
    engine.load_or_build()
    return engine, passages, questions


def test_val_sample_ranking_and_abstention(val_sample):
    engine, passages, questions = val_sample
    top1, refused_ans, refused_una = [], [], []
    for q in questions:
        answerable = q["answerable"] and q["indexed"]
        found = engine.retrieve(q["question"])
        if answerable:
            top = found.passages[0]
            top1.append(is_answer_sentence(q, passages[q["passage_id"]]["doc"], top.document, top.text))
            refused_ans.append(not found.supported)
        else:
            refused_una.append(not found.supported)
    assert len(top1) >= 80 and len(refused_una) >= 40
    acc = sum(top1) / len(top1)
    fr = sum(refused_ans) / len(refused_ans)
    ur = sum(refused_una) / len(refused_una)
    figures = f"top-1 {acc:.3f}, answerable refused {fr:.3f}, unanswerable refused {ur:.3f}"
    assert acc >= 0.72 and fr <= 0.15 and ur >= 0.40, figures


def test_rerank_is_fit_as_a_choice_among_each_questions_candidates():
    """A feature that is the same for every candidate of a question cannot help choose among
    them: the choice fit gives it no weight, where a pointwise fit leans on it (here it marks
    the questions that have a gold candidate at all). The Platt step keeps sigmoid(logit) a
    calibrated P(gold) over all candidates."""
    import numpy as np

    from bench.train_ranker import fit_choice, fit_linear

    rng = np.random.default_rng(0)
    groups = []
    for _ in range(400):
        has_gold = rng.random() < 0.6
        sharp = rng.normal(size=4)
        y = np.zeros(4, dtype=bool)
        if has_gold:
            y[int(np.argmax(sharp + rng.normal(scale=0.5, size=4)))] = True
        x = np.column_stack([sharp, np.full(4, float(has_gold) + rng.normal(scale=0.3))])
        groups.append((x, y))
    choice = fit_choice(groups, ["sharp", "question_level"])
    pointwise = fit_linear(np.vstack([x for x, _ in groups]), np.concatenate([y for _, y in groups]),
                           ["sharp", "question_level"])
    assert abs(choice.coef[1]) < 1e-6 < choice.coef[0]
    assert pointwise.coef[1] > 0.5
    picked = [y[int(np.argmax(choice.logit(x)))] for x, y in groups if y.any()]
    assert np.mean(picked) == np.mean([y[int(np.argmax(x[:, 0]))] for x, y in groups if y.any()]) > 0.7
    p = np.concatenate([choice.proba(x) for x, _ in groups])
    assert abs(p.mean() - np.mean([y.mean() for _, y in groups])) < 0.02


def test_val_figures_carry_their_sampling_interval():
    """The Wilson interval: known values (a share of 0.4 of 360 questions spans about +-5 points),
    shrinking with more questions, inside [0, 1] at the edges."""
    import numpy as np

    from bench.train_ranker import interval95

    lo, hi = interval95(np.arange(360) < 144)  # 0.400 of 360
    assert (lo, hi) == (0.3507, 0.4514)
    lo2, hi2 = interval95(np.arange(3600) < 1440)
    assert lo < lo2 < 0.4 < hi2 < hi
    assert interval95(np.zeros(20, dtype=bool))[0] == 0.0 and 0 < interval95(np.zeros(20, dtype=bool))[1] < 0.2
    assert interval95(np.ones(20, dtype=bool))[1] == 1.0


def test_dev_set_answers_cited_and_unanswerables_refused(briefing_engine):
    from bot.answering.evaluate import read_rows, run_eval

    result = run_eval(briefing_engine.ask, read_rows(DEV_EVAL))
    m = result.metrics()
    assert m["questions"] >= 10
    # 12 of 13 answered and cited right, 3 of 3 unanswerables refused (the issue asks for 0.9 and
    # all three: docs/quality.md); the floors leave one question of margin to answers and
    # refusals, none to citations; tests/test_answers.py holds the strict xfail (d12)
    assert m["answer_accuracy"] >= 0.84 and m["citation_accuracy"] >= 0.9, m
    assert m["abstention_on_unanswerable"] >= 0.66, m


def test_shipped_model_is_verified(tmp_path):
    from bot.knowledge.rerank import MODEL_DIR, ModelError, load_model

    model = load_model()
    assert 0.0 < model.threshold < 1.0
    for name in ("ranker.json", model.manifest["weights"]):
        shutil.copy(MODEL_DIR / name, tmp_path / name)
    weights = tmp_path / model.manifest["weights"]
    weights.write_text(weights.read_text().replace('"intercept": ', '"intercept": 1', 1))
    with pytest.raises(ModelError, match="sha256"):
        load_model(tmp_path)


def test_dropped_searcher_frees_its_snapshot(briefing_index, encoder):
    from bot.knowledge.search import Searcher
    from bot.knowledge.store import load_snapshot

    snap = load_snapshot(Path(briefing_index.index_dir))
    searcher = Searcher(snap, encoder)
    assert searcher.search("When was Umerov informed?").passages
    refs = weakref.ref(snap), weakref.ref(searcher)
    del snap, searcher
    gc.collect()
    assert refs[0]() is None and refs[1]() is None
