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
from bot.answering.respell import respell
from bot.answering.types import Answer, Answerer, Passage, Turn
from bot.config import Settings
from bot.knowledge import onnx_query
from bot.knowledge.build import build_index
from bot.knowledge.embed import Encoder
from bot.knowledge.report import ChangeReport
from bot.knowledge.search import Retrieval, Searcher
from bot.knowledge.store import IndexCorrupt, IndexMissing, IndexSnapshot, current_version_dir, load_snapshot

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
        # The one build coordinator of this process (the CLI and every Discord command build
        # through it); re-entrant so add_document can hold it across save + build + restore.
        self._build_lock = threading.RLock()
        if self.settings.answerer != "extractive":
            self.answerer  # a misconfigured LLM answerer should stop start-up, not the first question

    # ---- answerer ---------------------------------------------------------------------
    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            if self.settings.answerer == "extractive":
                self._answerer = self.extractive
            else:
                from bot.answering.llm import make_answerer

                self._answerer = make_answerer(self.settings, fallback=self.extractive, embed=self.embed_claims)
        return self._answerer

    def embed_claims(self, texts: Sequence[str]):
        """Vectors for claim checks: the ONNX question encoder when there is one (no torch in the
        serving process), PyTorch only when the export is missing."""
        self._use_query_model()
        model = self.encoder._query_model
        if model is not None:
            return model.encode(list(texts))
        return self.encoder.encode(list(texts))

    def close(self) -> None:
        """Release what the answerer holds (the LLM worker pool); the engine can't answer after."""
        close = getattr(self._answerer, "close", None)
        if callable(close):
            close()

    # ---- index lifecycle --------------------------------------------------------------
    def _current(self) -> tuple[IndexSnapshot, Searcher]:
        self.follow_disk()
        state = self._state
        if state is None:
            self.load_or_build()
            state = self._state
        return state

    def load(self) -> IndexStatus:
        """Load the live index without building; raises ``IndexMissing``/``IndexCorrupt``."""
        with self._load_lock:
            if self._state is None:
                snap = load_snapshot(Path(self.settings.index_dir), model=self.encoder.name)
                self._use_query_model()
                self._state = (snap, Searcher(snap, self.encoder))
        return self.status()

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
                    if isinstance(exc, IndexMissing) and not (report.added or report.changed or report.unchanged):
                        raise IndexMissing(f"no documents could be indexed from {self.settings.documents_dir}/; put "
                                           "briefings (.txt, .md, .html, .pdf, .docx) there and run: briefbot index") from None
                    raise
                return report
            self._use_query_model()
            self._state = (snap, Searcher(snap, self.encoder))
            return None

    _checked_at = 0.0

    def follow_disk(self) -> bool:
        """Swap in a version another process (``briefbot index``) made live, without a restart.

        Cheap: at most one read of the small ``CURRENT`` pointer every ``index_check_seconds``;
        a version that fails to load is logged and the current one keeps answering."""
        state, now = self._state, time.monotonic()
        if state is None or now - self._checked_at < self.settings.index_check_seconds:
            return False
        self._checked_at = now
        try:
            folder = current_version_dir(Path(self.settings.index_dir))
        except (IndexMissing, IndexCorrupt):
            return False
        if state[0].path is None or folder.name == Path(state[0].path).name:
            return False
        with self._load_lock:
            if self._state is not state:
                return False  # a build in this process swapped meanwhile
            try:
                snap = load_snapshot(Path(self.settings.index_dir), model=self.encoder.name)
            except (IndexMissing, IndexCorrupt, OSError) as exc:
                log.warning("a newer index version is not loadable yet (%s); still answering from %s", exc, state[0].version)
                return False
            self._state = (snap, Searcher(snap, self.encoder))
        log.info("index version %s picked up from disk (was %s)", snap.version, state[0].version)
        return True

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
        """Build or update, and return this call's own report.

        Builds in this process run one at a time: a caller arriving while one runs waits for it,
        then runs its own incremental build (cheap: only what changed since is read), so it
        always gets a true report for the folder as it was when its build started, its own
        ``rebuild`` is honoured, and a file saved before the call is always looked at. Other
        processes are kept out by the file lock in ``build_index``."""
        with self._build_lock:
            live = self._state[0] if self._state is not None else None
            report, snap = build_index(self.settings, self.encoder, rebuild=rebuild, progress=progress, live=live)
            self._use_query_model()
            if snap is not None and (self._state is None or self._state[0] is not snap):
                self._state = (snap, Searcher(snap, self.encoder))
            return report

    def add_document(self, filename: str, data: bytes, overwrite: bool = False) -> tuple[str, ChangeReport]:
        """Save an upload into documents/ and index it; raises ``UploadRefused`` with a reason.

        Save, build and (on failure) restore happen under the build coordinator, so no other
        build in this process sees the upload half-done, and the returned report is the build
        that read the saved file: the document is in the live index when this returns."""
        from bot.ingest.uploads import UploadRefused, existing_document, save_upload

        docs = Path(self.settings.documents_dir)
        with self._build_lock:
            previous = existing_document(docs, filename)
            backup = previous.read_bytes() if previous is not None and overwrite else None
            path = save_upload(docs, filename, data,
                               max_bytes=int(self.settings.upload_max_mb * 1024 * 1024), overwrite=overwrite)
            try:
                report = self.build()
            except BaseException:
                _restore(path, backup)
                raise
            reason = next((r for name, r in [*report.failed, *report.skipped] if name == path.name), None)
            if reason is None and self._state is not None and path.name not in self._state[0].doc_by_name:
                reason = "it was not found in the new index"
            if reason is not None:
                # A file that can't be indexed doesn't stay to fail every later build; the
                # original (if this was an overwrite) comes back, and is indexed again.
                _restore(path, backup)
                if backup is not None:
                    self.build()
                raise UploadRefused(f"{path.name} could not be indexed: {reason}")
            return path.name, report

    # ---- questions --------------------------------------------------------------------
    def retrieve(self, question: str, history: Sequence[Turn] = (), k: int = 5) -> Retrieval:
        _snap, searcher = self._current()
        return searcher.search(respell(question, searcher.frequency), list(history)[-MAX_HISTORY_TURNS:], k=k)

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
        # A follow-up ("Who informed him?") is searched and answered as the question it stands
        # for, with the slips of chat typing mended first ("wen was umerov informd").
        understood = standalone(respell(text, searcher.frequency), history)
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
        # shown when the bot read something else, not for a question mark it added
        answer.understood_as = understood if understood.rstrip("?").rstrip() != text.rstrip("?").rstrip() else ""
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


def _restore(path: Path, backup: bytes | None) -> None:
    if backup is not None:
        tmp = path.with_name(f".restore-{path.name}")
        tmp.write_bytes(backup)
        tmp.replace(path)
    else:
        path.unlink(missing_ok=True)



def _refused_as(answer: Answer, refused: Answer) -> Answer:
    """``answer`` (an answerer's own refusal) with the one refusal text and closest passage."""
    answer.answer, answer.closest, answer.citations = refused.answer, refused.closest, []
    return answer
