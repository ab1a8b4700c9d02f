"""Turn files in the documents folder into normalized text, refusing anything unsafe or unreadable.

Structured formats (HTML, Markdown, DOCX, PDF) keep what a reader sees: their real headings,
list items, tables (one line per row, read with its header), PDF pages. Each becomes a
``Block``: one line of the normalized text with its kind, so the segmenter never has to guess
headings from line shape. Plain text has no structure and keeps the guessing.

Every refusal is a ``DocumentError`` with a short ``reason`` so the index build can report
exactly why a file was skipped instead of failing as a whole.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import logging
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import ftfy

from bot.ingest.names import display_name  # noqa: F401  (re-exported for callers)

SUPPORTED_SUFFIXES = {".txt", ".md", ".html", ".htm", ".pdf", ".docx"}
TEXT_SUFFIXES = {".txt", ".md", ".html", ".htm"}

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 20 * MB
# Zip limits are checked from the central directory, before anything is decompressed.
MAX_UNZIPPED_BYTES = 100 * MB
MAX_COMPRESSION_RATIO = 100
MAX_ZIP_ENTRIES = 10_000
MAX_PDF_PAGES = 2_000
MAX_TEXT_CHARS = 20_000_000


class DocumentError(Exception):
    """A file that can't be indexed; ``reason`` is short enough to show to an admin as-is."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DocumentSkipped(DocumentError):
    """Not a document briefbot reads (unsupported type, symbolic link): reported as skipped, not failed."""


@dataclass(frozen=True)
class Block:
    """One line of a structured document's normalized text, as a reader sees it.

    ``kind`` is "heading" (``level`` 1-6), "paragraph", "item" (list item), "row" (a table
    row, written with its header), "caption" (a table caption) or "code" (one line of code)."""

    kind: str
    start: int  # offsets of the line in LoadedDocument.text
    end: int
    level: int = 0
    table: int = 0  # 1-based table number in the document, 0 outside tables
    row: int = 0  # 1-based data row in its table (the header row is not counted)


@dataclass(frozen=True)
class LoadedDocument:
    name: str  # path relative to the documents folder, posix style
    title: str
    text: str  # output of normalize_text; sentence offsets point into this
    content_hash: str  # sha256 of the raw bytes, so unchanged files can skip re-indexing
    blocks: tuple[Block, ...] = ()  # () for plain text: the segmenter guesses its headings
    page_starts: tuple[int, ...] = ()  # PDF: offset in text where page i+1 starts


# --------------------------------------------------------------------------- normalization

