"""Split normalized text into citable sentences with exact offsets, plus the headings above them.

Structured documents come with blocks (``loaders.Block``): their headings are the real ones,
a table row is one unit that reads on its own, a code line is one unit, and PDF sentences
carry their page. Plain text has no structure, so its headings are guessed from line shape.

``sentences.sentence_ends`` decides where sentences end inside a paragraph (it handles
"Mr. Biden", "Lloyd J. Austin", "U.S.", "3.5 km", quotes ending in '."', and cuts any run,
however long, in bounded time); offsets are computed from its cut points, so
``sentence.text == text[start:end]`` always holds.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from bot.ingest.sentences import sentence_ends


@dataclass(frozen=True)
class Sentence:
    index: int  # position among the document's sentences
    text: str
    start: int  # offsets into the normalized text
    end: int
    heading: str  # nearest heading above, "" if none
    paragraph: int  # among non-heading paragraphs
    position: int  # sentence number inside its paragraph
    page: int = 0  # 1-based PDF page the sentence starts on, 0 elsewhere
    table: int = 0  # 1-based table number for table rows and captions, else 0
    row: int = 0  # 1-based data row of that table, 0 for a caption or outside tables


@dataclass(frozen=True)
class Heading:
    text: str
    start: int
    end: int


MAX_HEADING_WORDS = 10
MAX_HEADING_CHARS = 80
# A line ending like a sentence or a quotation is prose, not a heading.
_CLOSING = tuple(".!?:;,\"'”’)]»…")

# A segmenter can leave a closing quote at the start of the next sentence: '" The next...'.
_STRAY_CLOSER = re.compile(r"\s*[\"”’']+(?=\s|$)")


def _is_heading(line: str) -> bool:
    return (
        len(line) <= MAX_HEADING_CHARS
        and len(line.split()) <= MAX_HEADING_WORDS
        and not line.endswith(_CLOSING)
        and any(ch.isalpha() for ch in line)
    )


def _split(paragraph: str) -> list[str]:
    """The paragraph's sentences, verbatim with their trailing space (see sentences.py)."""
    cuts = sentence_ends(paragraph)
    return [paragraph[a:b] for a, b in zip([0, *cuts], [*cuts, len(paragraph)])]


def _cuts(paragraph: str, pieces: list[str]) -> list[int]:
    """Offsets in ``paragraph`` where each piece ends (pieces are consecutive and verbatim)."""
    cuts, pos = [], 0
    for piece in pieces:
        pos += len(piece)
        cuts.append(pos)
    return cuts


def _lines(text: str):
    """(start, end) of each stripped non-empty line."""
    for match in re.finditer(r"[^\n]+", text):
        line = match.group()
        left = len(line) - len(line.lstrip())
        right = len(line.rstrip())
        if right > left:
            yield match.start() + left, match.start() + right


def _line_pieces(line: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of one paragraph line, relative to the line."""
    cuts = []
    for cut in _cuts(line, _split(line)):
        if (closer := _STRAY_CLOSER.match(line, cut)) and closer.end() > cut:
            cut = closer.end()
        if 0 < cut < len(line) and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(line)]):
        piece = line[a:b]
        stripped = piece.strip()
        if stripped:
            s = a + (len(piece) - len(piece.lstrip()))
            out.append((s, s + len(stripped)))
    return out


# Units that are read whole: a table row or caption, a line of code.
_WHOLE = frozenset({"row", "caption", "code"})


def segment(text: str, blocks=(), page_starts=()) -> tuple[list[Sentence], list[Heading]]:
    """Sentences and headings of normalized text; each non-empty line is one paragraph.

    ``blocks`` (from a structured loader) say which lines are headings, rows or code; without
    them headings are guessed from line shape. ``page_starts`` gives PDF sentences a page."""
    if blocks:
        units = [(b.start, b.end, b.kind, b.table, b.row) for b in blocks]
    else:
        lines = list(_lines(text))
        units = [
            (start, end, "heading" if i + 1 < len(lines) and _is_heading(text[start:end]) else "paragraph", 0, 0)
            for i, (start, end) in enumerate(lines)
        ]
    sentences: list[Sentence] = []
    headings: list[Heading] = []
    heading, paragraph = "", 0
    for start, end, kind, table, row in units:
        line = text[start:end]
        if kind == "heading":
            heading = line
            headings.append(Heading(line, start, end))
            continue
        pieces = [(0, len(line))] if kind in _WHOLE else _line_pieces(line)
        for position, (a, b) in enumerate(pieces):
            sentences.append(
                Sentence(
                    index=len(sentences),
                    text=line[a:b],
                    start=start + a,
                    end=start + b,
                    heading=heading,
                    paragraph=paragraph,
                    position=position,
                    page=bisect_right(page_starts, start + a) if page_starts else 0,
                    table=table,
                    row=row,
                )
            )
        paragraph += 1
    return sentences, headings
