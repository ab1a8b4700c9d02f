"""What a search returns for one source sentence: the sentence, where it is, and its context.

It belongs to the knowledge layer (search makes it); answerers and surfaces read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Passage:
    """A retrieved source sentence with the context an answerer may use."""

    sentence_id: str
    document: str  # file name inside documents/
    title: str
    text: str  # exactly the stored sentence, character for character
    start: int  # offsets into the document's normalized text
    end: int
    heading: str  # section heading the sentence sits under ("" if none)
    location: str  # human-readable place, e.g. "¶12, sentence 1"
    score: float
    before: str = ""  # neighbouring sentences, for context only, never quoted as evidence
    after: str = ""
    # Where the cross-encoder reads the short answer inside ``text`` (character offsets) and
    # how sure it is; set for the sentences it reread. The answerer decides whether to use it.
    answer_span: tuple[int, int] | None = None
    answer_p: float = 0.0
