"""Saving a user-supplied file into documents/ without letting its name or size hurt us."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from bot.ingest.loaders import SUPPORTED_SUFFIXES


class UploadRefused(Exception):
    """The file can't be accepted; the message says why, for the person who sent it."""


def sanitize_filename(name: str) -> str:
    """A plain, visible file name: no folders, no traversal, no hidden or odd characters."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").split("/")[-1]
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = re.sub(r"[^\w\- ]+", "-", stem, flags=re.UNICODE).strip(" .-_")
    stem = re.sub(r"[\s]+", "-", stem)[:100]
    suffix = re.sub(r"[^a-z0-9]", "", suffix.lower())
    if not stem:
        raise UploadRefused("that file name has no usable characters; rename it and try again")
    return f"{stem}.{suffix}" if suffix else stem


def save_upload(documents_dir: Path, filename: str, data: bytes, max_bytes: int, overwrite: bool = False) -> Path:
    """Write ``data`` as a new document; refuses wrong types, oversize files and silent overwrites."""
    safe = sanitize_filename(filename)
    suffix = Path(safe).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UploadRefused(f"{suffix or 'files without an extension'} can't be indexed; send one of {allowed}")
    if len(data) > max_bytes:
        raise UploadRefused(f"the file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB")
    if not data.strip():
        raise UploadRefused("the file is empty")
    documents_dir = Path(documents_dir)
    documents_dir.mkdir(parents=True, exist_ok=True)
    target = documents_dir / safe
    if target.resolve().parent != documents_dir.resolve():
        raise UploadRefused("that file name is not allowed")
    if target.exists() and not overwrite:
        raise UploadRefused(f"a document named {safe} already exists; upload again with overwrite to replace it")
    tmp = documents_dir / f".upload-{os.getpid()}-{safe}"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target
