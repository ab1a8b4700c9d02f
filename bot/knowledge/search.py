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

import faiss
import numpy as np

from bot.answering.types import Passage, Turn
from bot.knowledge.embed import Encoder
from bot.knowledge.store import IndexSnapshot
from bot.knowledge.terms import raw_tokens, terms

CANDIDATES = 40  # from each of dense and keyword search
RRF_K = 60
# Ranking weights and the support rule were set on shared/eval/dev_briefing.jsonl and our own
# bench/data/extra_dev.jsonl, each with and without the BBC distractors indexed;
# `python bench/support_report.py` prints every question's support against SUPPORT.
W_DENSE, W_WINDOW, W_LEXICAL, W_COVER = 0.40, 0.20, 0.15, 0.25
# Support: dense similarity plus term coverage of the best sentence must reach SUPPORT,
# less ABSENT_PENALTY for each question term that occurs nowhere in the index ("price" in a
# corpus that never prices anything is the thing asked for, and it isn't there).
SUPPORT = 1.0
ABSENT_PENALTY = 0.15
# "What is the price of X?" asks for a price: a sentence about X without one doesn't answer it.
FOCUS_PENALTY = 0.5
# Words that answer a "why" or "what was the purpose" question without sharing its words.
_PURPOSE = re.compile(r"^why\b|\b(?:purpose|reason|aim|goal|intention|motive|rationale)\b", re.IGNORECASE)
_CUES = frozenset(terms("intended aimed goal purpose because reason due order designed wary fear worried arguing so that"))
_FRAME = frozenset(terms("purpose reason aim goal intention motive rationale"))
W_CUE = 0.06
CUE_SUPPORT = 0.2
KEY_PENALTY = 0.3
_FOLLOWUP_WORDS = {"that", "it", "this", "those", "these", "they", "them", "he", "she", "him", "her", "his",
                   "there", "then", "else", "other", "another", "also", "same", "its", "their"}
_ELSE_WORDS = {"else", "other", "another", "besides"}


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]  # best first; each Passage.score is its own support score
    supported: bool  # whether passages[0] really answers the question
    confidence: float  # support of the best passage, compared with SUPPORT
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
        # A single-query flat search is memory-bound: one thread is as fast, and OpenMP worker
        # threads spinning on busy cores made it 10-20x slower under load.
        faiss.omp_set_num_threads(1)
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

    @lru_cache(maxsize=4096)
    def _own_terms(self, row: int) -> frozenset[str]:
        return self._row_terms(row) | self._heading_terms(row)

    @lru_cache(maxsize=4096)
    def _own_prefixes(self, row: int) -> dict[str, frozenset[str]]:
        """The row's terms by their first four letters, so prefix matches look at a few, not all."""
        groups: dict[str, set[str]] = {}
        for term in self._own_terms(row):
            if len(term) >= 4:
                groups.setdefault(term[:4], set()).add(term)
        return {k: frozenset(v) for k, v in groups.items()}

    def _coverage(self, row: int, qterms: list[str], near: Sequence[int], names: frozenset[str] = frozenset()) -> float:
        """Share of the question's terms found in the sentence (or, for half, next to it),
        weighted by rarity, and double for names: the question's subject must be there."""
        if not qterms:
            return 0.0
        own = self._own_terms(row)
        stems = self._own_prefixes(row)
        around = frozenset().union(*(self._row_terms(r) for r in near)) if near else frozenset()
        got = total = 0.0
        for t in set(qterms):
            w = self.idf(t) * (2.0 if t in names else 1.0)
            total += w
            if t in own:
                got += w
            elif t in around:
                got += 0.5 * w
            elif len(t) >= 4 and _prefix_match(t, stems.get(t[:4], frozenset())):
                got += 0.75 * w
        return got / total if total else 0.0

    def _has(self, row: int, term: str, near: Sequence[int] = ()) -> bool:
        pool = self._row_terms(row) | self._heading_terms(row)
        for r in near:
            pool = pool | self._row_terms(r)
        return term in pool or _prefix_match(term, pool)

    # ---- search -----------------------------------------------------------------------
    def search(self, question: str, history: Sequence[Turn] = (), k: int = 5) -> Retrieval:
        """Best sentences for ``question``; in a conversation, read as a follow-up when it leans
        on the last turn ("When did that call happen?"), and when it is merely short, read
        both ways and keep the reading the briefings support better."""
        if self._n == 0:
            return Retrieval([], False, 0.0, 0.0, 0.0)
        qterms = terms(question)
        qv = self.encoder.encode_query(question)
        if not history:
            return self._search(question, qterms, qv, None, k)
        words = set(raw_tokens(question))
        if words & _FOLLOWUP_WORDS:
            return self._search(question, qterms, qv, history[-1], k)
        alone = self._search(question, qterms, qv, None, k)
        if len(qterms) > 2:
            return alone
        linked = self._search(question, qterms, qv, history[-1], k)
        return linked if linked.confidence > alone.confidence else alone

    def _search(self, question: str, qterms: list[str], qv: np.ndarray, previous: Turn | None, k: int) -> Retrieval:
        names = name_terms(question) | (frozenset(qterms) & self.snap.names)
        followup = previous is not None
        cues = _CUES if _PURPOSE.search(question) else frozenset()
        dense_q = qv
        ctx_terms: list[str] = []
        if followup:
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
        # "Who else ...?" after a "who" question looks for other names in the same evidence
        # (the answerer skips the name already given); after any other question, for other evidence.
        excluded = _quoted_in(previous.answer, self.snap.sentences.texts, rows) if (
            previous and _ELSE_WORDS & set(raw_tokens(question))
            and not previous.question.strip().lower().startswith("who")) else set()
        scored = []
        # In "what was the purpose of X", "purpose" frames the question; X is what must match.
        core = [t for t in qterms if t not in _FRAME] if cues else qterms
        cover_terms = core + ([t for t in ctx_terms if t not in core] if followup else [])
        for i, row in enumerate(rows):
            near = self._neighbours(row)
            window = vecs[[row, *near]].mean(axis=0)
            window_sim = float(window @ dense_q / (np.linalg.norm(window) or 1.0))
            cover = self._coverage(row, cover_terms, near, names)
            score = W_DENSE * float(dense[i]) + W_WINDOW * window_sim + W_LEXICAL * float(lex_norm[i]) + W_COVER * cover
            if cues and cues & self._row_terms(row):
                score += W_CUE
            if row in excluded:
                score -= 0.5
            scored.append((score, row, cover, float(dense[i]), float(own_dense[i])))
        scored.sort(reverse=True)
        absent = sum(1 for t in set(core) if t not in self._idf)
        focus = focus_terms(question)
        verb = who_verb(question)
        # The rarest term that isn't a name is what the question is about ("invade" in "Why
        # did Russia invade Ukraine?"); a sentence without it, or next to it, doesn't answer.
        # (Terms the index lacks altogether are ABSENT_PENALTY's business.)
        key = max((t for t in dict.fromkeys(core) if t not in names and t in self._idf), key=self.idf, default="")
        passages: list[Passage] = []
        seen_texts: set[str] = set()
        best = None
        for score, row, cover, dense_i, _own in scored:
            text = self.snap.sentences.texts[row]
            if text in seen_texts:  # the same sentence in two files: quote it once
                continue
            seen_texts.add(text)
            support = dense_i + cover - ABSENT_PENALTY * absent
            if focus and not all(self._has(row, t) for t in focus):
                support -= FOCUS_PENALTY
            if verb and not self._has(row, verb, self._neighbours(row)):
                support -= FOCUS_PENALTY
            cued = bool(cues and cues & self._row_terms(row))
            if cued:
                # A "why" is answered by a clause ("was intended to ..."), which rarely repeats
                # the question's words: a stated purpose or cause stands in for the missing ones.
                support += CUE_SUPPORT
            if key and not cued and not followup and not self._has(row, key, self._neighbours(row)):
                support -= KEY_PENALTY
            if not qterms:
                support = 0.0
            if best is None:
                best = (support, cover, dense_i)
            passages.append(self.passage(row, support))
            if len(passages) >= k:
                break
        # The best-ranked passage that supports an answer leads, even if a passage that doesn't
        # support one ranked above it: "nearest" is not "answers".
        passages.sort(key=lambda p: p.score < SUPPORT)
        lead = passages[0].score if passages else 0.0
        support, cover, dense_top = best
        if lead >= SUPPORT:
            support = lead
        return Retrieval(passages, support >= SUPPORT, round(support, 4), cover, dense_top)

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
            location=t.location(row),
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


