"""The fidelity corpus (tests/data/fidelity/): ordinary team documents in every structured
format, checked for what a reader sees (headings, list items, table rows, pages, titles) and
answered through the real Engine with the right unit cited.

The DOCX and PDF are written by tests/data/make_fidelity.py; the HTML and Markdown by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.ingest.loaders import load_document
from bot.ingest.segment import segment

FIDELITY = Path(__file__).resolve().parent / "data" / "fidelity"
HTML, DOCX, PDF, MD = "harbour-marathon.html", "board-memo.docx", "harbour-report.pdf", "deploy-runbook.md"


def units(name: str):
    doc = load_document(FIDELITY / name, FIDELITY)
    sentences, headings = segment(doc.text, doc.blocks, doc.page_starts)
    for s in sentences:
        assert doc.text[s.start:s.end] == s.text  # offsets stay exact
    return doc, sentences, [h.text for h in headings]


def row_units(sentences):
    return {(s.table, s.row): s for s in sentences if s.table and s.row}


# --------------------------------------------------------------------------- loaders


def test_html_main_content_headings_and_table_rows():
    doc, sentences, headings = units(HTML)
    assert doc.title == "Harbour Marathon results"  # og:title, not the <title> with the site name
    assert headings == ["Harbour Marathon results", "Winners by year", "Course changes", "Water stations"]
    texts = [s.text for s in sentences]
    for boilerplate in ("All rights reserved", "Privacy", "Join the club", "Related races", "Harbour 10K"):
        assert not any(boilerplate in t for t in texts), boilerplate
    rows = row_units(sentences)
    assert rows[(1, 3)].text == "Year: 2024 | Women's winner: Mei Takahashi | Time: 2:27:12 | Men's winner: Samuel Kiprono"
    assert rows[(1, 3)].heading == "Winners by year"
    assert len(rows) == 3  # the header row is not a unit of its own
    assert "Year | Women's winner" not in doc.text
    items = [s for s in sentences if s.text.startswith("The start moved")]
    assert items and items[0].heading == "Course changes"


def test_docx_heading_styles_table_and_list():
    doc, sentences, headings = units(DOCX)
    assert doc.title == "Board memo: field operations 2025"  # core properties first
    assert headings == ["Field operations board memo", "Summary", "Decisions", "Risks", "Budget"]
    rows = row_units(sentences)
    assert rows[(1, 1)].text == "Decision: Hire 25 additional field technicians | Owner: Oliver Strand | Due: 30 June 2025"
    assert [r for r in rows] == [(1, 1), (1, 2), (1, 3)]
    # No table row or list item turns into a heading, and nothing after them is mis-sectioned.
    risks = [s for s in sentences if s.heading == "Risks"]
    assert [s.text for s in risks] == ["Hiring may be slowed by the regional labour shortage.",
                                       "The roofing contractor has not confirmed a start date."]
    assert [b.kind for b in doc.blocks if "labour shortage" in doc.text[b.start:b.end]] == ["item"]


def test_pdf_pages_running_header_footer_hyphenation_and_table():
    doc, sentences, headings = units(PDF)
    assert doc.title == "Northport Harbour annual report 2024"  # PDF metadata
    assert "Annual report 2024" not in doc.text and "Page 1 of" not in doc.text  # running header, footer
    assert "evacuation of the quay" in doc.text and "specialist workshop in Glasgow" in doc.text
    assert "evac-" not in doc.text
    assert headings == ["Harbour traffic", "Lighthouse restoration", "Fees for 2025", "Staff"]
    reopen = next(s for s in sentences if s.text.startswith("The lighthouse reopens"))
    assert (reopen.page, reopen.heading) == (2, "Lighthouse restoration")
    assert next(s for s in sentences if s.text.startswith("The harbour handled")).page == 1
    assert next(s for s in sentences if s.text.startswith("The authority employed")).page == 3
    rows = row_units(sentences)
    assert rows[(1, 2)].text == "Vessel type: Cargo ship | Berth fee: 640 euros | Pilotage: 310 euros"
    assert rows[(1, 2)].page == 2


def test_markdown_runbook_lists_code_and_table():
    doc, sentences, headings = units(MD)
    assert doc.title == "Deploy runbook: briefing service"  # front matter first
    assert headings == ["Deploying the briefing service", "Before you start", "Steps", "Rollback"]
    kinds = {doc.text[b.start:b.end]: b.kind for b in doc.blocks}
    assert kinds["./manage migrate --check"] == "code"
    assert kinds["Make sure nobody else is deploying."] == "item"
    code = next(s for s in sentences if s.text == "systemctl restart briefing-workers")
    assert code.heading == "Steps"  # a code line is a unit, never a heading
    rows = row_units(sentences)
    assert rows[(1, 2)].text == "Environment: production | Approver: Priya Nair | Window: weekdays 09:00 to 16:00"
    assert rows[(1, 2)].heading == "Rollback"


# --------------------------------------------------------------------------- answers


@pytest.fixture(scope="module")
def fidelity_engine(tmp_path_factory, encoder):
    from bot.answering.engine import Engine
    from bot.config import Settings

    root = tmp_path_factory.mktemp("fidelity")
    shutil.copytree(FIDELITY, root / "docs")
    engine = Engine(Settings(documents_dir=root / "docs", index_dir=root / "idx"), encoder=encoder)
    report = engine.build()
    assert sorted(report.added) == sorted([HTML, DOCX, PDF, MD]) and not report.failed, report.to_json()
    return engine


@pytest.mark.parametrize("question, document, starts, location", [
    ("Who was the women's winner in 2024?", HTML, "Year: 2024 | Women's winner: Mei Takahashi", "table 1, row 3"),
    ("Who is the owner of the decision to hire additional field technicians?", DOCX,
     "Decision: Hire 25 additional field technicians", "table 1, row 1"),
    ("When does the lighthouse reopen to visitors?", PDF, "The lighthouse reopens to visitors", "page 2"),
    ("Who approves production deploys?", MD, "Environment: production | Approver: Priya Nair", "table 1, row 2"),
])
def test_questions_are_answered_with_the_unit_cited(fidelity_engine, question, document, starts, location):
    answer = fidelity_engine.ask(question)
    assert not answer.abstained, answer.answer
    top = answer.citations[0]
    assert top.document == document and top.text.startswith(starts), (top.document, top.text)
    assert top.location.startswith(location)
    assert json.loads(json.dumps(answer.to_json()))["citations"][0]["location"] == top.location


def test_cli_shows_the_location(fidelity_engine):
    from bot.surfaces.cli import format_answer

    out = format_answer(fidelity_engine.ask("Who was the women's winner in 2024?"))
    assert "(harbour-marathon.html, section \u201cWinners by year\u201d, table 1, row 3)" in out


def test_discord_citation_shows_the_location(fidelity_engine):
    from bot.surfaces.discord.render import citation_heading

    answer = fidelity_engine.ask("When does the lighthouse reopen to visitors?")
    assert "page 2" in citation_heading(answer.citations[0])


# --------------------------------------------------------------------------- the build's report


def test_duplicate_newcomer_is_skipped_and_the_indexed_copy_stays(workspace, encoder, make_engine):
    from conftest import EXTRA_MD, write_docs

    from bot.knowledge.build import build_index

    docs = Path(workspace.documents_dir)
    write_docs(docs, {"library-renovation.md": EXTRA_MD}, briefing=False)
    first, _ = build_index(workspace, encoder)
    assert first.added == ["library-renovation.md"]
    # The copy sorts before the original ("library copy" < "library-renovation"): order must not decide.
    write_docs(docs, {"library copy (2).md": EXTRA_MD}, briefing=False)
    second, snap = build_index(workspace, encoder)
    assert second.skipped == [("library copy (2).md", "duplicate of library-renovation.md")]
    assert second.failed == [] and second.removed == [] and second.added == []
    assert "library-renovation.md" in snap.doc_by_name and "library copy (2).md" not in snap.doc_by_name
    assert "skipped: library copy (2).md: duplicate of library-renovation.md" in second.lines()
    answer = make_engine(workspace).ask("Who signed for the fuel delivery?")
    assert answer.citations[0].document == "library-renovation.md"

    # An indexed document that becomes a copy of another leaves the index, and the report says so.
    (docs / "library copy (2).md").unlink()
    write_docs(docs, {"zz-notes.md": "# Notes\n\nThe pantry was restocked on Monday."}, briefing=False)
    build_index(workspace, encoder)
    write_docs(docs, {"zz-notes.md": EXTRA_MD}, briefing=False)
    third, snap = build_index(workspace, encoder)
    assert third.skipped == [("zz-notes.md", "duplicate of library-renovation.md")]
    assert third.removed == ["zz-notes.md"] and "zz-notes.md" not in snap.doc_by_name


def test_unsupported_types_and_links_are_skipped_not_failed(workspace, encoder, tmp_path):
    from bot.knowledge.build import build_index

    docs = Path(workspace.documents_dir)
    (docs / "figures.csv").write_text("year,winner\n2024,Mei Takahashi\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("The vault code is 4417.")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "outside.txt").symlink_to(outside)
    evil = "evil\x1b[31m\nname.txt"
    (docs / evil).write_text("The ferry leaves at dawn.")
    report, snap = build_index(workspace, encoder)
    assert report.failed == []
    assert dict(report.skipped) == {
        "figures.csv": "unsupported type .csv",
        "outside.txt": "symbolic link (not followed)",
        "passwd.txt": "symbolic link (not followed)",
    }
    assert not any("vault code" in t or "root:" in t for t in snap.sentences.texts)
    assert report.added == [evil]
    shown = report.summary()
    assert "\x1b" not in shown and "evil\\x1b[31m\\nname.txt" in shown
    assert report.to_json()["skipped"][0] == {"document": "figures.csv", "reason": "unsupported type .csv"}


def test_answer_in_a_heading_scoped_section(fidelity_engine):
    answer = fidelity_engine.ask("How long does the rollback take?")
    top = answer.citations[0]
    assert (top.document, top.heading) == (MD, "Rollback")
    assert top.text == "The rollback takes about four minutes and needs no migration."
    assert top.location == "paragraph 11, sentence 2"


def test_format_location():
    from bot.knowledge.store import format_location

    assert format_location(page=3) == "page 3"
    assert format_location(table=1, row=4) == "table 1, row 4"
    assert format_location(page=2, table=1, row=2, paragraph=9, position=0) == "page 2, table 1, row 2"
    assert format_location(page=2, paragraph=6, position=0) == "page 2, paragraph 7, sentence 1"
    assert format_location(paragraph=10, position=1) == "paragraph 11, sentence 2"
    assert format_location(table=2) == "table 2"  # a caption


def test_meta_written_before_locations_reads_as_no_location(tmp_path):
    import sqlite3

    from bot.knowledge.store import _read_meta

    db = sqlite3.connect(tmp_path / "meta.sqlite")
    db.executescript("""
        CREATE TABLE documents (num INTEGER PRIMARY KEY, name TEXT, title TEXT, hash TEXT,
                                sentences INTEGER, indexed_at TEXT, first_row INTEGER);
        CREATE TABLE sentences (row INTEGER PRIMARY KEY, id TEXT, doc INTEGER, idx INTEGER,
                                start INTEGER, end INTEGER, paragraph INTEGER, position INTEGER,
                                heading TEXT, text TEXT);
        INSERT INTO documents VALUES (0, 'a.txt', 'A', 'h', 1, 'now', 0);
        INSERT INTO sentences VALUES (0, 'a.txt:0:x', 0, 0, 0, 5, 2, 0, '', 'Hello');
    """)
    db.commit()
    db.close()
    _docs, table = _read_meta(tmp_path / "meta.sqlite")
    assert (table.page.tolist(), table.table.tolist(), table.row.tolist()) == ([0], [0], [0])
    assert table.location(0) == "paragraph 3, sentence 1"
