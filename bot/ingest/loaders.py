"""Turn files in the documents folder into normalized text, refusing anything unsafe or unreadable.

Every refusal is a ``DocumentError`` with a short ``reason`` so the index build can report
exactly why a file was skipped instead of failing as a whole.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import ftfy

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


@dataclass(frozen=True)
class LoadedDocument:
    name: str  # path relative to the documents folder, posix style
    title: str
    text: str  # output of normalize_text; sentence offsets point into this
    content_hash: str  # sha256 of the raw bytes, so unchanged files can skip re-indexing


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


# --------------------------------------------------------------------------- listing


def list_documents(folder: Path) -> list[Path]:
    """Every non-hidden file, including unsupported ones, so the build can report them as failed."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


# --------------------------------------------------------------------------- sizes & titles


def _size(n: float) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{int(n)} bytes"


def _limit(n: float) -> str:
    """Limits read better without a trailing .0 ("20 MB limit")."""
    return _size(n).replace(".0 ", " ")


_NON_DATE_DASH = re.compile(r"_|(?<!\d)-|-(?!\d)")


def title_from_filename(path: Path) -> str:
    """"briefing-us-missile-policy-2024-11.txt" -> "Briefing us missile policy 2024-11"."""
    title = " ".join(_NON_DATE_DASH.sub(" ", Path(path).stem).split())
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


# --------------------------------------------------------------------------- HTML & Markdown

