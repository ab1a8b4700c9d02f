"""Lay out the benchmark corpora as documents: the briefing plus the 2,225 BBC articles."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BRIEFING = ROOT / "documents" / "briefing-us-missile-policy-2024-11.txt"
BBC_DIR = SHARED / "corpora" / "bbc-news"


def bbc_articles() -> list[tuple[str, str]]:
    """(file name, raw text) for every article, in a stable order; mojibake left as found."""
    out = []
    for split in ("train", "val", "test"):
        with open(BBC_DIR / f"{split}.csv", newline="", encoding="utf-8") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                out.append((f"bbc-{row['category']}-{split}-{i:04d}.txt", row["text"]))
    return out


def write_corpus(target: Path, with_bbc: bool = True) -> Path:
    """Fill ``target`` with the briefing (and the BBC articles); returns ``target``."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(BRIEFING, target / BRIEFING.name)
    if with_bbc:
        for name, text in bbc_articles():
            (target / name).write_text(text, encoding="utf-8")
    return target


if __name__ == "__main__":
    print(write_corpus(Path(sys.argv[1])))
