"""Where sentences end inside one paragraph: ``sentence_ends(paragraph)`` -> cut offsets.

sentencex (Wikimedia's rule-based segmenter, Rust, linear time) finds the boundaries; it
handles "Mr. Biden", "Lloyd J. Austin", "U.S.", "3.5 km", "5 p.m." and single capitals that
end a sentence ("complete for C. This means", "vitamin D. Not only"). It was chosen over
pysbd, blingfire, syntok and NLTK Punkt by ``bench/segmenters.py`` (bench/README.md,
"Segmentation"). Around it, in this order:

- the input is cut into runs of at most ``MAX_RUN`` characters (at a sentence-like break,
  else at whitespace, else anywhere), so no paragraph is ever handed over whole, however long;
- a cut inside a word ("Bagle.AT") or before a lower-case word is dropped;
- an opening quote that the segmenter left at the end of a sentence ('... he said. "') goes
  to the sentence it opens, and a closing quote left at the start of the next one goes back;
- a bare list marker ("1.", "b)") is joined to the item it numbers;
- a piece over ``MAX_SENTENCE_CHARS`` (an unbalanced quote can hold many sentences together)
  is re-cut at plain sentence ends that are not abbreviations or initials;
- no sentence is longer than ``HARD_MAX_CHARS``: longer runs are cut at whitespace.

Offsets are computed here, so ``paragraph[a:b]`` is always exactly the sentence.
"""

from __future__ import annotations

import re

import sentencex

MAX_RUN = 10_000  # characters handed to the segmenter at once
MAX_SENTENCE_CHARS = 300  # longer pieces are checked for missed sentence ends
HARD_MAX_CHARS = 2_000  # no cited sentence is longer than this (a run without any break)

# A break no abbreviation can produce: a lowercase word of 3+ letters, a full stop, a space and
# a capitalised word.
_SAFE_BREAK = re.compile(r"(?<![^\s(\"“‘'])[a-z]{3,}[.!?][\"”’')]*\s+(?=[\"“‘(]?[A-Z])")
_TERMINAL_GAP = re.compile(r"(?<=\w)([.!?])[\"”’')]*\s+(?=[\"“‘(]?[A-Z]|[-–—•*] )")
_LAST_WORD = re.compile(r"\S*$")
_LIST_MARKER = re.compile(r"(?:\d{1,3}|[A-Za-z]|[ivxIVX]{1,4})[.)]")
_ITEM_START = re.compile(r"(?:[a-z]|[ivx]{1,4})[.)]\s")
_OPENERS = "\"“‘'«"
_CLOSERS = "\"”’'»"
# Words that end with a full stop without ending a sentence (lower case, without the stop).
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt cmdr adm maj gov sen rep rev hon pres
    supt insp det cpl pte no nos vol vols fig figs p pp ch chap sec art para ed eds est approx
    dept univ assn bros co corp inc ltd plc llc jan feb mar apr jun jul aug sep sept oct nov dec
    mon tue tues wed thu thur thurs fri sat sun vs etc cf al ie eg viz ca op cit ibid tel ext
    """.split()
)


def sentence_ends(paragraph: str) -> list[int]:
    """Offsets where each sentence but the last ends, increasing, all inside ``paragraph``."""
    cuts: list[int] = []
    for lo, hi in _runs(paragraph):
        cuts.extend(lo + c for c in _segment_run(paragraph[lo:hi]))
        cuts.append(hi)
    cuts = _fix_quotes(paragraph, cuts)
    cuts = _drop_impossible(paragraph, cuts)
    cuts = _join_list_markers(paragraph, cuts)
    cuts = _recut_long(paragraph, cuts)
    cuts = _bound(paragraph, cuts)
    return [c for c in cuts if 0 < c < len(paragraph)]


def _runs(text: str) -> list[tuple[int, int]]:
    """Consecutive (start, end) runs of at most MAX_RUN characters, cut where it does least harm."""
    runs, lo = [], 0
    while len(text) - lo > MAX_RUN:
        window = text[lo : lo + MAX_RUN]
        cut = 0
        for match in _SAFE_BREAK.finditer(window, MAX_RUN // 2):
            cut = match.end()
        if not cut:
            space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
            cut = space + 1 if space > 0 else MAX_RUN
        runs.append((lo, lo + cut))
        lo += cut
    runs.append((lo, len(text)))
    return runs


def _segment_run(run: str) -> list[int]:
    """The segmenter's cut points in ``run``; none if it fails (one piece is still correct)."""
    try:
        bounds = sentencex.get_sentence_boundaries("en", run)
    except Exception:  # noqa: BLE001 - an optional refinement: the run stays whole
        return []
    cuts, pos = [], 0
    for b in bounds:
        start, end = int(b["start_index"]), int(b["end_index"])
        if start != pos or not pos < end <= len(run) or run[start:end] != b["text"]:
            return _locate(run, [b["text"] for b in bounds])
        cuts.append(end)
        pos = end
    return cuts[:-1] if cuts and cuts[-1] == len(run) else cuts