_DROP_TAGS = ["script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "head"]
_BLOCK_TAGS = [
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "tbody",
    "thead", "tfoot", "tr", "ul",
]
_CELL_TAGS = ["td", "th"]


def html_to_text(markup: str) -> tuple[str, str]:
    """Return (text, title): one line per block so paragraphs and headings survive as lines."""
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, ProcessingInstruction

    soup = BeautifulSoup(markup, "lxml")
    title = _one_line(soup.title.get_text(" ")) if soup.title else ""
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    for string in soup.find_all(string=True):
        if isinstance(string, (Comment, Declaration, Doctype, ProcessingInstruction)):
            string.extract()
        elif string.find_parent("pre") is None and re.search(r"\s", string):
            # Source line wraps inside a paragraph are not paragraph breaks.
            string.replace_with(re.sub(r"\s+", " ", string))
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for tag in soup.find_all(_CELL_TAGS):
        tag.insert_after(" ")
    if not title and (h1 := soup.find("h1")):
        title = _one_line(h1.get_text())
    return soup.get_text(), title


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def markdown_to_text(source: str) -> tuple[str, str]:
    """Render with a real CommonMark parser, then reuse the HTML path; the title is the first h1.

    YAML front matter is metadata, not prose; its ``title:`` is used when there is no h1."""
    from markdown_it import MarkdownIt

    meta_title = ""
    if front := _FRONT_MATTER.match(source):
        source = source[front.end():]
        if found := _FRONT_MATTER_TITLE.search(front.group(1)):
            meta_title = _one_line(found.group(1).strip("\"'"))
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(source)
    text, title = html_to_text(html)
    return text, title or meta_title


# --------------------------------------------------------------------------- DOCX


def check_zip(path: Path) -> None:
    """Refuse zip bombs from the central directory alone: nothing is decompressed here."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DocumentError("not a valid DOCX file (not a zip archive)") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise DocumentError(f"too many files inside the DOCX ({len(infos)} > {MAX_ZIP_ENTRIES} limit)")
    total = sum(info.file_size for info in infos)
    if total > MAX_UNZIPPED_BYTES:
        raise DocumentError(f"expands to {_size(total)} when unzipped (zip bomb?)")
    for info in infos:
        if info.file_size > MB and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise DocumentError(f"compresses {ratio:.0f}:1 in {info.filename} (zip bomb?)")
    if "word/document.xml" not in {info.filename for info in infos}:
        raise DocumentError("not a valid DOCX file (no word/document.xml)")


def _docx_to_text(path: Path) -> tuple[str, str]:
    import docx
    from docx.table import Table

    check_zip(path)
    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises many types on malformed parts
        raise DocumentError(f"unreadable DOCX: {exc}") from None
    lines: list[str] = []
    first_heading = ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                seen, cells = set(), []
                for cell in row.cells:  # merged cells repeat; keep each once
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(" ".join(p.text for p in cell.paragraphs))
                lines.append(" ".join(cells))
            continue
        style = block.style.name if block.style is not None else ""
        if not first_heading and (style.startswith("Heading") or style == "Title") and block.text.strip():
            first_heading = _one_line(block.text)
        lines.append(block.text)
    title = _one_line(document.core_properties.title or "") or first_heading
    return "\n".join(lines), title


# --------------------------------------------------------------------------- PDF

_TERMINAL = tuple('.!?:;"”’')


def _unwrap_pdf_page(text: str) -> str:
    """PDF extraction gives visual lines; rejoin lines that continue a sentence."""
    lines = [line.strip() for line in text.split("\n")]
    widest = max((len(line) for line in lines), default=0)
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        if (
            prev
            and line
            and not prev.endswith(_TERMINAL)
            and (line[0].islower() or len(prev) >= 0.7 * widest)
        ):
            out[-1] = prev + " " + line
        else:
            out.append(line)
    return "\n".join(out)


MAX_PDF_PAGE_CONTENT = 1 * 1024 * 1024  # a dense text page is ~50 KB of drawing commands
MAX_PDF_CONTENT = 64 * 1024 * 1024


def _pdf_to_text(path: Path) -> tuple[str, str]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("encrypted PDF (password required)")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise DocumentError(f"too many pages ({len(pages)} > {MAX_PDF_PAGES} limit)")
        texts, total, drawn = [], 0, 0
        for number, page in enumerate(pages, 1):
            # Text extraction costs time per drawing command: a small file can hold pages of
            # millions of them. Measure the (decompressed) page program before running it.
            contents = page.get_contents()
            size = len(contents.get_data()) if contents is not None else 0
            drawn += size
            if size > MAX_PDF_PAGE_CONTENT or drawn > MAX_PDF_CONTENT:
                raise DocumentError(f"page {number} holds too much drawing content "
                                    f"({_size(size if size > MAX_PDF_PAGE_CONTENT else drawn)}); not indexed")
            text = page.extract_text() or ""
            total += len(text)
            if total > MAX_TEXT_CHARS:
                raise DocumentError(f"too much text (over {MAX_TEXT_CHARS:,} characters)")
            texts.append(_unwrap_pdf_page(text))
        metadata = reader.metadata
        title = _one_line(str(metadata.title)) if metadata is not None and metadata.title else ""
    except DocumentError:
        raise
    except Exception as exc:  # pypdf raises many types on malformed files
        raise DocumentError(f"unreadable PDF: {exc}") from None
    return "\n\n".join(texts), title


# --------------------------------------------------------------------------- entry point


def load_document(path: Path, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedDocument:
    """Load one file as normalized text; raises DocumentError with a human reason."""
    path, root = Path(path), Path(root)
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported type {suffix or '(no extension)'}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"unreadable: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise DocumentError(f"too large ({_size(size)} > {_limit(max_bytes)} limit)")
    if size == 0:
        raise DocumentError("empty")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"unreadable: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:  # grew between stat and read
        raise DocumentError(f"too large ({_size(len(raw))} > {_limit(max_bytes)} limit)")

    title = ""
    if suffix in TEXT_SUFFIXES:
        text = decode_text(raw)
        if suffix == ".md":
            text, title = markdown_to_text(text)
        elif suffix in {".html", ".htm"}:
            text, title = html_to_text(text)
    elif suffix == ".docx":
        text, title = _docx_to_text(path)
    else:
        text, title = _pdf_to_text(path)

    text = normalize_text(text)
    if not text:
        raise DocumentError("no text found")
    return LoadedDocument(
        name=name,
        title=title or title_from_filename(path),
        text=text,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )
