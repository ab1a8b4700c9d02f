"""The learned answer-sentence ranker and answerability model (trained by bench/train_ranker.py).

Two small logistic regressions, stored as JSON weights in ``bot/models`` (no pickle, checked
against the sha256 in the manifest when loaded):

- the *ranker* scores each candidate sentence: P(this sentence answers the question);
- the *answerability* model reads the ranked list (best probability, margin, terms the index
  lacks, ...) and gives a calibrated P(the best sentence answers the question). Below the
  manifest's threshold the bot says the briefings don't say.

This module also holds the answer-type patterns both models use as features: whether a
question asks for a date, a number, a person or a place, and whether a sentence holds one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).resolve().parents[1] / "models"
MANIFEST = "ranker.json"

# Per (question, candidate sentence); see bot.knowledge.search.Searcher._features.
FEATURES = [
    "dense", "window", "prev_dense", "dense_gap", "bm25_norm", "bm25_log", "cover_sent", "cover_window",
    "cover_head", "cover_gap", "dense_rank", "bm25_rank", "asks_type", "type_match", "absent_frac",
    "len_log", "qterms_log", "missing_max",
]
# Per question, read off the ranked candidates.
QFEATURES = [
    "top_logit", "margin", "top_dense", "top_cover_window", "top_cover_sent", "absent_frac", "qterms_log",
    "asks_type", "top_type_match", "top_missing_max", "top_bm25_log",
]

# ---- answer types -------------------------------------------------------------------------
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
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


@dataclass(frozen=True)
class RankerModel:
    ranker: Linear
    answerable: Linear
    threshold: float
    manifest: dict


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(folder: Path = MODEL_DIR) -> RankerModel:
    """Load and verify the shipped weights; a mismatch is an error, not a silent fallback."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the ranker manifest {manifest_path}: {exc}") from exc
    weights_path = folder / manifest["weights"]
    digest = sha256_file(weights_path) if weights_path.is_file() else "missing"
    if digest != manifest["sha256"]:
        raise ModelError(f"ranker weights {weights_path.name} do not match the manifest's sha256 ({digest[:12]})")
    weights = json.loads(weights_path.read_text(encoding="utf-8"))
    return RankerModel(
        ranker=Linear.from_dict(weights["ranker"], FEATURES),
        answerable=Linear.from_dict(weights["answerable"], QFEATURES),
        threshold=float(manifest["threshold"]),
        manifest=manifest,
    )


_MODEL: RankerModel | None = None


def default_model() -> RankerModel:
    """The shipped model, loaded once per process (it is immutable and a few KB)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = load_model()
    return _MODEL


def question_features(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """QFEATURES from the candidates' ranker logits and feature rows (best first not required)."""
    order = np.argsort(-logits)
    top = order[0]
    second = float(logits[order[1]]) if len(order) > 1 else float(logits[top]) - 5.0
    f = {name: x[top, i] for i, name in enumerate(FEATURES)}
    return np.array([
        float(logits[top]), float(logits[top]) - second, f["dense"], f["cover_window"], f["cover_sent"],
        f["absent_frac"], f["qterms_log"], f["asks_type"], f["type_match"], f["missing_max"], f["bm25_log"],
    ])