# Keep curly quotes: citations should look like the source, not like ftfy's ASCII guess.
_FTFY_CONFIG = ftfy.TextFixerConfig(uncurl_quotes=False)
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
# Invisible characters that break matching and search but carry no text.
_DROP = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Repair mojibake and whitespace so that every non-empty line is exactly one paragraph."""
    text = ftfy.fix_text(text, config=_FTFY_CONFIG)
    text = _LINE_BREAKS.sub("\n", text)
    text = _DROP.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def _one_line(text: str) -> str:
    return " ".join(normalize_text(text).split())


def _tidy_line(text: str) -> str:
    """``_one_line`` without the mojibake repair: for text repaired as a whole beforehand
    (ftfy costs ~100 µs a call, too much per table cell of a 100k-row page)."""
    text = unicodedata.normalize("NFC", _DROP.sub("", text))
    return " ".join(text.split())


# --------------------------------------------------------------------------- listing


def list_documents(folder: Path) -> list[Path]:
    """Every non-hidden file, including unsupported ones and symbolic links, so the build can
    report them as skipped. Linked folders are never entered (``os.walk`` without followlinks)."""
    folder = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for d in dirnames:
            if (base / d).is_symlink():  # os.walk lists links to folders as folders
                found.append(base / d)
        found.extend(base / f for f in filenames if not f.startswith("."))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def skip_reason(path: Path) -> str | None:
    """Why ``path`` is not a document to read at all, before a byte of it is opened."""
    path = Path(path)
    if path.is_symlink():
        return "symbolic link (not followed)"
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported type {display_name(suffix) or '(no extension)'}"
    if not path.is_file():
        return "not a regular file"
    return None




# --------------------------------------------------------------------------- sizes & titles


def human_size(n: float) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{int(n)} bytes"


def human_limit(n: float) -> str:
    """Limits read better without a trailing .0 ("20 MB limit")."""
    return human_size(n).replace(".0 ", " ")


_NON_DATE_DASH = re.compile(r"_|(?<!\d)-|-(?!\d)")


def title_from_filename(path: Path) -> str:
    """"briefing-us-missile-policy-2024-11.txt" -> "Briefing us missile policy 2024-11"."""
    title = _one_line(_NON_DATE_DASH.sub(" ", Path(path).stem))  # no control characters either
    return title[:1].upper() + title[1:]


# --------------------------------------------------------------------------- plain text


_CONTROL_BYTES = bytes([*range(0, 9), 11, *range(14, 32), 127])
_MAX_CONTROL_SHARE = 0.01
_MAX_CP1252_NON_ASCII_SHARE = 0.2


def decode_text(raw: bytes) -> str:
    """UTF-8 first; a BOM wins; cp1252 only when the result still looks like prose."""
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8")
        except UnicodeDecodeError:
            raise DocumentError("not valid UTF-8 text") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DocumentError("not valid UTF-16 text") from None
    controls = len(raw) - len(raw.translate(None, _CONTROL_BYTES))
    if b"\x00" in raw or controls > _MAX_CONTROL_SHARE * len(raw):
        raise DocumentError("binary file, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise DocumentError("not valid UTF-8 text") from None
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    if non_ascii > _MAX_CP1252_NON_ASCII_SHARE * len(text) or not any(ch.isalpha() for ch in text):
        raise DocumentError("not valid UTF-8 text")
    return text


# --------------------------------------------------------------------------- structured text


class _Lines:
    """Collects a structured document's lines and their blocks; offsets are exact by construction."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.pos = 0
        self.tables = 0
        self.page_starts: list[int] = []

    def add(self, kind: str, text: str, **extra) -> None:
        line = _tidy_line(text)
        if not line or not any(ch.isalnum() for ch in line) and kind != "code":
            return
        if self.parts:
            self.pos += 1  # the "\n" between lines
        self.blocks.append(Block(kind, self.pos, self.pos + len(line), **extra))
        self.parts.append(line)
        self.pos += len(line)

    def new_page(self) -> None:
        self.page_starts.append(self.pos + (1 if self.parts else 0))

    def table(self, rows: list[list[str]], header: list[str] | None, caption: str = "") -> None:
        """Each data row becomes one line that reads on its own: "Year: 2024 | Winner: ..."."""
        rows = [[_tidy_line(c) for c in r] for r in rows]
        rows = [r for r in rows if any(r)]
        if not rows and not caption:
            return
        self.tables += 1
        if caption:
            self.add("caption", caption, table=self.tables)
        header = [_tidy_line(h) for h in header] if header else None
        for n, cells in enumerate(rows, 1):
            self.add("row", row_text(cells, header), table=self.tables, row=n)

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def row_text(cells: list[str], header: list[str] | None) -> str:
    """A table row with its column names, skipping empty cells: "Year: 2024 | Time: 2:27:12"."""
    if header and len(header) == len(cells):
        out = [f"{h}: {c}" if h else c for h, c in zip(header, cells) if c]
    else:
        out = [c for c in cells if c]
    return " | ".join(out)


_NUMBER = re.compile(r"^[\d.,:%$€£+-]+$")


def _looks_like_header(rows: list[list[str]]) -> bool:
    """For tables that don't mark their header (DOCX, PDF): a first row of non-empty,
    non-numeric, distinct labels above at least one more row."""
    if len(rows) < 2:
        return False
    first = [_tidy_line(c) for c in rows[0]]
    return all(first) and not any(_NUMBER.match(c) for c in first) and len(set(first)) == len(first)


# --------------------------------------------------------------------------- HTML & Markdown

MAX_READABILITY_ELEMENTS = 5_000
MAX_HTML_DEPTH = 250  # libxml2 stops nesting at 256 levels; deeper pages would lose text silently
_HEADING_LEVEL = {f"h{n}": n for n in range(1, 7)}
_DROP_TAGS = {"script", "style", "noscript", "template", "svg", "iframe", "object", "head", "button", "select",
              "input", "textarea", "canvas", "math"}
