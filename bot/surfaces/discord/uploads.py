"""Checks for files admins upload through Discord, before anything touches ``documents/``.

An attachment's name comes from a user's machine, so it is reduced to a plain file name
(no folders, no ``..``, no hidden or absolute paths), its type and size are capped, its bytes
must look like the type it claims, and an existing document is only replaced when asked.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

ALLOWED_TYPES = (".txt", ".md", ".pdf", ".docx", ".html")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


class UploadRejected(ValueError):
    """The upload is refused; the message is shown to the admin as is."""


class UploadExists(UploadRejected):
    """A document with that name exists and overwrite was not asked for."""


try:  # the core's own refusal (raised by Engine.add_document) reads the same to an admin
    from bot.ingest.uploads import UploadRefused as _CoreRefusal
except ImportError:  # pragma: no cover - older core
    _CoreRefusal = UploadRejected

REFUSALS: tuple[type[Exception], ...] = (UploadRejected, _CoreRefusal)


def sanitize_filename(name: str) -> str:
    """A safe, flat file name for ``name`` or :class:`UploadRejected`."""
    name = unicodedata.normalize("NFKC", name or "")
    name = re.split(r"[\\/]", name)[-1]  # drop any folder part, Windows or POSIX
    name = "".join(ch for ch in name if ch.isprintable())
    stem, dot, ext = name.rpartition(".")
    if not dot:
        raise UploadRejected(f"the file needs one of these extensions: {', '.join(ALLOWED_TYPES)}")
    ext = "." + ext.lower()
    if ext not in ALLOWED_TYPES:
        shown = "." + re.sub(r"[^a-z0-9]", "", ext)[:10]
        raise UploadRejected(f"`{shown}` files are not accepted; use one of {', '.join(ALLOWED_TYPES)}")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    stem = re.sub(r"\.{2,}", ".", stem).strip(".-_ ")
    stem = stem[:100].rstrip(".-_ ")
    if not stem or stem.lower() in _RESERVED:
        raise UploadRejected("that file name can't be used; rename the file and try again")
    return stem + ext


def check_size(size: int, max_mb: float) -> None:
    if size <= 0:
        raise UploadRejected("the file is empty")
    if size > max_mb * 1024 * 1024:
        raise UploadRejected(f"the file is {size / 1024 / 1024:.1f} MB; the limit is {max_mb:g} MB")


def check_content(name: str, data: bytes) -> None:
    """The bytes must match the claimed type (a renamed binary is not a text document)."""
    ext = Path(name).suffix.lower()
    if not data:
        raise UploadRejected("the file is empty")
    if ext == ".pdf" and not data.startswith(b"%PDF-"):
        raise UploadRejected("the file is named .pdf but is not a PDF")
    if ext == ".docx" and not data.startswith(b"PK\x03\x04"):
        raise UploadRejected("the file is named .docx but is not a Word document")
    if ext in (".txt", ".md", ".html"):
        if b"\x00" in data[:65536]:
            raise UploadRejected(f"the file is named {ext} but contains binary data")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                data.decode("cp1252")
            except UnicodeDecodeError:
                raise UploadRejected("the text is not UTF-8 (or Windows-1252); save it as UTF-8") from None


def save_upload(documents_dir: Path, name: str, data: bytes, overwrite: bool = False) -> tuple[Path, bool]:
    """Write ``data`` atomically as ``documents_dir/name``; returns (path, replaced_existing)."""
    documents_dir = Path(documents_dir)
    documents_dir.mkdir(parents=True, exist_ok=True)
    target = documents_dir / name
    if target.resolve().parent != documents_dir.resolve():
        raise UploadRejected("that file name can't be used")
    existing = {p.name.lower(): p for p in documents_dir.iterdir()}
    clash = existing.get(name.lower())
    if clash is not None and not overwrite:
        raise UploadExists(
            f"`{clash.name}` already exists in the briefings; run /upload again with overwrite:True to replace it"
        )
    if clash is not None:
        target = clash
    fd, tmp = tempfile.mkstemp(dir=documents_dir, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, clash is not None
