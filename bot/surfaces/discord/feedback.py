"""What the bot answered, and what people thought of it.

Two local files next to ``settings.feedback_path``:
- the feedback itself, one JSON object per line (``feedback.jsonl``), readable with any editor
  or ``jq``: question, answer, citations, index version, user id, verdict, timestamp;
- ``<stem>-answers.sqlite3``: every answer the bot gave, keyed by answer id, so buttons keep
  working after a restart and a thread's earlier questions can be used as history.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bot.answering.types import Answer, Citation, Turn


@dataclass
class AnswerRecord:
    answer_id: str
    conversation: str
    user_id: int
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    index_version: str
    answerer: str
    created_at: float
    scope: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY,
    conversation TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    citations TEXT NOT NULL,
    index_version TEXT NOT NULL,
    answerer TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_conversation ON answers (conversation, created_at);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    answer_id TEXT NOT NULL
);
"""


class AnswerStore:
    def __init__(self, feedback_path: Path):
        self.feedback_path = Path(feedback_path)
        self.db_path = self.feedback_path.with_name(self.feedback_path.stem + "-answers.sqlite3")
        self.feedback_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        if "scope" not in columns:  # stores from before collections: their answers belong to no server
            self._db.execute("ALTER TABLE answers ADD COLUMN scope TEXT NOT NULL DEFAULT ''")
        self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, answer_id: str, conversation: str, user_id: int, answer: Answer, scope: str = "") -> None:
        """``scope`` is the server the answer was given in ("" for DMs); lookups from elsewhere see nothing."""
        cites = json.dumps([{**c.to_json(), "location": c.location, "heading": c.heading} for c in answer.citations])
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (answer_id, conversation, user_id, question, answer, abstained, "
                "citations, index_version, answerer, created_at, scope) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (answer_id, conversation, user_id, answer.question, answer.answer, int(answer.abstained),
                 cites, answer.index_version, answer.answerer, time.time(), scope),
            )
            self._db.commit()

    def purge(self, older_than_days: float, now: float | None = None) -> int:
        """Retention: forget answers (and their message links) older than ``older_than_days``."""
        if older_than_days <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - older_than_days * 86400
        with self._lock:
            removed = self._db.execute("DELETE FROM answers WHERE created_at < ?", (cutoff,)).rowcount
            self._db.execute("DELETE FROM messages WHERE answer_id NOT IN (SELECT answer_id FROM answers)")
            self._db.commit()
        return removed

    def asker(self, conversation: str) -> int | None:
        """Who started a conversation (the first question in a thread)."""
        with self._lock:
            row = self._db.execute("SELECT user_id FROM answers WHERE conversation=? ORDER BY created_at LIMIT 1",
                                   (conversation,)).fetchone()
        return int(row[0]) if row else None

    def set_conversation(self, answer_id: str, conversation: str) -> None:
        with self._lock:
            self._db.execute("UPDATE answers SET conversation=? WHERE answer_id=?", (conversation, answer_id))
            self._db.commit()

    def link_message(self, message_id: int, answer_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO messages VALUES (?,?)", (str(message_id), answer_id))
            self._db.commit()

    def by_message(self, message_id: int, scope: str | None = None) -> AnswerRecord | None:
        with self._lock:
            row = self._db.execute("SELECT answer_id FROM messages WHERE message_id=?", (str(message_id),)).fetchone()
        return self.get(row[0], scope) if row else None

    def get(self, answer_id: str, scope: str | None = None) -> AnswerRecord | None:
        """The answer, or None; with ``scope``, only an answer given in that server ("" = DMs)."""
        with self._lock:
            row = self._db.execute(_SELECT + " WHERE answer_id=?", (answer_id,)).fetchone()
        if row is None or (scope is not None and row[10] != scope):
            return None
        return _record(row)

    def history(self, conversation: str, limit: int = 6) -> list[Turn]:
        """The conversation's earlier exchanges, oldest first (errors are not part of it)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT question, answer FROM answers WHERE conversation=? ORDER BY created_at DESC LIMIT ?",
                (conversation, limit),
            ).fetchall()
        return [Turn(question=q, answer=a) for q, a in reversed(rows)]

    def record_feedback(self, answer_id: str, user_id: int, verdict: str, scope: str | None = None) -> dict | None:
        """Append one verdict ("helpful" / "not_helpful") with everything needed to judge it."""
        rec = self.get(answer_id, scope)
        if rec is None:
            return None
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "answer_id": answer_id,
            "user_id": str(user_id),
            "verdict": verdict,
            "question": rec.question,
            "answer": rec.answer,
            "abstained": rec.abstained,
            "citations": [c.to_json() for c in rec.citations],
            "index_version": rec.index_version,
            "answerer": rec.answerer,
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, open(self.feedback_path, "a", encoding="utf-8") as fh:
            fh.write(line)
        return entry


_SELECT = ("SELECT answer_id, conversation, user_id, question, answer, abstained, citations, index_version, "
           "answerer, created_at, scope FROM answers")


def _record(row) -> AnswerRecord:
    cites = [
        Citation(n=c["n"], document=c["document"], title=c["title"], sentence_id=c["sentence_id"], text=c["text"],
                 start=c["start"], end=c["end"], location=c.get("location", ""), heading=c.get("heading", ""))
        for c in json.loads(row[6])
    ]
    return AnswerRecord(answer_id=row[0], conversation=row[1], user_id=row[2], question=row[3], answer=row[4],
                        abstained=bool(row[5]), citations=cites, index_version=row[7], answerer=row[8],
                        created_at=row[9], scope=row[10])
