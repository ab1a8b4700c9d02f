"""Split normalized text into citable sentences with exact offsets, plus the headings above them.

Structured documents come with blocks (``loaders.Block``): their headings are the real ones,
a table row is one unit that reads on its own, a code line is one unit, and PDF sentences
carry their page. Plain text has no structure, so its headings are guessed from line shape.

pysbd decides where sentences end (it handles "Mr. Biden", "Lloyd J. Austin", "U.S.",
"3.5 km", quotes ending in '."'); we only take its cut points and compute offsets ourselves,
so ``sentence.text == text[start:end]`` holds even when the segmenter drops or alters text.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

import pysbd
from pysbd.lang.english import English


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

# pysbd gets slower per character on long inputs, so very long paragraphs are cut first at
# breaks no abbreviation can produce: a lowercase word of 3+ letters, a full stop, a space
# and a capitalised word.
_CHUNK_CHARS = 4000
_SAFE_BREAK = re.compile(r"(?<![^\s(\"“‘'])[a-z]{3,}[.!?][\"”’')]*\s+(?=[\"“‘(]?[A-Z])")

# Longer "sentences" from pysbd are almost always quote-grouping artefacts (see _resplit).
MAX_SENTENCE_CHARS = 300
_TERMINAL_GAP = re.compile(r"(?<=\w)([.!?])[\"”’')]*\s+(?=[\"“‘(]?[A-Z]|[-–—•*] )")
_LAST_WORD = re.compile(r"\S*$")
_ABBREVIATIONS = frozenset(
    a.strip().lower()
    for a in English.Abbreviation.ABBREVIATIONS + English.Abbreviation.PREPOSITIVE_ABBREVIATIONS
)

# pysbd sometimes leaves a closing quote at the start of the next sentence: '" The next...'.
_STRAY_CLOSER = re.compile(r"\s*[\"”’']+(?=\s|$)")


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _is_heading(line: str) -> bool:
    return (
        len(line) <= MAX_HEADING_CHARS
        and len(line.split()) <= MAX_HEADING_WORDS
        and not line.endswith(_CLOSING)
        and any(ch.isalpha() for ch in line)
    )


def _chunks(paragraph: str) -> list[str]:
    """Cut only very long paragraphs, at safe sentence ends, into pieces pysbd handles fast."""
    if len(paragraph) <= _CHUNK_CHARS:
        return [paragraph]
    chunks, start, last = [], 0, 0
    for match in _SAFE_BREAK.finditer(paragraph):
        if match.end() - start > _CHUNK_CHARS and last > start:
            chunks.append(paragraph[start:last])
            start = last
        last = match.end()
    chunks.append(paragraph[start:])
    return chunks


def _resplit(piece: str) -> list[str]:
    """pysbd keeps everything between quote marks together, so one unbalanced quote (common
    in scraped news) swallows whole paragraphs; cut such overlong pieces at plain sentence
    ends, skipping initials, dotted forms (U.S.) and pysbd's own abbreviation list."""
    if len(piece) <= MAX_SENTENCE_CHARS:
        return [piece]
    ends = []
    for match in _TERMINAL_GAP.finditer(piece):
        if match.group(1) == ".":
            word = _LAST_WORD.search(piece, max(0, match.start() - 40), match.start()).group()
            word = word.lstrip("\"“‘'([")
            if len(word) < 2 or "." in word or word.lower() in _ABBREVIATIONS:
                continue
        if match.end() < len(piece):
            ends.append(match.end())
    return [piece[a:b] for a, b in zip([0, *ends], [*ends, len(piece)])]


def _split(paragraph: str) -> list[str]:
    pieces: list[str] = []
    for chunk in _chunks(paragraph):
        try:
            # The sentence list without pysbd's own char-span pass: that pass costs a third
            # of the time and we compute offsets ourselves anyway.
            found = _segmenter().processor(chunk).process()
        except Exception:  # pysbd has crashed on odd inputs; one unsplit piece is still correct
            found = [chunk]
        for piece in found:
            pieces.extend(_resplit(piece))
    return pieces


def _cuts(paragraph: str, pieces: list[str]) -> list[int]:
    """Offsets in ``paragraph`` where each piece ends, matched on non-space characters."""
    cuts, pos = [], 0
    for piece in pieces:  # the usual case: verbatim pieces separated by whitespace
        found = paragraph.find(piece, pos)
        if not piece or found < 0 or paragraph[pos:found].strip():
            break
        pos = found + len(piece)
        cuts.append(pos)
    else:
        return cuts
    # Slow path: the segmenter changed whitespace or text; re-find each piece in order.
    positions = [m.start() for m in re.finditer(r"\S", paragraph)]
    dense = re.sub(r"\s+", "", paragraph)
    cuts, k = [], 0
    for piece in pieces:
        needle = "".join(piece.split())
        if not needle:
            continue
        if dense.startswith(needle, k):
            k += len(needle)
        else:
            found = dense.find(needle, k)
            if found < 0:
                continue  # text the paragraph doesn't contain: ignore this cut
            k = found + len(needle)
        cuts.append(positions[k - 1] + 1)
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
