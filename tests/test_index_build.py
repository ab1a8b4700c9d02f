"""Index builds on real files: stable ids, the change report, incremental embedding, and a
document that fails after it was indexed keeping its old version."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge.build import build_index
from bot.knowledge.store import load_snapshot
from conftest import BRIEFING_NAME, EXTRA_MD, EXTRA_NAME, assert_verbatim, tmp_leftovers, write_docs

MEMO = "memo.txt"
MEMO_TEXT = (
    "The quartermaster ordered 300 spare tyres for the depot in Lviv.\n"
    "Delivery of the tyres is expected before the first snowfall.\n"
)


def snapshot(settings, encoder):
    return load_snapshot(Path(settings.index_dir), model=encoder.name)


def doc_rows(snap, name: str) -> list[tuple[str, str]]:
    """(sentence id, text) of one document's sentences, in order."""
    num = snap.doc_by_name[name]
    t = snap.sentences
    return [(t.ids[i], t.texts[i]) for i in range(len(t)) if int(t.doc[i]) == num]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


# --------------------------------------------------------------------------- stable ids


def test_unchanged_documents_keep_ids_version_and_vectors(workspace, encoder):
    before = snapshot(workspace, encoder)
    report, snap = build_index(workspace, encoder)
    assert report.unchanged == [BRIEFING_NAME]
    assert (report.added, report.changed, report.removed, report.failed) == ([], [], [], [])
    assert report.sentences_embedded == 0
    assert report.swapped is False
    assert report.index_version == before.version == snap.version
    assert "(nothing changed)" in report.summary()
    assert snap.sentences.ids == before.sentences.ids


def test_rebuild_rereads_everything_but_keeps_ids_and_embeds_nothing(workspace, encoder):
    before = snapshot(workspace, encoder)
    report, _snap = build_index(workspace, encoder, rebuild=True)
    assert report.swapped is True
    assert report.sentences_embedded == 0  # every vector came from the embedding cache
    after = snapshot(workspace, encoder)
    assert after.sentences.ids == before.sentences.ids
    assert after.sentences.texts == before.sentences.texts
    assert (after.sentences.start == before.sentences.start).all()
    assert (after.sentences.end == before.sentences.end).all()
    assert after.version == report.index_version
    assert (after.vectors == before.vectors).all()


def test_a_changed_sentence_changes_only_its_own_id(workspace, encoder):
    before = doc_rows(snapshot(workspace, encoder), BRIEFING_NAME)
    edit(Path(workspace.documents_dir) / BRIEFING_NAME, "missiles on an arms depot", "missiles on an ammunition depot")
    report, snap = build_index(workspace, encoder)
    assert report.changed == [BRIEFING_NAME] and report.unchanged == []
    assert report.sentences_embedded == 1  # only the edited sentence; the rest are cache hits
    after = doc_rows(snap, BRIEFING_NAME)
    assert len(after) == len(before)
    differ = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(differ) == 1
    (old_id, old_text), (new_id, new_text) = differ[0]
    assert "arms depot" in old_text and "ammunition depot" in new_text
    # same document and place, different content hash
    assert old_id.rsplit(":", 1)[0] == new_id.rsplit(":", 1)[0]
    assert old_id != new_id


# --------------------------------------------------------------------------- change report


BINARY = bytes(range(256)) * 8
BIG_TEXT = "The big file repeats this sentence to be larger than the limit. " * 1200  # ~77 KB


def test_change_report_add_change_remove_unchanged_failed(workspace, encoder, make_engine):
    docs = Path(workspace.documents_dir)
    settings = workspace.with_(max_document_mb=0.05)  # 52 KB: the briefing fits, big.txt doesn't
    write_docs(docs, {
        EXTRA_NAME: EXTRA_MD,
        MEMO: MEMO_TEXT,
        "empty.txt": b"",
        "blob.txt": BINARY,
        "picture.png": b"\x89PNG\r\n\x1a\n" + BINARY,
        "big.txt": BIG_TEXT,
    }, briefing=False)

    first, snap = build_index(settings, encoder)
    assert first.added == [MEMO, EXTRA_NAME]  # sorted by name
    assert first.unchanged == [BRIEFING_NAME]
    assert first.changed == [] and first.removed == []
    failed = dict(first.failed)
    assert set(failed) == {"empty.txt", "blob.txt", "big.txt"}
    assert failed["empty.txt"] == "empty"
    assert failed["blob.txt"] == "binary file, not text"
    assert first.skipped == [("picture.png", "unsupported type .png")]  # not a failure
    assert failed["big.txt"].startswith("too large (") and "limit" in failed["big.txt"]
    extra_rows = doc_rows(snap, EXTRA_NAME)
    assert [t for _, t in extra_rows][0].startswith("The icebreaker Aurora delivered")
    assert len(extra_rows) == 7
    assert first.sentences_embedded == len(extra_rows) + len(doc_rows(snap, MEMO))
    assert [d.name for d in snap.documents] == [BRIEFING_NAME, MEMO, EXTRA_NAME]
    lines = first.lines()
    assert f"added (2): {MEMO}, {EXTRA_NAME}" in lines
    assert "failed: empty.txt: empty" in lines
    assert first.to_json()["failed"][0].keys() == {"document", "reason"}

    engine = make_engine(settings)
    assert "Lviv" in engine.ask("Where is the depot that ordered spare tyres?").answer

    # second round: change one sentence of the extra document, remove the memo
    edit(docs / EXTRA_NAME, "nine days in February", "eleven days in February")
    (docs / MEMO).unlink()
    second, snap2 = build_index(settings, encoder)
    assert second.changed == [EXTRA_NAME]
    assert second.removed == [MEMO]
    assert second.unchanged == [BRIEFING_NAME]
    assert second.added == []
    assert set(dict(second.failed)) == {"empty.txt", "blob.txt", "big.txt"} and len(second.skipped) == 1
    assert second.sentences_embedded == 1
    assert MEMO not in snap2.doc_by_name
    assert second.index_version == snap2.version != snap.version

    engine.build()  # picks up the new live version
    gone = engine.ask("How many spare tyres did the quartermaster order?")
    assert gone.abstained and not gone.citations
    storm = engine.ask("How long was the runway closed by the storm?")
    assert not storm.abstained and "eleven days" in storm.answer.replace("**", "")
    assert all(c.document == EXTRA_NAME for c in storm.citations)
    assert_verbatim(engine, storm)  # offsets point into the Markdown file's normalized text
    assert storm.citations[0].heading == "Weather"


