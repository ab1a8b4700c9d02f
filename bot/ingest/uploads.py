"""Saving a user-supplied file into documents/ without letting its name or size hurt us."""

from __future__ import annotations

import errno
import os
import re
import unicodedata
from pathlib import Path

from bot.ingest.loaders import SUPPORTED_SUFFIXES, human_limit, human_size


# Device names Windows won't open as files (a documents folder may live on a Windows share).
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


class UploadRefused(Exception):
    """The file can't be accepted; the message says why, for the person who sent it."""


MAX_STEM_CHARS = 100
MAX_NAME_BYTES = 230  # file systems allow 255 bytes per name; room for the ".upload-PID-" temp prefix


def sanitize_filename(name: str) -> str:
    """A plain, visible file name: no folders, no traversal, no hidden or odd characters.

    Idempotent (``sanitize_filename(sanitize_filename(x)) == sanitize_filename(x)``): the name
    looked up for an existing document is the name the upload is saved under."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = re.sub(r"[^\w\- ]+", "-", stem, flags=re.UNICODE)
    stem = re.sub(r"[\s\-]*[\s\-]", "-", stem)
    # NFKC again: a stem cut or joined differently may compose differently; then trim the ends
    # only after truncating, so a cut that ends in "-" or "_" is trimmed too.
    stem = unicodedata.normalize("NFKC", stem).strip(" .-_")[:MAX_STEM_CHARS].strip(" .-_")
    suffix = re.sub(r"[^a-z0-9]", "", suffix.lower())
    if not stem:
        raise UploadRefused("that file name has no usable characters; rename it and try again")
    if stem.lower() in _RESERVED:
        raise UploadRefused(f"{stem} is a reserved device name on Windows; rename the file and try again")
    full = f"{stem}.{suffix}" if suffix else stem
    size = len(full.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise UploadRefused(f"that file name is too long ({size} bytes in UTF-8, the limit is {MAX_NAME_BYTES}); "
                            "rename it to something shorter and try again")
    return full


def existing_document(documents_dir: Path, filename: str) -> Path | None:
    """The document an upload of ``filename`` would replace (same saved name, any letter case)."""
    try:
        safe = sanitize_filename(filename)
    except UploadRefused:
        return None
    documents_dir = Path(documents_dir)
    if not documents_dir.is_dir():
        return None
    return next((p for p in documents_dir.iterdir() if p.name.lower() == safe.lower() and p.is_file()), None)


def check_upload(filename: str, size: int, max_bytes: int) -> str:
    """The safe name for an upload of ``size`` bytes, before anything is downloaded or written."""
    safe = sanitize_filename(filename)
    suffix = Path(safe).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UploadRefused(f"{suffix or 'files without an extension'} can't be indexed; send one of {allowed}")
    if size <= 0:
        raise UploadRefused("the file is empty")
    if size > max_bytes:
        raise UploadRefused(f"the file is {human_size(size)}; the limit is {human_limit(max_bytes)}")
    return safe


def check_content(name: str, data: bytes) -> None:
    """The bytes must be what the name claims: a renamed binary is not a briefing."""
    suffix = Path(name).suffix.lower()
    if not data.strip():
        raise UploadRefused("the file is empty")
    if suffix == ".pdf" and not data.startswith(b"%PDF-"):
        raise UploadRefused("the file is named .pdf but is not a PDF")
    if suffix == ".docx" and not data.startswith(b"PK\x03\x04"):
        raise UploadRefused("the file is named .docx but is not a Word document")
    if suffix in {".txt", ".md", ".html", ".htm"} and b"\x00" in data[:65536]:
        raise UploadRefused(f"the file is named {suffix} but contains binary data")


def save_upload(documents_dir: Path, filename: str, data: bytes, max_bytes: int, overwrite: bool = False) -> Path:
    """Write ``data`` as a new document; refuses wrong types, oversize files and silent overwrites."""
    safe = check_upload(filename, len(data), max_bytes)
    check_content(safe, data)
    documents_dir = Path(documents_dir)
    documents_dir.mkdir(parents=True, exist_ok=True)
    target = documents_dir / safe
    if target.resolve().parent != documents_dir.resolve():
        raise UploadRefused("that file name is not allowed")
    # "Brief.TXT" and "brief.txt" are one document to a person (and to some file systems).
    same = existing_document(documents_dir, safe)
    if same is not None:
        if not overwrite:
            raise UploadRefused(f"a document named {same.name} already exists; upload again with overwrite to replace it")
        target = same
    tmp = documents_dir / f".upload-{os.getpid()}-{safe}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENAMETOOLONG:
            raise UploadRefused("that file name is too long for the server's file system; rename it to something "
                                "shorter and try again") from None
        raise
    return target
