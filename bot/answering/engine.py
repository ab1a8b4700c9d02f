"""The one object every surface talks to: ask questions, build the index, inspect it.

It holds the live snapshot and swaps it for a new one after a build; each ``ask`` takes one
reference at the start, so an answer always cites a single, consistent index version, and
questions keep being answered from the old index while a build runs. Thread-safe.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bot.answering.conversation import standalone
from bot.answering.extractive import ExtractiveAnswerer, refusal
from bot.answering.types import Answer, Answerer, Passage, Turn
from bot.config import Settings
from bot.knowledge import onnx_query
from bot.knowledge.build import build_index
from bot.knowledge.embed import Encoder
from bot.knowledge.report import ChangeReport
from bot.knowledge.search import Retrieval, Searcher
from bot.knowledge.store import IndexCorrupt, IndexMissing, IndexSnapshot, load_snapshot

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
MAX_HISTORY_TURNS = 6
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# Discord user/role/channel mentions and @everyone/@here: their ids are not words of the
# question, and as unknown terms they would push a good question into "the briefings don't say".
_MENTIONS = re.compile(r"<(?:@[!&]?|#)\d+>|(?<![\w.])@(?:everyone|here)\b")
# Chat markup around words ("**When** was _Umerov_ informed?", "> quote", "# heading") hides
# the question word the answerer types its answer by.
_MARKUP = re.compile(r"[*~`|]+|(?<!\w)_+|_+(?!\w)|^\s*(?:>+|#{1,3}|-#)\s+")


@dataclass(frozen=True)
class IndexStatus:
    version: str
    built_at: str
    documents: int
    sentences: int
    model: str
    dimension: int


@dataclass(frozen=True)
class DocumentInfo:
    name: str
    title: str
    sentences: int
    indexed_at: str


def clean_question(question: str) -> tuple[str, str]:
    """(usable question, "") or ("", a helpful message saying what is wrong with it)."""
    if not isinstance(question, str):
        return "", "Please send the question as text."
    text = _MARKUP.sub(" ", _MENTIONS.sub(" ", _INVISIBLE.sub("", question)))
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return "", "Please ask a question, for example: \"When was Umerov informed?\""
    if len(text) > MAX_QUESTION_CHARS:
        return "", (f"That question is {len(text):,} characters long; please keep it under "
                    f"{MAX_QUESTION_CHARS:,} and ask one thing at a time.")
    if not any(ch.isalnum() for ch in text):
        return "", "That question has no words in it; please ask in words."
    return text, ""


class Engine:
    def __init__(self, settings: Settings, encoder: Encoder | None = None, answerer: Answerer | None = None):
        self.settings = settings
        self.encoder = encoder or Encoder(settings.model)
        self.extractive = ExtractiveAnswerer()
        self._answerer = answerer
        self._state: tuple[IndexSnapshot, Searcher] | None = None
        self._load_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._build_done = threading.Condition()
        self._build_running = False
        self._last_report: ChangeReport | None = None
        if self.settings.answerer.strip().lower() != "extractive":
            self.answerer  # a misconfigured LLM answerer should stop start-up, not the first question

    # ---- answerer ---------------------------------------------------------------------
    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            if self.settings.answerer == "llm":
                from bot.answering.llm import make_answerer

                self._answerer = make_answerer(self.settings, fallback=self.extractive, embed=self.encoder.encode)
            else:
                self._answerer = self.extractive
        return self._answerer

    # ---- index lifecycle --------------------------------------------------------------
    def _current(self) -> tuple[IndexSnapshot, Searcher]:
        state = self._state
        if state is None:
            self.load_or_build()
            state = self._state
        return state

    def load_or_build(self, progress: bool = False, announce: Callable[[str], None] | None = None) -> ChangeReport | None:
        """Load the live index; build it when there is none or it is unusable (``announce`` hears
        why, before the build starts). Returns the build's report, or ``None`` when it loaded."""
        with self._load_lock:
            if self._state is not None:
                return None
            index_dir = Path(self.settings.index_dir)
            try:
                snap = load_snapshot(index_dir, model=self.encoder.name)
            except (IndexMissing, IndexCorrupt) as exc:
                log.warning("index not usable (%s); building it", exc)
                if announce:
                    announce(f"{exc}; building the index from {self.settings.documents_dir}/ ...")
                report = self.build(progress=progress)
                if self._state is None:
                    raise
                return report
            self._use_query_model()
            self._state = (snap, Searcher(snap, self.encoder))
            return None

    def _use_query_model(self) -> None:
        if self.encoder._query_model is None and onnx_query.is_current(self.encoder.name):
            self.encoder.use_query_model(onnx_query.export_dir(self.encoder.name))

    def has_index(self) -> bool:
        try:
            self._current()
            return True
        except (IndexMissing, IndexCorrupt):
            return False

    def build(self, rebuild: bool = False, progress: bool = False) -> ChangeReport:
        """Build or update; concurrent calls in this process share one build and its report."""
        with self._build_done:
            if self._build_running:
                while self._build_running:
                    self._build_done.wait()
                return self._last_report
            self._build_running = True
        try:
            live = self._state[0] if self._state is not None else None
            report, snap = build_index(self.settings, self.encoder, rebuild=rebuild, progress=progress, live=live)
            self._use_query_model()
            if snap is not None and (self._state is None or self._state[0] is not snap):
                self._state = (snap, Searcher(snap, self.encoder))
            self._last_report = report
            return report
        finally:
            with self._build_done:
                self._build_running = False
                self._build_done.notify_all()

    def add_document(self, filename: str, data: bytes, overwrite: bool = False) -> tuple[str, ChangeReport]:
        """Save an upload into documents/ and index it; raises ``UploadRefused`` with a reason."""
        from bot.ingest.uploads import UploadRefused, save_upload

        docs = Path(self.settings.documents_dir)
        previous = next((p for p in docs.glob("*") if p.name.lower() == filename.lower()), None) if docs.is_dir() else None
        backup = previous.read_bytes() if previous is not None and overwrite else None
        path = save_upload(docs, filename, data,
                           max_bytes=int(self.settings.upload_max_mb * 1024 * 1024), overwrite=overwrite)
        report = self.build()
        reason = next((r for name, r in report.failed if name == path.name), None)
        if reason is not None:
            # A file that can't be indexed doesn't stay to fail every later build.
            if backup is not None:
                path.write_bytes(backup)
            else:
                path.unlink(missing_ok=True)
            raise UploadRefused(f"{path.name} could not be indexed: {reason}")
        return path.name, report

    # ---- questions --------------------------------------------------------------------
    def retrieve(self, question: str, history: Sequence[Turn] = (), k: int = 5) -> Retrieval:
        _snap, searcher = self._current()
        return searcher.search(question, list(history)[-MAX_HISTORY_TURNS:], k=k)

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        started = time.perf_counter()
        answer_id = uuid.uuid4().hex[:12]
        text, problem = clean_question(question)
        if problem:
            return Answer(question=question if isinstance(question, str) else "", answer=problem,
                          abstained=True, error=problem, latency_ms=(time.perf_counter() - started) * 1000,
                          id=answer_id)
        snap, searcher = self._current()
        history = [t for t in history if isinstance(t, Turn)][-MAX_HISTORY_TURNS:]
        # A follow-up ("Who informed him?") is searched and answered as the question it stands for.
        understood = standalone(text, history)
        found = searcher.search(understood, history)
        closest = found.passages[0] if found.passages and snap.documents else None
        if found.supported and found.passages:
            answer = self.answerer.answer(understood, history, found.passages)
        else:
            answer = refusal(understood, closest, self.answerer.name)
        if answer.abstained and not answer.error and answer.closest is None:
            # One refusal everywhere, whoever refused, with the closest passage labelled as such.
            answer = _refused_as(answer, refusal(understood, closest, answer.answerer))
        answer.question = text
        answer.understood_as = understood if understood != text else ""
        answer.id = answer_id
        answer.index_version = snap.version
        answer.latency_ms = (time.perf_counter() - started) * 1000
        log.info("answer %s: %s, %d citations, %.0f ms, index %s", answer_id,
                 "abstained" if answer.abstained else "answered", len(answer.citations), answer.latency_ms, snap.version)
        return answer

    # ---- inspection -------------------------------------------------------------------
    def status(self) -> IndexStatus:
        snap, _ = self._current()
        return IndexStatus(snap.version, snap.built_at, len(snap.documents), len(snap.sentences), snap.model, snap.dimension)

    def sources(self) -> list[DocumentInfo]:
        snap, _ = self._current()
        return [DocumentInfo(d.name, d.title, d.sentences, d.indexed_at) for d in snap.documents]

    def context(self, sentence_id: str, radius: int = 2) -> list[Passage]:
        _snap, searcher = self._current()
        return searcher.context(sentence_id, radius)


def _refused_as(answer: Answer, refused: Answer) -> Answer:
    """``answer`` (an answerer's own refusal) with the one refusal text and closest passage."""
    answer.answer, answer.closest, answer.citations = refused.answer, refused.closest, []
    return answer