# Page furniture rather than content; dropped before the main content is chosen.
_BOILERPLATE_TAGS = ["nav", "aside", "footer", "form", "dialog"]
_BLOCK_TAGS = {
    "address", "article", "blockquote", "caption", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "header", "hr", "li", "main", "ol", "p", "section", "summary", "ul",
    "tr", "td", "th", "tbody", "thead", "tfoot", "table", "body", "html", "center",
}


def _parse_html(markup: str):
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return None
    stack = [(root, 1)]
    while stack:  # iterative: deep pages cost time linear in their size
        el, depth = stack.pop()
        if depth > MAX_HTML_DEPTH:
            raise DocumentError(f"HTML nested too deeply (over {MAX_HTML_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in el)
    return root


def _html_title(root) -> str:
    for xpath in ("//meta[@property='og:title']/@content", "//meta[@name='title']/@content", "//title//text()"):
        found = _one_line(" ".join(root.xpath(xpath)))
        if found:
            return found
    return ""


def _main_content(root):
    """The part of a page a reader reads: an explicit <main> or single <article>, else the
    block readability-lxml scores as the content (see docs/ingest.md for the comparison)."""
    import lxml.html

    for el in root.xpath("|".join(f"//{t}" for t in _BOILERPLATE_TAGS)):
        el.drop_tree()
    for el in root.xpath("//header[not(.//h1|.//h2|.//h3|.//h4|.//h5|.//h6)]"):
        el.drop_tree()  # a site banner; an article's own header holds its heading
    for xpath in ("//main", "//article"):
        found = root.xpath(xpath)
        if len(found) == 1:
            return found[0]
    if sum(1 for _ in root.iter()) > MAX_READABILITY_ELEMENTS:
        return root  # readability's scoring grows faster than the page; a page this big is a document
    try:
        from readability import Document

        summary = Document(lxml.html.tostring(root, encoding="unicode")).summary(html_partial=True)
        chosen = lxml.html.fragment_fromstring(summary, create_parent="div")
    except Exception:  # readability gives up on odd pages; the whole body is still correct
        return root
    # readability's own output drops small tables and rewrites the markup; use it only to
    # find where the content is, and read that part of the original page.
    wanted = {" ".join(el.text_content().split()) for el in chosen.iter("p", "li", "td", "pre", *_HEADING_LEVEL)}
    wanted.discard("")
    hits = [el for el in root.iter("p", "li", "td", "pre", *_HEADING_LEVEL)
            if " ".join(el.text_content().split()) in wanted]
    if not hits:
        return root
    common = list(hits[0].iterancestors())[::-1] + [hits[0]]
    for el in hits[1:]:
        chain = set(el.iterancestors()) | {el}
        while common and common[-1] not in chain:
            common.pop()
    return common[-1] if common else root


def _walk_html(root, out: _Lines) -> str:
    """Blocks from an HTML tree, without recursion; returns the first h1's text."""
    first_h1 = ""
    buf: list[str] = []
    kinds = ["paragraph"]

    def flush(kind: str) -> None:
        if buf:
            out.add(kind, "".join(buf))
            buf.clear()

    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        el, closing = stack.pop()
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if closing:
            if tag in _BLOCK_TAGS:
                flush(kinds.pop())
            if el.tail and el is not root:
                buf.append(el.tail)
            continue
        tail = el.tail if el is not root else None
        if not tag or tag in _DROP_TAGS:  # comments, processing instructions, scripts
            if tail:
                buf.append(tail)
            continue
        if tag in _HEADING_LEVEL or tag in ("pre", "br", "hr") or tag == "table" and not _layout_table(el):
            flush(kinds[-1])
            if tag in _HEADING_LEVEL:
                heading = el.text_content()
                out.add("heading", heading, level=_HEADING_LEVEL[tag])
                if tag == "h1" and not first_h1:
                    first_h1 = _one_line(heading)
            elif tag == "table":
                _html_table(el, out)
            elif tag == "pre":
                for line in el.text_content().split("\n"):
                    out.add("code", line)
            if tail:
                buf.append(tail)
            continue
        if tag in _BLOCK_TAGS:
            flush(kinds[-1])
            kinds.append("item" if tag == "li" else kinds[-1])
        stack.append((el, True))
        if el.text:
            buf.append(el.text)
        stack.extend((child, False) for child in reversed(el))
    flush(kinds[-1])
    return first_h1


MAX_CELL_CHARS = 400


def _layout_table(table) -> bool:
    """A table used to lay out a page (old sites, e-mail newsletters) holds paragraphs,
    headings or other tables: its cells are read as text, not as rows of data."""
    if table.xpath(".//table|.//p|.//h1|.//h2|.//h3|.//h4|.//ul|.//ol|.//pre|.//blockquote"):
        return True
    return any(len(cell.text_content()) > MAX_CELL_CHARS for cell in table.iter("td", "th"))


def _html_table(table, out: _Lines) -> None:
    rows, header = [], None
    for tr in (tr for tr in table.iter("tr") if next(tr.iterancestors("table"), None) is table):
        cells = tr.xpath("./th|./td")
        texts = [c.text_content() for c in cells]
        if header is None and not rows and cells and all(c.tag == "th" for c in cells):
            header = texts
            continue
        rows.append(texts)
    caption = " ".join(c.text_content() for c in table.xpath("./caption"))
    if header is None and (table.xpath("./thead") and rows or _looks_like_header(rows)):
        header = rows.pop(0)
    out.table(rows, header, caption)


def html_document(markup: str, main_only: bool = True) -> tuple[_Lines, str]:
    lines = _Lines()
    root = _parse_html(markup)
    if root is None:
        return lines, ""
    title = _html_title(root)
    body = _main_content(root) if main_only else root
    first_h1 = _walk_html(body, lines)
    return lines, title or first_h1


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def markdown_document(source: str) -> tuple[_Lines, str]:
    """Render with a real CommonMark parser (tables on), then read the HTML's structure.

    YAML front matter is metadata, not prose; its ``title:`` wins over the first h1."""
    from markdown_it import MarkdownIt

    meta_title = ""
    if front := _FRONT_MATTER.match(source):
        source = source[front.end():]
        if found := _FRONT_MATTER_TITLE.search(front.group(1)):
            meta_title = _one_line(found.group(1).strip("\"'"))
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(source)
    lines, first_h1 = html_document(f"<html><body>{html}</body></html>", main_only=False)
    return lines, meta_title or first_h1


# --------------------------------------------------------------------------- DOCX

_STREAM_CHUNK = 1 << 20


def check_zip(path: Path) -> None:
    """Refuse zip bombs. The central directory is checked first, then every member is
    inflated as a stream, 1 MB at a time, against a byte budget: the directory's sizes are
    written by whoever made the file, and a member that lies about its size fails its CRC
    here instead of being inflated whole later."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_ENTRIES:
                raise DocumentError(f"too many files inside the DOCX ({len(infos)} > {MAX_ZIP_ENTRIES} limit)")
            total = sum(info.file_size for info in infos)
            if total > MAX_UNZIPPED_BYTES:
                raise DocumentError(f"expands to {human_size(total)} when unzipped (zip bomb?)")
            for info in infos:
                if info.file_size > MB and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                    ratio = info.file_size / max(info.compress_size, 1)
                    raise DocumentError(f"compresses {ratio:.0f}:1 in {info.filename} (zip bomb?)")
            if "word/document.xml" not in {info.filename for info in infos}:
                raise DocumentError("not a valid DOCX file (no word/document.xml)")
            budget = MAX_UNZIPPED_BYTES
            for info in infos:
                with zf.open(info) as member:
                    while chunk := member.read(_STREAM_CHUNK):
                        budget -= len(chunk)
                        if budget < 0:
                            raise DocumentError(f"expands to over {human_limit(MAX_UNZIPPED_BYTES)} when unzipped (zip bomb?)")
    except DocumentError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        reason = "not a zip archive" if isinstance(exc, zipfile.BadZipFile) and "CRC" not in str(exc) \
            and "Bad magic" not in str(exc) else "damaged zip archive"
        raise DocumentError(f"not a valid DOCX file ({reason})") from None
    except Exception as exc:  # zlib.error and friends from a damaged stream
        raise DocumentError(f"not a valid DOCX file (damaged zip archive: {type(exc).__name__})") from None


_DOCX_HEADING = re.compile(r"^(?:heading|überschrift|titre|título|kop)\s*(\d)$", re.IGNORECASE)


def _docx_document(path: Path) -> tuple[_Lines, str]:
    import docx
    from docx.table import Table

    check_zip(path)
    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises many types on malformed parts
        raise DocumentError(f"unreadable DOCX: {exc}") from None
    lines = _Lines()
    first_title = first_heading = ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = []
            for row in block.rows:
                seen, cells = set(), []
                for cell in row.cells:  # merged cells repeat; keep each once
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(_one_line(" ".join(p.text for p in cell.paragraphs)))
                rows.append(cells)
            header = rows.pop(0) if _looks_like_header(rows) else None
            lines.table(rows, header)
            continue
        style = block.style.name if block.style is not None else ""
        text = _one_line(block.text)  # DOCX text is not repaired as a whole: mojibake per paragraph
        if style == "Title" or (found := _DOCX_HEADING.match(style)):
            level = 1 if style == "Title" else int(found.group(1))
            lines.add("heading", text, level=level)
            if style == "Title" and not first_title:
                first_title = _one_line(text)
            elif not first_heading:
                first_heading = _one_line(text)
        elif "list" in style.lower() or block._p.pPr is not None and block._p.pPr.numPr is not None:
            lines.add("item", text)
        else:
            lines.add("paragraph", text)
    title = _one_line(document.core_properties.title or "") or first_title or first_heading
    return lines, title


# --------------------------------------------------------------------------- PDF

_TERMINAL = tuple('.!?:;"”’')
MAX_PDF_PAGE_CONTENT = 1 * 1024 * 1024  # a dense text page is ~50 KB of drawing commands
MAX_PDF_CONTENT = 64 * 1024 * 1024
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?[-–—(\[]?\s*\d+\s*(?:(?:of|/)\s*\d+)?\s*[-–—)\]]?$", re.IGNORECASE)
_HYPHENATED = re.compile(r"[A-Za-zÀ-ÿ]-$")


@contextlib.contextmanager
def _quiet(*names: str):
    """Keep the PDF libraries' own warnings ("incorrect startxref", "Could get FontBBox") out
    of the console and the build report: a readable file is reported by what it yields."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.propagate = False
        lg.setLevel(logging.CRITICAL)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, (propagate, level) in zip(loggers, saved):
            lg.propagate, lg.level = propagate, level


def _pdf_check(path: Path):
    """pypdf's cheap checks before any text is laid out; returns the metadata title."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if reader.is_encrypted and not reader.decrypt(""):
        raise DocumentError("encrypted PDF (password required)")
    pages = reader.pages
    if len(pages) > MAX_PDF_PAGES:
        raise DocumentError(f"too many pages ({len(pages)} > {MAX_PDF_PAGES} limit)")
    drawn = 0
    for number, page in enumerate(pages, 1):
        # Text extraction costs time per drawing command: a small file can hold pages of
        # millions of them. Measure the (decompressed) page program before running it.
        contents = page.get_contents()
        size = len(contents.get_data()) if contents is not None else 0
        drawn += size
        if size > MAX_PDF_PAGE_CONTENT or drawn > MAX_PDF_CONTENT:
            raise DocumentError(f"page {number} holds too much drawing content "
                                f"({human_size(size if size > MAX_PDF_PAGE_CONTENT else drawn)}); not indexed")
    metadata = reader.metadata
    return _one_line(str(metadata.title)) if metadata is not None and metadata.title else ""


def _pdf_pages(path: Path) -> list[list[tuple]]:
    """Per page, its content in reading order: ("line", text, size, x1, top, bottom) with
    ``top`` measured from the top of the page, and ("table", rows).

    Lines come from PDFium (pypdfium2: C, ~15 ms a page) with their position and font size;
    tables from pdfplumber's ruling-line detection (pure Python, ~0.5 s a page), asked only
    about pages that draw at least a few lines or boxes."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pages, total = [], 0
    plumber = None
    pdf = pdfium.PdfDocument(str(path))
    try:
        for number in range(len(pdf)):
            page = pdf[number]
            height = page.get_height()
            textpage = page.get_textpage()
            runs = []
            for i in range(textpage.count_rects()):
                left, bottom, right, top = textpage.get_rect(i)
                # PDFium marks a hyphen at the end of a line as \x02.
                text = textpage.get_text_bounded(left, bottom, right, top).replace("\x02", "-")
                index = textpage.get_index(left + 0.5, (bottom + top) / 2, 2, 2)
                size = pdfium_c.FPDFText_GetFontSize(textpage, index) if index is not None and index >= 0 else 0
                runs.append((height - top, height - bottom, left, right, text, size))
            items = [(line[4], line) for line in _pdf_lines(runs)]
            drawn = sum(1 for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH], max_depth=2))
            if drawn >= 4:
                if plumber is None:
                    import pdfplumber

                    plumber = pdfplumber.open(str(path))
                ppage = plumber.pages[number]
                for table in ppage.find_tables():
                    x0, t0, x1, b0 = table.bbox
                    items = [it for it in items if not (t0 - 1 <= (it[1][4] + it[1][5]) / 2 <= b0 + 1
                                                        and x0 - 1 <= it[1][6] <= x1 + 1)]
                    items.append((t0, ("table", table.extract())))
                ppage.close()
            total += sum(len(it[1][1]) for it in items if it[1][0] == "line")
            if total > MAX_TEXT_CHARS:
                raise DocumentError(f"too much text (over {MAX_TEXT_CHARS:,} characters)")
            items.sort(key=lambda it: it[0])
            pages.append([it[1][:6] if it[1][0] == "line" else it[1] for it in items])
    finally:
        pdf.close()
        if plumber is not None:
            plumber.close()
    return pages


