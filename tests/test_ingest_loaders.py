"""Loaders on real files of every supported format, and every way a file can be refused."""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from pathlib import Path

import docx
import pytest
from pdf_bytes import serialize_pdf

from bot.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    DocumentError,
    DocumentSkipped,
    LoadedDocument,
    list_documents,
    load_document,
    display_name,
    normalize_text,
    skip_reason,
    title_from_filename,
)

PNG_HEADER = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


def write(root: Path, name: str, data: bytes | str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def refused(path: Path, root: Path, **kwargs) -> str:
    with pytest.raises(DocumentError) as info:
        load_document(path, root, **kwargs)
    assert str(info.value) == info.value.reason
    return info.value.reason


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A minimal valid one-page PDF with a Helvetica text stream, xref offsets computed."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if title is not None:
        objects.append(b"<< /Title (" + title.encode("latin-1") + b") >>")
    return serialize_pdf(objects, info=len(objects) if title is not None else None)


# --------------------------------------------------------------------------- formats


def test_txt_text_title_name_and_hash(tmp_path):
    raw = "Ukraine fired missiles.\r\n\r\n\r\n\r\nMr Biden   agreed.\t \n".encode()
    path = write(tmp_path, "sub/briefing-us-missile-policy-2024-11.txt", raw)
    doc = load_document(path, tmp_path)
    assert doc == LoadedDocument(
        name="sub/briefing-us-missile-policy-2024-11.txt",
        title="Briefing us missile policy 2024-11",
        text="Ukraine fired missiles.\n\nMr Biden agreed.",
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


def test_real_briefing_loads():
    root = Path(__file__).resolve().parents[1] / "documents"
    doc = load_document(root / "briefing-us-missile-policy-2024-11.txt", root)
    assert doc.title == "Briefing us missile policy 2024-11"
    assert doc.text.startswith("US president Joe Biden dropped his opposition")
    assert doc.text.endswith('out of the Russian territory," the aide said.')
    assert "\nStrengthening Kyiv's hand\n" in doc.text


def test_markdown_is_stripped_to_plain_lines(tmp_path):
    source = (
        "# Missile *policy* update\n\n"
        "Mr Biden **eased** limits, said [Reuters](https://reuters.com).\n"
        "A soft-wrapped line continues the paragraph.\n\n"
        "## British missiles\n\n"
        "- Storm Shadow\n"
        "* ATACMS\n\n"
        "```\nrange = 300 km\n```\n"
    )
    doc = load_document(write(tmp_path, "notes.md", source), tmp_path)
    assert doc.title == "Missile policy update"
    assert doc.text == (
        "Missile policy update\n"
        "Mr Biden eased limits, said Reuters. A soft-wrapped line continues the paragraph.\n"
        "British missiles\n"
        "Storm Shadow\n"
        "ATACMS\n"
        "range = 300 km"
    )
    kinds = [(b.kind, b.level, doc.text[b.start:b.end]) for b in doc.blocks]
    assert kinds == [
        ("heading", 1, "Missile policy update"),
        ("paragraph", 0, "Mr Biden eased limits, said Reuters. A soft-wrapped line continues the paragraph."),
        ("heading", 2, "British missiles"),
        ("item", 0, "Storm Shadow"),
        ("item", 0, "ATACMS"),
        ("code", 0, "range = 300 km"),
    ]


def test_markdown_without_heading_uses_file_name(tmp_path):
    doc = load_document(write(tmp_path, "kursk_troop-notes.md", "Just *text*."), tmp_path)
    assert (doc.title, doc.text) == ("Kursk troop notes", "Just text.")


def test_markdown_front_matter_is_metadata(tmp_path):
    source = '---\ntitle: "Kursk update"\ndate: 2024-11-20\n---\nTroops *arrived* in October.\n'
    doc = load_document(write(tmp_path, "kursk.md", source), tmp_path)
    assert (doc.title, doc.text) == ("Kursk update", "Troops arrived in October.")


def test_html_blocks_headings_and_dropped_tags(tmp_path):
    markup = """<!DOCTYPE html><html><head><title>Briefing: Kursk</title>
    <style>p { color: red }</style><script>var x = "secret";</script></head>
    <body><nav><a href="/">Home</a> | <a href="/news">News</a></nav>
    <h1>North Korean troops</h1>
    <p>Mr Blinken said <b>8,000</b> troops
       were in <a href="#">Kursk</a>.<br>They arrived in October.</p>
    <!-- a comment -->
    <div><h2>Reaction</h2><ul><li>Moscow vowed to respond.</li><li>Nato met.</li></ul></div>
    <table><tr><td>Range</td><td>300 km</td></tr></table>
    </body></html>"""
    doc = load_document(write(tmp_path, "page.html", markup), tmp_path)
    assert doc.title == "Briefing: Kursk"
    assert doc.text.split("\n") == [
        "North Korean troops",
        "Mr Blinken said 8,000 troops were in Kursk.",
        "They arrived in October.",
        "Reaction",
        "Moscow vowed to respond.",
        "Nato met.",
        "Range | 300 km",
    ]
    assert [b.kind for b in doc.blocks] == ["heading", "paragraph", "paragraph", "heading", "item", "item", "row"]


def test_html_title_falls_back_to_first_h1(tmp_path):
    doc = load_document(write(tmp_path, "x.htm", "<h1>Storm  Shadow</h1><p>Fired.</p>"), tmp_path)
    assert doc.title == "Storm Shadow"


def make_docx(path: Path, title: str = "") -> Path:
    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_heading("Strengthening Kyiv's hand", level=1)
    document.add_paragraph("The relaxation was conveyed to Ukraine. Lloyd J. Austin called.")
    document.add_paragraph("")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Range"
    table.rows[0].cells[1].text = "300 km"
    document.add_paragraph("A day later, Blinken informed Nato.")
    document.save(path)
    return path


def test_docx_paragraphs_tables_and_heading_title(tmp_path):
    doc = load_document(make_docx(tmp_path / "memo.docx"), tmp_path)
    assert doc.title == "Strengthening Kyiv's hand"
    assert doc.text.split("\n") == [
        "Strengthening Kyiv's hand",
        "The relaxation was conveyed to Ukraine. Lloyd J. Austin called.",
        "Range | 300 km",
        "A day later, Blinken informed Nato.",
    ]
    assert [(b.kind, b.table, b.row) for b in doc.blocks] == [
        ("heading", 0, 0), ("paragraph", 0, 0), ("row", 1, 1), ("paragraph", 0, 0)]


def test_docx_core_properties_title_wins(tmp_path):
    doc = load_document(make_docx(tmp_path / "memo.docx", title="Kyiv memo"), tmp_path)
    assert doc.title == "Kyiv memo"


def test_pdf_text_unwrapped_and_metadata_title(tmp_path):
    lines = [
        "Missile policy",
        "Mr. Biden eased limits on the use of ATACMS missiles by Ukraine.",
        "The decision came after North Korean troops were sent to the",
        "Kursk region of Russia in October.",
        "Officials said the change was conveyed on November 12th.",
    ]
    path = write(tmp_path, "report.pdf", make_pdf(lines, title="US missile policy"))
    doc = load_document(path, tmp_path)
    assert doc.title == "US missile policy"
    assert doc.text.split("\n") == [
        "Missile policy",
        "Mr. Biden eased limits on the use of ATACMS missiles by Ukraine.",
        "The decision came after North Korean troops were sent to the Kursk region of Russia in October.",
        "Officials said the change was conveyed on November 12th.",
    ]


def test_pdf_without_metadata_uses_file_name(tmp_path):
    doc = load_document(write(tmp_path, "dnipro_strike.pdf", make_pdf(["A missile hit Dnipro."])), tmp_path)
    assert (doc.title, doc.text) == ("Dnipro strike", "A missile hit Dnipro.")


# --------------------------------------------------------------------------- encodings


def test_mojibake_is_repaired(tmp_path):
    doc = load_document(write(tmp_path, "bbc.txt", "The deal is worth Â£5m, officials said."), tmp_path)
    assert doc.text == "The deal is worth £5m, officials said."


def test_cp1252_text_decodes(tmp_path):
    raw = "Café owners paid €5 for “quoted” goods.".encode("cp1252")
    doc = load_document(write(tmp_path, "old.txt", raw), tmp_path)
    assert doc.text == "Café owners paid €5 for “quoted” goods."


def test_utf8_bom_and_utf16_bom(tmp_path):
    utf8 = load_document(write(tmp_path, "a.txt", "\ufeffKyiv wins.".encode("utf-8")), tmp_path)
    utf16 = load_document(write(tmp_path, "b.txt", "Kyiv wins. Ünïcode.".encode("utf-16")), tmp_path)
    assert (utf8.text, utf16.text) == ("Kyiv wins.", "Kyiv wins. Ünïcode.")


def test_random_high_bytes_are_refused(tmp_path):
    raw = bytes(range(0x80, 0x100)) * 4  # no NUL or control bytes, not UTF-8, not prose
    assert refused(write(tmp_path, "noise.txt", raw), tmp_path) == "not valid UTF-8 text"


def test_random_bytes_are_refused(tmp_path):
    assert refused(write(tmp_path, "noise.md", os.urandom(4096)), tmp_path) == "binary file, not text"


def test_png_renamed_txt_is_binary(tmp_path):
    raw = PNG_HEADER + os.urandom(512)
    assert refused(write(tmp_path, "photo.txt", raw), tmp_path) == "binary file, not text"


def test_normalize_text_rules():
    raw = "  Zero\u200bwidth\u00a0and\x07bell \t tabs  \n\n\n\n  next\u2028line\r\nend  "
    assert normalize_text(raw) == "Zerowidth andbell tabs\n\nnext\nline\nend"
    assert normalize_text("e\u0301") == "\u00e9"  # NFC
    assert normalize_text("“curly” stays") == "“curly” stays"


# --------------------------------------------------------------------------- refusals


def test_empty_and_whitespace_only(tmp_path):
    assert refused(write(tmp_path, "empty.txt", b""), tmp_path) == "empty"
    assert refused(write(tmp_path, "blank.txt", " \n\n\t\n"), tmp_path) == "no text found"
    assert refused(write(tmp_path, "blank.html", "<html><script>x()</script></html>"), tmp_path) == "no text found"


def test_size_cap_checked_before_reading(tmp_path):
    path = write(tmp_path, "big.txt", "word " * 300)
    assert refused(path, tmp_path, max_bytes=1024) == "too large (1.5 KB > 1 KB limit)"
    assert load_document(path, tmp_path, max_bytes=2048).text.startswith("word word")


def test_unsupported_type(tmp_path):
    with pytest.raises(DocumentSkipped):
        load_document(write(tmp_path, "table.csv", "a,b\n1,2\n"), tmp_path)
    assert refused(write(tmp_path, "data.xyz", "hello"), tmp_path) == "unsupported type .xyz"
    assert refused(write(tmp_path, "Makefile", "hello"), tmp_path) == "unsupported type (no extension)"


def test_docx_zip_bomb_refused_without_extracting(tmp_path):
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b" " * (1 << 20)
            for _ in range(200):
                member.write(chunk)
    assert path.stat().st_size < 1024 * 1024
    started = time.perf_counter()
    assert refused(path, tmp_path) == "expands to 200.0 MB when unzipped (zip bomb?)"
    assert time.perf_counter() - started < 0.5


def test_docx_extreme_compression_ratio_refused(tmp_path):
    path = tmp_path / "dense.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", b" " * (8 << 20))
    reason = refused(path, tmp_path)
    assert reason.startswith("compresses ") and reason.endswith(":1 in word/document.xml (zip bomb?)")


def test_docx_that_is_not_a_zip(tmp_path):
    path = write(tmp_path, "fake.docx", "just some text")
    assert refused(path, tmp_path) == "not a valid DOCX file (not a zip archive)"


def test_docx_zip_without_document(tmp_path):
    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert refused(path, tmp_path) == "not a valid DOCX file (no word/document.xml)"


def test_broken_pdf(tmp_path):
    reason = refused(write(tmp_path, "broken.pdf", b"%PDF-1.4\nthis is not really a pdf"), tmp_path)
    assert reason.startswith("unreadable PDF: ") or reason == "no text found"


# --------------------------------------------------------------------------- listing & titles


def test_list_documents_recursive_sorted_skips_hidden(tmp_path):
    for name in ["b.txt", "a/z.md", "a/c.bin", ".hidden.txt", ".git/config.txt", "a/.cache/x.txt"]:
        write(tmp_path, name, "x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_documents(tmp_path)]
    assert found == ["a/c.bin", "a/z.md", "b.txt"]


@pytest.mark.parametrize(
    "name, title",
    [
        ("briefing-us-missile-policy-2024-11.txt", "Briefing us missile policy 2024-11"),
        ("kursk_troops__notes.md", "Kursk troops notes"),
        ("report-2024-11-20.pdf", "Report 2024-11-20"),
        ("x.txt", "X"),
    ],
)
def test_title_from_filename(name, title):
    assert title_from_filename(Path(name)) == title


def test_supported_suffixes():
    assert SUPPORTED_SUFFIXES == {".txt", ".md", ".html", ".htm", ".pdf", ".docx"}


# --------------------------------------------------------------------------- hostile input (issue 12)


def _max_rss_mb_of(code: str, timeout: float = 120) -> tuple[str, float]:
    """Run ``code`` in a fresh interpreter; its last stdout line and its peak RSS in MB."""
    import subprocess
    import sys

    # VmHWM belongs to this process's own memory map (ru_maxrss can carry the parent's peak over exec).
    probe = code + ("\nimport re; print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) // 1024)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    *out, rss = done.stdout.strip().splitlines()
    return (out[-1] if out else ""), float(rss)


def _lying_docx(path: Path, inflated: int, claimed: int) -> None:
    """A valid DOCX whose word/document.xml inflates to ``inflated`` bytes while the central
    directory claims ``claimed``: python-docx alone inflates the member whole."""
    template = path.with_suffix(".template.docx")
    docx.Document().save(template)
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            if info.filename != "word/document.xml":
                zf.writestr(info.filename, src.read(info))
        with zf.open("word/document.xml", "w", force_zip64=False) as member:
            member.write(b'<?xml version="1.0"?><w:document xmlns:w="x"><!--')
            chunk = b" " * (1 << 20)
            for _ in range(inflated >> 20):
                member.write(chunk)
            member.write(b"--></w:document>")
    template.unlink()
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b"word/document.xml"))
    data[entry + 24:entry + 28] = claimed.to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))


