"""What a build did, for people (CLI, Discord) and machines (JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.ingest.names import display_name


@dataclass
class ChangeReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (document, reason)
    # Not documents to index (unsupported type, symbolic link, duplicate of another file): not failures.
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (document, reason)
    index_version: str = ""
    seconds: float = 0.0
    sentences_embedded: int = 0  # new embeddings computed (cache misses)
    swapped: bool = False  # False when nothing changed and the live index was kept
    notes: list[str] = field(default_factory=list)  # e.g. "the old index was damaged: rebuilt"

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def to_json(self) -> dict:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": [{"document": d, "reason": r} for d, r in self.failed],
            "skipped": [{"document": d, "reason": r} for d, r in self.skipped],
            "index_version": self.index_version,
            "seconds": round(self.seconds, 3),
            "sentences_embedded": self.sentences_embedded,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        """One line per category that has entries, e.g. ``added (2): a.txt, b.md``."""
        out = []
        for label, names in (
            ("added", self.added),
            ("changed", self.changed),
            ("removed", self.removed),
            ("unchanged", self.unchanged),
        ):
            if names:
                out.append(f"{label} ({len(names)}): {_names(names)}")
        for name, reason in self.failed:
            out.append(f"failed: {display_name(name)}: {reason}")
        for name, reason in self.skipped:
            out.append(f"skipped: {display_name(name)}: {reason}")
        if not out:
            out.append("no documents found")
        return out

    def summary(self) -> str:
        head = f"index {self.index_version} ready in {self.seconds:.1f}s"
        if not self.has_changes and not self.failed:
            head += " (nothing changed)"
        return "\n".join([head, *self.notes, *self.lines()])


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(display_name(n) for n in names[:limit])
    return shown + (f", ... and {len(names) - limit} more" if len(names) > limit else "")