def _pdf_lines(runs: list[tuple]) -> list[tuple]:
    """PDFium's text rectangles, joined into visual lines: ("line", text, size, x1, top, bottom, x0)."""
    lines: list[list] = []
    for top, bottom, left, right, text, size in sorted(runs, key=lambda r: ((r[0] + r[1]) / 2, r[2])):
        middle = (top + bottom) / 2
        line = lines[-1] if lines else None
        if line is not None and line[4] <= middle <= line[5]:
            gap = left - line[3]
            line[1] += ("" if line[1].endswith(" ") or text.startswith(" ") or gap < 1 else " ") + text
            line[2], line[3] = max(line[2], size), max(line[3], right)
            line[4], line[5] = min(line[4], top), max(line[5], bottom)
        else:
            lines.append(["line", text, size, right, top, bottom, left])
    return [tuple(line) for line in lines]


def _furniture(pages: list[list[tuple]]) -> set[tuple[int, int]]:
    """(page, item) positions of running headers and footers: the first or last two lines of a
    page whose text (digits masked) recurs on at least half of the pages, and bare page numbers."""
    drop: set[tuple[int, int]] = set()
    edges: dict[str, list[tuple[int, int]]] = {}
    for p, items in enumerate(pages):
        lines = [i for i, it in enumerate(items) if it[0] == "line"]
        for i in {*lines[:2], *lines[-2:]}:
            text = _one_line(items[i][1])
            if _PAGE_NUMBER.match(text):
                drop.add((p, i))
            edges.setdefault(_DIGITS.sub("#", text.lower()), []).append((p, i))
    if len(pages) >= 2:
        for spots in edges.values():
            if len({p for p, _ in spots}) >= max(2, len(pages) / 2):
                drop.update(spots)
    return drop