def _locate(run: str, pieces: list[str]) -> list[int]:
    """Cut points for pieces the segmenter reported without usable offsets (found in order)."""
    cuts, pos = [], 0
    for piece in pieces:
        found = run.find(piece.strip(), pos)
        if not piece.strip() or found < 0:
            continue
        pos = found + len(piece.strip())
        cuts.append(pos)
    return cuts


def _drop_impossible(text: str, cuts: list[int]) -> list[int]:
    """No sentence ends inside a word ("Bagle.AT") or before a lower-case word ("Bombay! with")."""
    out = []
    for cut in cuts:
        if 0 < cut < len(text):
            if not (text[cut - 1].isspace() or text[cut].isspace()):
                continue
            k = cut
            while k < len(text) and text[k].isspace():
                k += 1
            if k < len(text) and text[k].islower() and not _ITEM_START.match(text, k):
                continue
        out.append(cut)
    return out


def _content_end(text: str, lo: int, hi: int) -> int:
    """End of the last non-space character in text[lo:hi] (lo if none)."""
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return hi


def _fix_quotes(text: str, cuts: list[int]) -> list[int]:
    out = []
    for cut in cuts:
        end = _content_end(text, out[-1] if out else 0, cut)
        # '... he said. "We' : the quote after the space opens the next sentence.
        if end >= 2 and text[end - 1] in _OPENERS and text[end - 2].isspace() and end < len(text) \
                and _next_char(text, end).isalnum():
            cut = _content_end(text, 0, end - 1)
        # 'said. " The next' : a closer cut off from its sentence goes back.
        elif cut < len(text):
            k = cut
            while k < len(text) and text[k].isspace():
                k += 1
            j = k
            while j < len(text) and text[j] in _CLOSERS:
                j += 1
            if j > k and (j == len(text) or text[j].isspace()) and (end == 0 or text[end - 1] in ".!?…"):
                cut = j
        if not out or cut > out[-1]:
            out.append(cut)
    return out


def _next_char(text: str, pos: int) -> str:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return text[pos] if pos < len(text) else ""


def _join_list_markers(text: str, cuts: list[int]) -> list[int]:
    out, prev = [], 0
    for cut in cuts:
        if _LIST_MARKER.fullmatch(text[prev:cut].strip()) and cut < len(text):
            continue  # "1." alone: keep it with its item
        out.append(cut)
        prev = cut
    return out


def _recut_long(text: str, cuts: list[int]) -> list[int]:
    out, prev = [], 0
    for cut in cuts:
        if cut - prev > MAX_SENTENCE_CHARS:
            out.extend(prev + c for c in _plain_ends(text[prev:cut]))
        out.append(cut)
        prev = cut
    return out


def _plain_ends(piece: str) -> list[int]:
    """Sentence ends in an overlong piece, skipping initials, dotted forms (U.S.) and abbreviations."""
    ends = []
    for match in _TERMINAL_GAP.finditer(piece):
        if match.group(1) == ".":
            word = _LAST_WORD.search(piece, max(0, match.start() - 40), match.start()).group()
            word = word.lstrip(_OPENERS + "([")
            if len(word) < 2 or "." in word or word.lower() in _ABBREVIATIONS:
                continue
        if match.end() < len(piece):
            ends.append(match.end())
    return ends


def _bound(text: str, cuts: list[int]) -> list[int]:
    out, prev = [], 0
    for cut in cuts:
        while cut - prev > HARD_MAX_CHARS:
            window = text[prev : prev + HARD_MAX_CHARS]
            space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
            prev = prev + (space + 1 if space > HARD_MAX_CHARS // 2 else HARD_MAX_CHARS)
            out.append(prev)
        out.append(cut)
        prev = cut
    return out