_FOCUS = re.compile(
    r"^(?:what|who|which)(?:'s| is| was| are| were)(?: the| a| an)? ((?:[\w\-]+ ){0,2}?[\w\-]+?)(?: (?:of|for|in|at|on|to|by|from)\b|\?|$)",
    re.IGNORECASE,
)


def focus_terms(question: str) -> frozenset[str]:
    """The thing a "what is the X of ..." / "who is the X" question asks for, as terms."""
    m = _FOCUS.match(question.strip())
    if not m or _PURPOSE.search(m.group(1)):  # a purpose is stated in a clause, not a word
        return frozenset()
    return frozenset(terms(m.group(1)))


_WHO_VERB = re.compile(r"^who (?!(?:is|was|are|were|did|does|do|has|have|had|will|would|could|can|should|may|might|else)\b)([a-z]+)", re.IGNORECASE)


def who_verb(question: str) -> str:
    """The act asked about in "who won ...?": someone else doing something else is no answer."""
    m = _WHO_VERB.match(question.strip())
    found = terms(m.group(1)) if m else []
    return found[0] if found else ""


def _prefix_match(term: str, pool: frozenset[str]) -> bool:
    """"plead" meets "plea", "escal" meets "escalation": stems that differ only in their ending."""
    if len(term) < 4:
        return False
    head = term[:4]
    return any(len(other) >= 4 and other[:4] == head and (other.startswith(term) or term.startswith(other))
               for other in pool)


def name_terms(question: str) -> frozenset[str]:
    """Terms of capitalised words after the first: in a question these are its subject's names."""
    words = re.findall(r"[^\W\d_][\w'’\-]*", question)
    if not any(ch.islower() for ch in question):  # SHOUTED: capitals say nothing
        return frozenset()
    return frozenset(t for w in words[1:] if w[0].isupper() for t in terms(w))


def _quoted_in(answer: str, texts: list[str], rows: list[int]) -> set[int]:
    squeezed = re.sub(r"\s+", " ", answer)
    return {r for r in rows if texts[r] and texts[r][:60] in squeezed}
