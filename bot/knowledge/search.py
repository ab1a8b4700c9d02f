"""Hybrid sentence search: dense (FAISS) and keyword (BM25) candidates fused by reciprocal
rank, then every candidate sentence scored by a learned ranker that sees its heading, title
and neighbours as context, and the ranker's best few read again, with the question, by a
cross-encoder.

The ranker's probabilities feed a learned answerability model (bot/knowledge/rerank.py,
trained on public QA data by bench/train_ranker.py): whether the best sentence answers the
question at all. That decision is what lets the answerers say "the briefings don't say"
instead of quoting the nearest sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol, Sequence

import faiss
import numpy as np

from bot.knowledge.embed import Encoder
from bot.knowledge.passage import Passage
from bot.knowledge.cross_encoder import Span, candidate_text
from bot.knowledge.rerank import (FEATURES, RankerModel, asked_type, default_model, holds_type, question_features,
                                 rerank_features)
from bot.knowledge.store import IndexSnapshot
from bot.knowledge.terms import raw_tokens, terms


class PriorTurn(Protocol):
    """An earlier exchange (``bot.answering.conversation.Turn`` fits): search reads no more."""

    question: str
    answer: str

CANDIDATES = 40  # from each of dense and keyword search
RRF_K = 60
_FOLLOWUP_WORDS = {"that", "it", "this", "those", "these", "they", "them", "he", "she", "him", "her", "his",
                   "there", "then", "else", "other", "another", "also", "same", "its", "their"}


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]  # best first; each Passage.score is the ranker's P(answers)
    supported: bool  # whether passages[0] really answers the question (confidence >= threshold)
    confidence: float  # calibrated P(passages[0] answers the question)
    coverage: float
    dense: float


def _without_spans(found: Retrieval) -> Retrieval:
    """A retrieval read for the question joined to the last one: its sentences stand, but the
    short answers the cross-encoder read answer the pair ("When ...? Who ...?" gave a date for
    "who"), so the answerer finds the short answer for the question asked on its own."""
    return replace(found, passages=[replace(p, answer_span=None, answer_p=0.0) for p in found.passages])


class Searcher:
    """Searches one snapshot; cheap to create, so a new one comes with every index swap.

    Its caches are plain dicts on the instance, so dropping the Searcher frees the snapshot."""

    def __init__(self, snapshot: IndexSnapshot, encoder: Encoder, model: RankerModel | None = None):
        self.snap = snapshot
        self.encoder = encoder
        self._model = model
        self._n = len(snapshot.sentences)
        self._df: dict[str, int] = {}
        self._idf = self._document_frequencies()
        self._max_idf = math.log(1 + (self._n + 0.5) / 0.5) if self._n else 1.0
        self._row_cache: dict[int, frozenset[str]] = {}
        self._text_cache: dict[str, frozenset[str]] = {}
        # A single-query flat search is memory-bound: one thread is as fast, and OpenMP worker
        # threads spinning on busy cores made it 10-20x slower under load.
        faiss.omp_set_num_threads(1)

    @property
    def model(self) -> RankerModel:
        if self._model is None:
            self._model = default_model()
        return self._model

    def _document_frequencies(self) -> dict[str, float]:
        bm = self.snap.bm25
        if bm is None or self._n == 0:
            return {}
        indptr = bm.scores["indptr"]
        df = np.diff(indptr)
        n = self._n
        self._df = {tok: int(df[i]) for tok, i in bm.vocab_dict.items() if i < len(df)}
        return {tok: math.log(1 + (n - f + 0.5) / (f + 0.5)) for tok, f in self._df.items()}

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._max_idf)

    def frequency(self, word: str) -> int:
        """How many indexed sentences hold ``word``'s term (0 for a stopword or an unknown word)."""
        found = terms(word)
        return self._df.get(found[0], 0) if len(found) == 1 else 0

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

    def _row_terms(self, row: int) -> frozenset[str]:
        got = self._row_cache.get(row)
        if got is None:
            got = self._row_cache[row] = frozenset(terms(self.snap.sentences.texts[row]))
        return got

    def _text_terms(self, text: str) -> frozenset[str]:
        got = self._text_cache.get(text)
        if got is None:
            got = self._text_cache[text] = frozenset(terms(text))
        return got

    def _head_terms(self, row: int) -> frozenset[str]:
        title = self.snap.documents[int(self.snap.sentences.doc[row])].title
        return self._text_terms(self.snap.sentences.headings[row]) | self._text_terms(title)

    # ---- features ---------------------------------------------------------------------
    def candidates(self, question: str, qv: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
        """Candidate rows for ``question`` and their FEATURES matrix (one row per candidate);
        ``qv`` is the question's vector when the caller has already embedded it."""
        if self._n == 0:
            return [], np.zeros((0, len(FEATURES)))
        qterms = terms(question)
        if qv is None:
            qv = self.encoder.encode_query(question)
        lex = self._bm25_scores(qterms)
        dense_ids = self._dense(qv, CANDIDATES)
        lex_ids = self._top(lex, CANDIDATES)
        fused: dict[int, float] = {}
        for ranking in (dense_ids, lex_ids):
            for rank, row in enumerate(ranking):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        rows = sorted(fused, key=fused.get, reverse=True)[: 2 * CANDIDATES]
        if not rows:
            return [], np.zeros((0, len(FEATURES)))
        return rows, self._features(question, qterms, qv, rows, dense_ids, lex_ids, lex)

    def _features(self, question: str, qterms: list[str], qv: np.ndarray, rows: list[int],
                  dense_ids: list[int], lex_ids: list[int], lex: np.ndarray | None) -> np.ndarray:
        arr = np.asarray(rows)
        vecs = self.snap.vectors
        doc = self.snap.sentences.doc
        n = len(rows)
        prev = arr - 1
        nxt = arr + 1
        has_prev = (prev >= 0) & (doc[np.clip(prev, 0, self._n - 1)] == doc[arr])
        has_next = (nxt < self._n) & (doc[np.clip(nxt, 0, self._n - 1)] == doc[arr])
        table = self.snap.sentences.table
        if table is not None:
            # A table row reads on its own (its header is in it): the rows above and below are
            # other records, not context, so they lend it neither meaning nor terms.
            in_table = table > 0
            has_prev &= ~in_table[arr] & ~in_table[np.clip(prev, 0, self._n - 1)]
            has_next &= ~in_table[arr] & ~in_table[np.clip(nxt, 0, self._n - 1)]
        own = vecs[arr].astype(np.float64)
        pv = vecs[np.clip(prev, 0, self._n - 1)] * has_prev[:, None]
        nv = vecs[np.clip(nxt, 0, self._n - 1)] * has_next[:, None]
        window = own + pv + nv
        window /= np.linalg.norm(window, axis=1, keepdims=True) + 1e-9
        dense = own @ qv
        window_sim = window @ qv
        prev_dense = np.where(has_prev, pv @ qv, 0.0)
        lex_raw = lex[arr] if lex is not None else np.zeros(n)
        lex_top = float(lex_raw.max()) if n else 0.0
        dense_rank = {r: i for i, r in enumerate(dense_ids)}
        lex_rank = {r: i for i, r in enumerate(lex_ids)}
        uniq = list(dict.fromkeys(qterms))
        weights = {t: self.idf(t) for t in uniq}
        total = sum(weights.values()) or 1.0
        absent = sum(w for t, w in weights.items() if t not in self._idf) / total if uniq else 1.0
        kind = asked_type(question)
        texts = self.snap.sentences.texts
        x = np.zeros((n, len(FEATURES)))
        for i, row in enumerate(rows):
            sent = self._row_terms(row)
            head = self._head_terms(row)
            around = sent | head
            if has_prev[i]:
                around = around | self._row_terms(row - 1)
            if has_next[i]:
                around = around | self._row_terms(row + 1)
            c_sent = sum(w for t, w in weights.items() if t in sent) / total
            c_win = sum(w for t, w in weights.items() if t in around) / total
            c_head = sum(w for t, w in weights.items() if t in head) / total
            missing = max((w for t, w in weights.items() if t not in around), default=0.0)
            x[i, 6], x[i, 7], x[i, 8] = c_sent, c_win, c_head
            x[i, 17] = missing / self._max_idf
            x[i, 13] = 1.0 if holds_type(kind, texts[row]) else 0.0
            x[i, 15] = math.log1p(len(texts[row].split()))
            x[i, 10] = math.log1p(dense_rank.get(row, CANDIDATES))
            x[i, 11] = math.log1p(lex_rank.get(row, CANDIDATES))
        x[:, 0] = dense
        x[:, 1] = window_sim
        x[:, 2] = prev_dense
        x[:, 3] = dense - dense.max()
        x[:, 4] = lex_raw / lex_top if lex_top > 0 else 0.0
        x[:, 5] = np.log1p(lex_raw)
        x[:, 9] = x[:, 7] - x[:, 7].max()
        x[:, 12] = 1.0 if kind else 0.0
        x[:, 14] = absent
        x[:, 16] = math.log1p(len(uniq))
        return x

    # ---- search -----------------------------------------------------------------------
    def search(self, question: str, history: Sequence[PriorTurn] = (), k: int = 5) -> Retrieval:
        """Best sentences for ``question``. In a conversation, a question that leans on the last
        turn ("When did that call happen?", "and where?") is read together with the last
        question; a short one the briefings don't support on its own is also read with it."""
        if self._n == 0 or not terms(question) and not history:
            return self._ranked(question, k) if self._n else Retrieval([], False, 0.0, 0.0, 0.0)
        if not history:
            return self._ranked(question, k)
        linked_q = f"{history[-1].question} {question}"
        words = set(raw_tokens(question))
        if words & _FOLLOWUP_WORDS or not terms(question):
            return _without_spans(self._ranked(linked_q, k))
        alone = self._ranked(question, k)
        if alone.supported or len(terms(question)) > 2:
            return alone
        linked = self._ranked(linked_q, k)
        return _without_spans(linked) if linked.confidence > alone.confidence else alone

    def _ranked(self, question: str, k: int) -> Retrieval:
        rows, x = self.candidates(question)
        if not rows:
            return Retrieval([], False, 0.0, 0.0, 0.0)
        order, logits, ce, spans = self.rerank(question, rows, x)
        head = order[: len(ce)]
        span_of = {int(i): s for i, s in zip(head, spans, strict=True) if s is not None}
        probs = 1.0 / (1.0 + np.exp(-logits))
        confidence = float(self.model.answerable.proba(question_features(logits[head], x[head], ce)[None, :])[0])
        if not terms(question):
            confidence = 0.0
        passages: list[Passage] = []
        seen: set[str] = set()
        for i in order:
            text = self.snap.sentences.texts[rows[i]]
            if text in seen:  # the same sentence in two files: quote it once
                continue
            seen.add(text)
            passages.append(self.passage(rows[i], float(probs[i]), span_of.get(int(i))))
            if len(passages) >= k:
                break
        top = order[0]
        return Retrieval(passages, confidence >= self.model.threshold, round(confidence, 4),
                         float(x[top, 7]), float(x[top, 0]))

    def rerank(self, question: str, rows: list[int], x: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Span | None]]:
        """The final order of the candidates (indices into ``rows``), their final logits, and the
        cross-encoder logits and answer spans of the first ``len(ce)`` of that order (the ones it read).

        The ranker orders all candidates; the cross-encoder reads its best few, and the rerank
        model puts those in their final order. The rest keep the ranker's order below them, their
        logits capped under the reread ones' so that scores fall as the list goes down."""
        model = self.model
        logits = model.ranker.logit(x)
        order = np.argsort(-logits, kind="stable")
        head = order[: model.rerank_k]
        cross = model.cross_encoder
        ce, spans = cross.read(question, self.reread_texts([rows[i] for i in head], cross.context_words),
                               [self.snap.sentences.texts[rows[i]] for i in head])
        final = logits.copy()
        final[head] = model.rerank.logit(rerank_features(logits[head], ce))
        reread = np.argsort(-final[head], kind="stable")
        rest = order[len(head):]
        if len(rest):
            final[rest] = np.minimum(final[rest], final[head].min() - 1e-3)
        return np.concatenate([head[reread], rest]), final, ce[reread], [spans[i] for i in reread]

    def reread_texts(self, rows: Sequence[int], context_words: int = 0) -> list[str]:
        """What the cross-encoder reads for each row: its heading (else its document's title), the
        end of the sentence before it in the same document (for a model trained with context_words),
        and the sentence."""
        t = self.snap.sentences
        return [candidate_text(t.headings[r] or self.snap.documents[int(t.doc[r])].title, t.texts[r],
                               t.texts[r - 1] if context_words and r - 1 in self._neighbours(r) else "", context_words)
                for r in rows]

    def passage(self, row: int, score: float = 0.0, span: Span | None = None) -> Passage:
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
            location=t.location(row),
            score=round(float(score), 4),
            before=before,
            after=after,
            answer_span=None if span is None else (span.start, span.end),
            answer_p=0.0 if span is None else round(span.probability, 4),
        )

    def context(self, sentence_id: str, radius: int = 2) -> list[Passage]:
        row = self.snap.row_of.get(sentence_id)
        if row is None:
            return []
        doc = self.snap.sentences.doc
        rows = [r for r in range(row - radius, row + radius + 1) if 0 <= r < self._n and doc[r] == doc[row]]
        return [self.passage(r) for r in rows]