@pytest.mark.parametrize("damage, reason", [
    (BINARY, "binary file, not text"),
    (b"", "empty"),
    (b"\x81\x8d\x8f\x90\x9d" * 8, "not valid UTF-8 text"),  # neither UTF-8 nor cp1252
    ("Fine words. " * 6000, "too large"),  # 72 KB > 0.05 MB
])
def test_document_that_fails_after_being_indexed_keeps_its_old_version(workspace, encoder, make_engine, damage, reason):
    docs = Path(workspace.documents_dir)
    settings = workspace.with_(max_document_mb=0.05)
    write_docs(docs, {EXTRA_NAME: EXTRA_MD}, briefing=False)
    _, before = build_index(settings, encoder)
    old_rows = doc_rows(before, EXTRA_NAME)

    write_docs(docs, {EXTRA_NAME: damage}, briefing=False)
    report, snap = build_index(settings, encoder)
    assert [name for name, _ in report.failed] == [EXTRA_NAME]
    assert dict(report.failed)[EXTRA_NAME].startswith(reason)
    assert f"{EXTRA_NAME}: kept the previously indexed version" in report.notes
    assert report.changed == [] and report.removed == []
    assert doc_rows(snap, EXTRA_NAME) == old_rows
    assert report.index_version == before.version

    answer = make_engine(settings).ask("Who signed for the fuel delivery?")
    assert answer.answer.startswith("Mira Lindqvist")
    assert answer.citations[0].document == EXTRA_NAME


def test_new_document_that_fails_is_not_indexed_and_the_rest_is(workspace, encoder):
    write_docs(Path(workspace.documents_dir), {"notes.docx": b"PK\x03\x04 not really a zip"}, briefing=False)
    report, snap = build_index(workspace, encoder)
    assert report.failed and report.failed[0][0] == "notes.docx"
    assert "DOCX" in report.failed[0][1]
    assert report.notes == []
    assert "notes.docx" not in snap.doc_by_name
    assert report.unchanged == [BRIEFING_NAME]


def test_hidden_files_are_ignored_and_subfolders_are_indexed(workspace, encoder):
    docs = Path(workspace.documents_dir)
    write_docs(docs, {".draft.txt": "A secret draft that must not be indexed.", f"arctic/{EXTRA_NAME}": EXTRA_MD},
               briefing=False)
    report, snap = build_index(workspace, encoder)
    assert report.added == [f"arctic/{EXTRA_NAME}"]
    assert ".draft.txt" not in snap.doc_by_name and not report.failed
    assert all(sid.startswith(("arctic/", BRIEFING_NAME)) for sid in snap.sentences.ids)


# --------------------------------------------------------------------------- versions on disk


def test_old_versions_are_pruned_and_the_live_one_kept(workspace, encoder, monkeypatch):
    import bot.knowledge.build as build_module

    monkeypatch.setattr(build_module, "STALE_GRACE_S", 0.0)  # no reader to wait for here
    idx = Path(workspace.index_dir)
    briefing = Path(workspace.documents_dir) / BRIEFING_NAME
    versions = []
    for word in ("first", "second", "third"):
        write_docs(Path(workspace.documents_dir), {"note.txt": f"This is the {word} note about the depot."},
                   briefing=False)
        report, _ = build_index(workspace, encoder)
        versions.append(report.index_version)
    assert len(set(versions)) == 3
    build_index(workspace, encoder, rebuild=True)  # prunes before it writes
    live = (idx / "CURRENT").read_text().strip()
    folders = sorted(p.name for p in idx.glob("v-*"))
    assert live in folders
    assert len(folders) <= 3
    assert tmp_leftovers(idx) == []
    assert briefing.is_file()


def test_a_recently_replaced_version_is_kept_for_readers_still_loading_it(workspace, encoder):
    """Another process may have read CURRENT just before a swap: its version must survive the
    next build's clean-up for the grace period, even when it is older than the newest two."""
    import os
    import time

    from bot.knowledge.store import remove_stale

    idx = Path(workspace.index_dir)
    folders = [load_snapshot(idx).path.name]
    for word in ("first", "second", "third"):
        write_docs(Path(workspace.documents_dir), {"note.txt": f"This is the {word} note about the depot."},
                   briefing=False)
        folders.append(build_index(workspace, encoder)[1].path.name)
    assert sorted(p.name for p in idx.glob("v-*")) == sorted(folders)  # the grace period kept them all
    assert remove_stale(idx, min_age_s=600) == []
    # once the versions that replaced them are older than the grace period, the old ones go
    for age, name in enumerate(reversed(folders)):
        stamp = time.time() - 3600 - age
        os.utime(idx / name, (stamp, stamp))
    removed = remove_stale(idx, min_age_s=600)
    assert sorted(removed) == sorted(folders[:2])
    assert sorted(p.name for p in idx.glob("v-*")) == sorted(folders[2:])
    assert load_snapshot(idx).path.name == folders[-1]
