"""The learned answer-sentence ranking and answerability models (trained by bench/train_ranker.py).

Three stages, all weights in ``bot/models`` (no pickle, each file checked against the sha256 in
the manifest when loaded):

- the *ranker*, a logistic regression over cheap features, orders every candidate sentence;
- the *cross-encoder* (bot/knowledge/cross_encoder.py) reads the question with each of the
  ranker's best few, and a second small linear model (*rerank*, fit as a choice among those few)
  combines both into the final order;
- the *answerability* model reads the final list (best score, margins, the cross-encoder's
  verdict, terms the index lacks, ...) and gives a calibrated P(the best sentence answers the
  question). Below the manifest's threshold the bot says the briefings don't say.

This module also holds the answer-type patterns the ranker uses as features: whether a
question asks for a date, a number, a person or a place, and whether a sentence holds one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.knowledge.cross_encoder import CrossEncoder, CrossEncoderError
from bot.knowledge.store import file_sha256
from bot.knowledge.terms import MONTHS

MODEL_DIR = Path(__file__).resolve().parents[1] / "models"
MANIFEST = "ranker.json"

# Per (question, candidate sentence); see bot.knowledge.search.Searcher._features.
FEATURES = [
    "dense", "window", "prev_dense", "dense_gap", "bm25_norm", "bm25_log", "cover_sent", "cover_window",
    "cover_head", "cover_gap", "dense_rank", "bm25_rank", "asks_type", "type_match", "absent_frac",
    "len_log", "qterms_log", "missing_max",
]
# Per reranked candidate: the first ranker's logit and the cross-encoder's, raw and against the best.
RERANK_FEATURES = ["first_logit", "first_gap", "ce", "ce_gap"]
# Per question, read off the reranked candidates.
QFEATURES = [
    "top_logit", "margin", "top_dense", "top_cover_window", "top_cover_sent", "absent_frac", "qterms_log",
    "asks_type", "top_type_match", "top_missing_max", "top_bm25_log", "top_ce", "ce_margin",
]

# ---- answer types -------------------------------------------------------------------------
_MONTHS = "|".join(MONTHS)
_ASKS = {
    "when": re.compile(r"^(?:when|since when)\b|\b(?:what|which|in what|in which) (?:year|date|day|month|time|century|decade|period|era)\b",
                       re.IGNORECASE),
    "number": re.compile(r"\bhow (?:many|much|long|old|far|tall|big|large|high|often|fast|heavy|deep|wide)\b"
                         r"|\bwhat (?:percentage|percent|number|amount|proportion|size|age)\b", re.IGNORECASE),
    "who": re.compile(r"^(?:who|whom|whose)\b|\b(?:which|what) (?:person|people|man|woman|company|team|band|group|player)\b",
                      re.IGNORECASE),
    "where": re.compile(r"^where\b|\b(?:what|which|in what|in which) (?:country|city|state|place|town|region|continent|island|county|location)\b",
                        re.IGNORECASE),
}
_HAS = {
    "when": re.compile(rf"\b\d{{3,4}}s?\b|\b\d{{1,2}}(?:st|nd|rd|th) century\b|\b(?:{_MONTHS})\b"
                       r"|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow)\b"
                       r"|\b\d{4}-\d\d-\d\d\b|\b(?:century|decade|years? ago|BC|AD)\b", re.IGNORECASE),
    "number": re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                         r"fifty|hundred|thousand|million|billion|dozen|single|double|half|several|few)\b", re.IGNORECASE),
    "who": re.compile(r"(?<=\S )[A-Z][a-z]+"),
    "where": re.compile(r"(?<=\S )[A-Z][a-z]+"),
}


def asked_type(question: str) -> str:
    """"when", "number", "who", "where" or "" for a question that asks for none of these."""
    for kind, pattern in _ASKS.items():
        if pattern.search(question.strip()):
            return kind
    return ""


def holds_type(kind: str, sentence: str) -> bool:
    return bool(kind) and bool(_HAS[kind].search(sentence))


# ---- the models -----------------------------------------------------------------------------
class ModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class Linear:
    """A standardised logistic regression: p = sigmoid(((x - mean) / scale) . coef + intercept)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_dict(cls, d: dict, expected: list[str]) -> "Linear":
        if list(d["features"]) != list(expected):
            raise ModelError(f"model features {d['features']} differ from the code's {expected}")
        arr = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        return cls(tuple(d["features"]), arr("mean"), arr("scale"), arr("coef"), float(d["intercept"]))

    def logit(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(x)))