def test_docx_whose_directory_lies_is_refused_in_bounded_memory(tmp_path):
    path = tmp_path / "liar.docx"
    _lying_docx(path, inflated=400 << 20, claimed=300 << 10)
    with zipfile.ZipFile(path) as zf:  # the directory the loader is handed says it is small
        assert zf.getinfo("word/document.xml").file_size == 300 << 10
    started = time.perf_counter()
    out, rss = _max_rss_mb_of(
        "from pathlib import Path\nfrom bot.ingest.loaders import load_document, DocumentError\n"
        f"try:\n    load_document(Path({str(path)!r}), Path({str(tmp_path)!r}))\n"
        "except DocumentError as e:\n    print(e.reason)\n")
    assert out == "not a valid DOCX file (damaged zip archive)"
    assert rss < 400, f"peak RSS {rss} MB"  # inflating it whole would take over 400 MB
    assert time.perf_counter() - started < 60


def test_deeply_nested_html_is_refused_in_bounded_time(tmp_path):
    for depth in (20_000, 100_000):
        markup = "<html><body>" + "<div>" * depth + "deep text." + "</div>" * depth + "</body></html>"
        started = time.perf_counter()
        assert refused(write(tmp_path, f"deep{depth}.html", markup), tmp_path) == "HTML nested too deeply (over 250 levels)"
        assert time.perf_counter() - started < 10


