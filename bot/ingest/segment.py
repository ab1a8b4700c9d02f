"""Split normalized text into citable sentences with exact offsets, plus the headings above them.

``sentences.sentence_ends`` decides where sentences end inside a paragraph (it handles
"Mr. Biden", "Lloyd J. Austin", "U.S.", "3.5 km", quotes ending in '."', and cuts any run,
however long, in bounded time); offsets are computed from its cut points, so
``sentence.text == text[start:end]`` always holds.
"""

from __future__ import annotations

import re
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


def segment(text: str) -> tuple[list[Sentence], list[Heading]]:
    """Sentences and headings of normalized text; each non-empty line is one paragraph."""
    lines = list(_lines(text))
    sentences: list[Sentence] = []
    headings: list[Heading] = []
    heading, paragraph = "", 0
    for i, (start, end) in enumerate(lines):
        line = text[start:end]
        if i + 1 < len(lines) and _is_heading(line):
            heading = line
            headings.append(Heading(line, start, end))
            continue
        cuts = []
        for cut in _cuts(line, _split(line)):
            if (closer := _STRAY_CLOSER.match(line, cut)) and closer.end() > cut:
                cut = closer.end()
            if 0 < cut < len(line) and (not cuts or cut > cuts[-1]):
                cuts.append(cut)
        position = 0
        for a, b in zip([0, *cuts], [*cuts, len(line)]):
            piece = line[a:b]
            stripped = piece.strip()
            if not stripped:
                continue
            s = start + a + (len(piece) - len(piece.lstrip()))
            sentences.append(
                Sentence(
                    index=len(sentences),
                    text=stripped,
                    start=s,
                    end=s + len(stripped),
                    heading=heading,
                    paragraph=paragraph,
                    position=position,
                )
            )
            position += 1
        paragraph += 1
    return sentences, headings