@dataclass
class RankerModel:
    ranker: Linear
    rerank: Linear
    answerable: Linear
    threshold: float
    manifest: dict
    folder: Path
    _cross: CrossEncoder | None = None

    @property
    def rerank_k(self) -> int:
        """How many of the ranker's best sentences the cross-encoder reads."""
        return int(self.manifest["cross_encoder"]["k"])

    @property
    def span_min_p(self) -> dict[str, float]:
        """Per question type (bot/answering/spans.py's, plus "default"): the probability at which
        the cross-encoder's short answer is used; empty when the model reads no spans."""
        return {k: float(v) for k, v in (self.manifest["cross_encoder"].get("span_min_p") or {}).items()}

    @property
    def cross_encoder(self) -> CrossEncoder:
        """Opened on first use (about 0.2 s), then shared by every search of the process."""
        if self._cross is None:
            spec = self.manifest["cross_encoder"]
            try:
                self._cross = CrossEncoder(self.folder / spec["file"], spec["sha256"], spec.get("tokenizer_sha256", ""),
                                           context_words=int(spec.get("context_words", 0)))
            except CrossEncoderError as exc:
                raise ModelError(str(exc)) from exc
        return self._cross


def load_model(folder: Path = MODEL_DIR) -> RankerModel:
    """Load and verify the shipped weights; a mismatch is an error, not a silent fallback."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the ranker manifest {manifest_path}: {exc}") from exc
    weights_path = folder / manifest["weights"]
    digest = file_sha256(weights_path) if weights_path.is_file() else "missing"
    if digest != manifest["sha256"]:
        raise ModelError(f"ranker weights {weights_path.name} do not match the manifest's sha256 ({digest[:12]})")
    weights = json.loads(weights_path.read_text(encoding="utf-8"))
    if "rerank" not in weights or "cross_encoder" not in manifest:
        raise ModelError(f"the ranker manifest {manifest_path} names no cross-encoder")
    return RankerModel(
        ranker=Linear.from_dict(weights["ranker"], FEATURES),
        rerank=Linear.from_dict(weights["rerank"], RERANK_FEATURES),
        answerable=Linear.from_dict(weights["answerable"], QFEATURES),
        threshold=float(manifest["threshold"]),
        manifest=manifest,
        folder=folder,
    )


_MODEL: RankerModel | None = None


def default_model() -> RankerModel:
    """The shipped model, loaded once per process (its weights never change while it runs)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = load_model()
    return _MODEL


def rerank_features(first_logits: np.ndarray, ce: np.ndarray) -> np.ndarray:
    """RERANK_FEATURES for the ranker's best few: their first logits and cross-encoder logits."""
    return np.column_stack([first_logits, first_logits - first_logits.max(), ce, ce - ce.max()])


def question_features(logits: np.ndarray, x: np.ndarray, ce: np.ndarray | None = None) -> np.ndarray:
    """QFEATURES from the final logits of the candidates, their feature rows and cross-encoder
    logits (best first not required; ``ce`` None reads as a cross-encoder that saw nothing)."""
    order = np.argsort(-logits)
    top = order[0]
    second = float(logits[order[1]]) if len(order) > 1 else float(logits[top]) - 5.0
    f = {name: x[top, i] for i, name in enumerate(FEATURES)}
    if ce is None or not len(ce):
        top_ce = ce_margin = 0.0
    else:
        top_ce = float(ce[top])
        rest = np.delete(ce, top)
        ce_margin = top_ce - float(rest.max()) if len(rest) else 5.0
    return np.array([
        float(logits[top]), float(logits[top]) - second, f["dense"], f["cover_window"], f["cover_sent"],
        f["absent_frac"], f["qterms_log"], f["asks_type"], f["type_match"], f["missing_max"], f["bm25_log"],
        top_ce, ce_margin,
    ])