def test_wide_html_loads_in_time_linear_in_its_size(tmp_path):
    def seconds(n: int) -> float:
        markup = "<html><body>" + "".join(f"<div><p>Paragraph {i} says something.</p></div>" for i in range(n)) + "</body></html>"
        path = write(tmp_path, f"wide{n}.html", markup)
        started = time.perf_counter()
        doc = load_document(path, tmp_path)
        assert doc.text.count("\n") == n - 1
        return time.perf_counter() - started

    small, large = seconds(10_000), seconds(50_000)
    assert large < 120 and large < 15 * small  # 5x the input: linear, not quadratic (25x)


def test_symlinks_are_listed_but_never_read(tmp_path):
    docs = tmp_path / "docs"
    write(docs, "real.txt", "The depot is in Lviv.")
    outside = write(tmp_path, "outside/secret.txt", "The launch code is 0000.")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    (docs / "secret.txt").symlink_to(outside)
    (docs / "inside.txt").symlink_to(docs / "real.txt")
    (docs / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    listed = [p.relative_to(docs).as_posix() for p in list_documents(docs)]
    assert listed == ["inside.txt", "linked-folder", "passwd.txt", "real.txt", "secret.txt"]  # never entered
    for name in ("passwd.txt", "secret.txt", "inside.txt", "linked-folder"):
        with pytest.raises(DocumentSkipped) as info:
            load_document(docs / name, docs)
        assert info.value.reason == "symbolic link (not followed)"
    assert skip_reason(docs / "real.txt") is None


def test_display_name_never_passes_control_characters():
    assert display_name("report\x1b[31m.txt") == "report\\x1b[31m.txt"
    assert display_name("two\nlines.pdf") == "two\\nlines.pdf"
    assert display_name("rtl\u202etxt.exe") == "rtl\\u202etxt.exe"
    assert display_name("Café notes (2).md") == "Café notes (2).md"
    assert "\x1b" not in title_from_filename(Path("evil\x1b[2J\nname.txt"))


def test_pypdf_warnings_do_not_leak(tmp_path, caplog, capfd):
    import logging

    data = make_pdf(["A missile hit Dnipro."])
    pointer = data.rindex(b"startxref\n") + len(b"startxref\n")
    data = data[:pointer] + b"99" + data[pointer:]  # a wrong xref offset: pypdf warns and recovers
    path = write(tmp_path, "damaged.pdf", data)
    with caplog.at_level(logging.DEBUG):
        doc = load_document(path, tmp_path)
    assert doc.text == "A missile hit Dnipro."
    assert not [r for r in caplog.records if r.name.startswith(("pypdf", "pdfminer"))]
    captured = capfd.readouterr()
    assert "startxref" not in captured.err + captured.out
    assert logging.getLogger("pypdf").propagate  # restored afterwards


def test_layout_table_is_read_as_text_not_rows(tmp_path):
    markup = ("<html><body><main><table><tr><td><h1>Newsletter</h1><p>The depot opens on Monday. Staff park behind it.</p>"
              "</td><td><p>Contact the front desk.</p></td></tr></table>"
              "<table><tr><th>Shift</th><th>Lead</th></tr><tr><td>Night</td><td>Ana Ruiz</td></tr></table></main></body></html>")
    doc = load_document(write(tmp_path, "news.html", markup), tmp_path)
    assert [(b.kind, doc.text[b.start:b.end]) for b in doc.blocks] == [
        ("heading", "Newsletter"),
        ("paragraph", "The depot opens on Monday. Staff park behind it."),
        ("paragraph", "Contact the front desk."),
        ("row", "Shift: Night | Lead: Ana Ruiz"),
    ]
    assert [b.table for b in doc.blocks if b.kind == "row"] == [1]  # only data tables are numbered