def _pdf_document(path: Path) -> tuple[_Lines, str]:
    try:
        with _quiet("pypdf", "pdfminer", "pdfplumber", "pypdfium2"):
            meta_title = _pdf_check(path)
            pages = _pdf_pages(path)
    except DocumentError:
        raise
    except Exception as exc:  # pypdf and pdfminer raise many types on malformed files
        raise DocumentError(f"unreadable PDF: {exc}") from None
    drop = _furniture(pages)
    sizes = sorted(it[2] for items in pages for it in items if it[0] == "line" and it[2])
    body = sizes[len(sizes) // 2] if sizes else 0
    lines = _Lines()
    para: list[str] = []  # visual lines of the paragraph being read
    last = None  # (size, x1, bottom) of the previous line
    widest = max((it[3] for items in pages for it in items if it[0] == "line"), default=0)
    first_heading = ""

    def flush():
        if para:
            lines.add("paragraph", " ".join(para))
            para.clear()

    for p, items in enumerate(pages):
        new_page = True
        for i, it in enumerate(items):
            if (p, i) in drop:
                continue
            if it[0] == "table":
                flush()
                if new_page:
                    lines.new_page()
                    new_page = False
                rows = [[c or "" for c in row] for row in it[1]]
                header = rows.pop(0) if _looks_like_header(rows) else None
                lines.table(rows, header)
                last = None
                continue
            _, text, size, x1, top, bottom = it
            text = _one_line(text)
            if not text:
                continue
            heading = body and size >= 1.15 * body and len(text) <= 120 and not text.endswith(_TERMINAL)
            if heading:
                flush()
                if new_page:
                    lines.new_page()
                    new_page = False
                lines.add("heading", text, level=1 if size >= 1.5 * body else 2)
                first_heading = first_heading or text
                last = None
                continue
            prev = para[-1] if para else ""
            gap = last is not None and not new_page and top - last[2] > 0.9 * max(size, 1)
            # A line continues the paragraph unless a blank space or a sentence end comes first.
            joins = bool(prev) and not gap and not prev.endswith(_TERMINAL) and (
                text[0].islower() or (last is not None and last[1] >= 0.7 * widest)
            )
            if new_page:
                if not joins:
                    flush()
                # The page starts where its first line lands in the text.
                lines.new_page()
                if joins:
                    lines.page_starts[-1] = lines.pos + (1 if lines.parts else 0) + len(" ".join(para)) + 1
                new_page = False
            if joins:
                if _HYPHENATED.search(prev) and text[0].islower():
                    para[-1] = prev[:-1] + text  # "hyphen-\nation" -> "hyphenation"
                else:
                    para.append(text)
            else:
                flush()
                para.append(text)
            last = (size, x1, bottom)
        if new_page:
            lines.new_page()
    flush()
    return lines, meta_title or first_heading


# --------------------------------------------------------------------------- entry point


def load_document(path: Path, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedDocument:
    """Load one file as normalized text; raises DocumentError with a human reason."""
    path, root = Path(path), Path(root)
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.name
    suffix = path.suffix.lower()
    if reason := skip_reason(path):
        raise DocumentSkipped(reason)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"unreadable: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise DocumentError(f"too large ({human_size(size)} > {human_limit(max_bytes)} limit)")
    if size == 0:
        raise DocumentError("empty")
    try:
        raw = _read_no_follow(path, max_bytes)
    except OSError as exc:
        raise DocumentError(f"unreadable: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:  # grew between stat and read
        raise DocumentError(f"too large ({human_size(len(raw))} > {human_limit(max_bytes)} limit)")

    lines: _Lines | None = None
    if suffix in TEXT_SUFFIXES:
        text, title = decode_text(raw), ""
        if suffix != ".txt":  # repaired once here; their lines are only tidied (_tidy_line)
            text = ftfy.fix_text(text, config=_FTFY_CONFIG)
        if suffix == ".md":
            lines, title = markdown_document(text)
        elif suffix in {".html", ".htm"}:
            lines, title = html_document(text)
    elif suffix == ".docx":
        lines, title = _docx_document(path)
    else:
        lines, title = _pdf_document(path)

    if lines is None:
        text, blocks, pages = normalize_text(text), (), ()
    else:  # each line was normalized as it was added
        text, blocks, pages = lines.text, tuple(lines.blocks), tuple(lines.page_starts)
    if not text:
        raise DocumentError("no text found")
    return LoadedDocument(
        name=name,
        title=title or title_from_filename(path),
        text=text,
        content_hash=hashlib.sha256(raw).hexdigest(),
        blocks=blocks,
        page_starts=pages,
    )


def _read_no_follow(path: Path, max_bytes: int) -> bytes:
    """Read at most ``max_bytes + 1`` bytes, refusing a symbolic link swapped in after listing."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise DocumentSkipped("symbolic link (not followed)") from None
        raise exc
    with os.fdopen(fd, "rb") as fh:
        return fh.read(max_bytes + 1)
