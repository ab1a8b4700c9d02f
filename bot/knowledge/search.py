"""Hybrid sentence search: dense (FAISS) and keyword (BM25) candidates fused by reciprocal
rank, then each candidate sentence re-ranked with its heading and neighbours as context.

It also decides whether the best sentences *support* an answer at all: the question's rare
terms must be found near the sentence, or the meaning must match closely. That decision is
what lets the answerers say "the briefings don't say" instead of quoting the nearest sentence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from bot.answering.types import Passage, Turn
from bot.knowledge.embed import Encoder
from bot.knowledge.store import IndexSnapshot
from bot.knowledge.terms import raw_tokens, terms

CANDIDATES = 40  # from each of dense and keyword search
RRF_K = 60
# Ranking weights and the support rule, tuned on the dev set with BBC distractors indexed
# (bench/tune_report.json records the sweep); see bot/knowledge/README or bench/README.
W_DENSE, W_WINDOW, W_LEXICAL, W_COVER = 0.40, 0.20, 0.15, 0.25
# Support: dense similarity plus term coverage of the best sentence must reach SUPPORT,
# less ABSENT_PENALTY for each question term that occurs nowhere in the index ("price" in a
# corpus that never prices anything is the thing asked for, and it isn't there).
SUPPORT = 1.08
ABSENT_PENALTY = 0.15
_FOLLOWUP_WORDS = {"that", "it", "this", "those", "these", "they", "them", "he", "she", "him", "her", "his",
                   "there", "then", "else", "other", "another", "also", "same", "its", "their"}
_ELSE_WORDS = {"else", "other", "another", "besides"}


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]
    supported: bool  # whether passages[0] really answers the question
    confidence: float  # the support score compared with SUPPORT
    coverage: float
    dense: float


class Searcher:
    """Searches one snapshot; cheap to create, so a new one comes with every index swap."""

    def __init__(self, snapshot: IndexSnapshot, encoder: Encoder):
        self.snap = snapshot
        self.encoder = encoder
        self._n = len(snapshot.sentences)
        self._idf = self._document_frequencies()

    def _document_frequencies(self) -> dict[str, float]:
        bm = self.snap.bm25
        if bm is None or self._n == 0:
            return {}
        indptr = bm.scores["indptr"]
        df = np.diff(indptr)
        n = self._n
        return {tok: math.log(1 + (n - df[i] + 0.5) / (df[i] + 0.5)) for tok, i in bm.vocab_dict.items() if i < len(df)}

    def idf(self, term: str) -> float:
        return self._idf.get(term, math.log(1 + (self._n + 0.5) / 0.5))

    # ---- candidates -------------------------------------------------------------------
    def _dense(self, qv: np.ndarray, k: int) -> list[int]:
        k = min(k, self._n)
        _scores, ids = self.snap.faiss_index.search(qv.reshape(1, -1).astype(np.float32), k)
        return [int(i) for i in ids[0] if i >= 0]

    def _bm25_scores(self, query_terms: list[str]) -> np.ndarray | None:
        known = [t for t in query_terms if t in self.snap.bm25.vocab_dict] if self.snap.bm25 else []
        if not known:
            return None
        return self.snap.bm25.get_scores(known)

    @staticmethod
    def _top(scores: np.ndarray | None, k: int) -> list[int]:
        if scores is None:
            return []
        k = min(k, len(scores))
        idx = np.argpartition(-scores, k - 1)[:k]
        idx = idx[np.argsort(-scores[idx])]
        return [int(i) for i in idx if scores[i] > 0]

    # ---- context ----------------------------------------------------------------------
    def _neighbours(self, row: int) -> list[int]:
        doc = self.snap.sentences.doc
        return [r for r in (row - 1, row + 1) if 0 <= r < self._n and doc[r] == doc[row]]

    @lru_cache(maxsize=4096)
    def _row_terms(self, row: int) -> frozenset[str]:
        return frozenset(terms(self.snap.sentences.texts[row]))

    @lru_cache(maxsize=4096)
    def _heading_terms(self, row: int) -> frozenset[str]:
        return frozenset(terms(self.snap.sentences.headings[row]))

    def _coverage(self, row: int, qterms: list[str], near: Sequence[int], names: frozenset[str] = frozenset()) -> float:
        """Share of the question's terms found in the sentence (or, for half, next to it),
        weighted by rarity, and double for names: the question's subject must be there."""
        if not qterms:
            return 0.0
        own = self._row_terms(row) | self._heading_terms(row)
        around = frozenset().union(*(self._row_terms(r) for r in near)) if near else frozenset()
        got = total = 0.0
        for t in set(qterms):
            w = self.idf(t) * (2.0 if t in names else 1.0)
            total += w
            if t in own:
                got += w
            elif t in around:
                got += 0.5 * w
        return got / total if total else 0.0

    # ---- search -----------------------------------------------------------------------
    def search(self, question: str, history: Sequence[Turn] = (), k: int = 5) -> Retrieval:
        if self._n == 0:
            return Retrieval([], False, 0.0, 0.0, 0.0)
        qterms = terms(question)
        names = name_terms(question)
        followup = bool(history) and _is_followup(question, qterms)
        qv = self.encoder.encode_query(question)
        dense_q = qv
        ctx_terms: list[str] = []
        previous = history[-1] if history else None
        if followup and previous:
            ctx_text = f"{previous.question} {previous.answer[:400]}"
            ctx_terms = terms(previous.question)
            cv = self.encoder.encode_query(ctx_text)
            dense_q = qv + 0.8 * cv
            dense_q = dense_q / (np.linalg.norm(dense_q) or 1.0)
        lex = self._bm25_scores(qterms)
        if ctx_terms:
            extra = self._bm25_scores(ctx_terms)
            if extra is not None:
                lex = extra * 0.6 if lex is None else lex + 0.6 * extra
        dense_ids = self._dense(dense_q, CANDIDATES)
        lex_ids = self._top(lex, CANDIDATES)
        fused: dict[int, float] = {}
        for ranking in (dense_ids, lex_ids):
            for rank, row in enumerate(ranking):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        rows = sorted(fused, key=fused.get, reverse=True)[: 2 * CANDIDATES]
        if not rows:
            return Retrieval([], False, 0.0, 0.0, 0.0)
        arr = np.asarray(rows)
        vecs = self.snap.vectors
        dense = vecs[arr] @ dense_q
        own_dense = vecs[arr] @ qv
        lex_norm = np.zeros(len(rows))
        if lex is not None:
            top = float(lex[arr].max()) or 1.0
            lex_norm = lex[arr] / top
        excluded = _quoted_in(previous.answer, self.snap.sentences.texts, rows) if (
            previous and _ELSE_WORDS & set(raw_tokens(question))) else set()
        scored = []
        cover_terms = qterms + ([t for t in ctx_terms if t not in qterms] if followup else [])
        for i, row in enumerate(rows):
            near = self._neighbours(row)
            window = vecs[[row, *near]].mean(axis=0)
            window_sim = float(window @ dense_q / (np.linalg.norm(window) or 1.0))
            cover = self._coverage(row, cover_terms, near, names)
            score = W_DENSE * float(dense[i]) + W_WINDOW * window_sim + W_LEXICAL * float(lex_norm[i]) + W_COVER * cover
            if row in excluded:
                score -= 0.5
            scored.append((score, row, cover, float(dense[i]), float(own_dense[i])))
        scored.sort(reverse=True)
        best_score, best_row, best_cover, best_dense, best_own = scored[0]
        own_cover = self._coverage(best_row, qterms, self._neighbours(best_row), names)
        absent = sum(1 for t in set(qterms) if t not in self._idf)
        support = best_dense + (best_cover if followup else own_cover) - ABSENT_PENALTY * absent
        supported = bool(qterms) and support >= SUPPORT
        passages = [self.passage(row, score) for score, row, *_ in scored[:k]]
        return Retrieval(passages, supported, round(support, 4), best_cover, best_dense)

    def passage(self, row: int, score: float = 0.0) -> Passage:
        t = self.snap.sentences
        doc = self.snap.documents[int(t.doc[row])]
        near = self._neighbours(row)
        before = t.texts[row - 1] if row - 1 in near else ""
        after = t.texts[row + 1] if row + 1 in near else ""
        return Passage(
            sentence_id=t.ids[row],
            document=doc.name,
            title=doc.title,
            text=t.texts[row],
            start=int(t.start[row]),
            end=int(t.end[row]),
            heading=t.headings[row],
            location=f"paragraph {int(t.paragraph[row]) + 1}, sentence {int(t.position[row]) + 1}",
            score=round(float(score), 4),
            before=before,
            after=after,
        )

    def context(self, sentence_id: str, radius: int = 2) -> list[Passage]:
        row = self.snap.row_of.get(sentence_id)
        if row is None:
            return []
        doc = self.snap.sentences.doc
        rows = [r for r in range(row - radius, row + radius + 1) if 0 <= r < self._n and doc[r] == doc[row]]
        return [self.passage(r) for r in rows]


def name_terms(question: str) -> frozenset[str]:
    """Terms of capitalised words after the first: in a question these are its subject's names."""
    words = re.findall(r"[^\W\d_][\w'’\-]*", question)
    return frozenset(t for w in words[1:] if w[0].isupper() for t in terms(w))


def _is_followup(question: str, qterms: list[str]) -> bool:
    words = set(raw_tokens(question))
    return bool(words & _FOLLOWUP_WORDS) or len(qterms) <= 2


def _quoted_in(answer: str, texts: list[str], rows: list[int]) -> set[int]:
    squeezed = re.sub(r"\s+", " ", answer)
    return {r for r in rows if texts[r] and texts[r][:60] in squeezed}
