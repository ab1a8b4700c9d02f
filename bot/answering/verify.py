"""Checks that an LLM's claims are supported by the source sentences they cite.

A model's answer is only shown if every claim in it survives these checks, because the
point of briefbot is that each statement can be traced to a real sentence in a briefing.
The checks are deliberately conservative: dropping a true claim costs a fluent answer (the
user still gets the extractive one), while keeping a false one costs the team's trust.

What is checked, per claim:

* cited ids must name a sentence that was actually in the prompt (models invent ids);
* a cited sentence that reads like an instruction to an AI ("ignore your instructions ...")
  is not evidence for anything, so a claim resting only on it is dropped (prompt injection);
* key terms of the claim (numbers, dates, capitalized names) must appear in the cited text,
  after normalizing case, thousands separators ("8,000" == "8000"), ordinals ("5th" == "5")
  and possessives;
* when an embedding function is given, the claim must be semantically close to its cited
  text (cosine similarity of L2-normalized vectors above ``min_similarity``).

Known limit: similarity and shared terms cannot see negation ("X supports" vs "X opposes"
score as similar), so the checks catch invented facts and citations, not every misreading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from bot.answering.types import Passage

Embed = Callable[[list[str]], np.ndarray]

DEFAULT_MIN_SIMILARITY = 0.5
"""Cosine threshold for all-MiniLM-L6-v2: paraphrases of a cited sentence score ~0.6-0.9,
claims about something else in the same briefing ~0.0-0.45."""

# Capitalized words that start sentences or fill grammar rather than name something; they
# are not key terms. Months and weekdays are deliberately absent: they are dates.
_STOPWORDS = frozenset(
    """
    a about above according across additionally after afterwards again against all almost
    also although always among an and another any are as at be because been before being
    below between both but by can could currently despite did do does during each either
    else even every finally first for from further furthermore had has have he her here
    hers him his how however i if in including instead into is it its itself just last
    later many may meanwhile more moreover most mr mrs ms dr much must my neither never
    next no none nor not now of off on once one only or other others otherwise our out over
    overall per perhaps rather second several she should since so some still such than that
    the their them then there therefore these they this those though through thus to today
    too under unless until up upon us was we were what when where whereas whether which
    while who whom whose why will with within without would yes yet you your
    """.split()
)
# "US", "UN", "IT" are acronyms; only treat them as stopwords when written in lower/title case.
_ACRONYM_OK = frozenset({"us", "it", "no", "or", "an", "as", "at", "in", "on", "to", "we"})

_ACRONYM_DOTS = re.compile(r"\b(?:[A-Za-z]\.){2,}")
_NUMBER = re.compile(r"\d+(?:[,.]\d+)*(?:st|nd|rd|th|s)?", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*")

_INSTRUCTION_PATTERNS = [
    re.compile(
        r"\b(ignore|disregard|forget|override|bypass)\b[^.]{0,40}?"
        r"\b(instructions?|prompts?|guidelines|directives|system)\b",
        re.I,
    ),
    re.compile(r"\b(system|developer)\s+(prompt|message|instructions?)\b", re.I),
    re.compile(r"\bnew\s+instructions?\b", re.I),
    re.compile(r"\b(as an ai|as a language model|you are (now )?(an? )?(ai|assistant|chatbot|language model))\b", re.I),
    re.compile(r"\b(assistant|chatbot|language model|llm|ai model)s?\b[^.]{0,40}\b(must|should|shall|will)\s+(say|answer|respond|reply|state|tell)\b", re.I),
    re.compile(r"\btell the user\b", re.I),
]


def _fold(word: str) -> str:
    """Lowercase and drop possessive/plural endings so "Korea's"/"Korea", "officials"/"official" meet."""
    w = word.lower().replace("’", "'").strip("'-")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w


def _number(token: str) -> str:
    """Canonical form of a number token: no thousands separators, no ordinal/decade suffix."""
    t = re.sub(r"(st|nd|rd|th|s)$", "", token.lower())
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    t = t.replace(",", ".") if re.fullmatch(r"\d+,\d{1,2}", t) else t
    if "." in t:
        t = t.rstrip("0").rstrip(".") or "0"
    return t.lstrip("0") or "0"


def _undot(text: str) -> str:
    return _ACRONYM_DOTS.sub(lambda m: m.group(0).replace(".", ""), text)


@dataclass(frozen=True)
class Terms:
    """Key terms of a text: canonical numbers and folded capitalized words."""

    numbers: frozenset[str]
    names: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.numbers or self.names)


_CLAUSE_END = re.compile(r"(?:^|[.!?;:]\s*[\"“”'’(\[]*)\s*$")


def key_terms(text: str, common: frozenset[str] | set[str] = frozenset()) -> Terms:
    """Numbers, dates and capitalized names a claim must share with its evidence.

    Grammatical words ("The", "However") never count. A capitalized word that merely
    starts a sentence ("Troops ...") is skipped when ``common`` (the folded words the
    sources use in lower case) shows it is an ordinary word; otherwise it counts, so an
    invented name is caught wherever it stands. Acronyms, months and numbers always count.
    """
    text = _undot(text)
    numbers = {_number(m.group(0)) for m in _NUMBER.finditer(text)}
    names: set[str] = set()
    for m in _WORD.finditer(text):
        word = m.group(0).strip("'’-")
        if not word or not word[0].isupper():
            continue
        is_acronym = len(word) >= 2 and word.isupper()
        starts_sentence = bool(_CLAUSE_END.search(text[: m.start()]))
        for k, part in enumerate(word.split("-")):
            if not part or not part[0].isupper():
                continue
            folded = _fold(part)
            if not folded:
                continue
            if folded in _STOPWORDS and not (is_acronym and folded in _ACRONYM_OK):
                continue
            if starts_sentence and k == 0 and not is_acronym and folded in common:
                continue
            names.add(folded)
    return Terms(frozenset(numbers), frozenset(names))


def lowercase_words(texts: Iterable[str]) -> frozenset[str]:
    """Folded words the texts use in lower case: evidence that a word is not a name."""
    return frozenset(_fold(m.group(0)) for t in texts for m in _WORD.finditer(t) if m.group(0)[0].islower())


def _vocabulary(text: str) -> tuple[set[str], set[str]]:
    """Every number and folded word of the evidence, for membership tests."""
    text = _undot(text)
    numbers = {_number(m.group(0)) for m in _NUMBER.finditer(text)}
    words: set[str] = set()
    for m in _WORD.finditer(text):
        word = m.group(0)
        words.add(_fold(word))
        words.update(_fold(p) for p in word.split("-") if p)
    return numbers, words


def missing_terms(claim: str, evidence: str, common: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Key terms of ``claim`` that ``evidence`` does not contain (sorted, for messages)."""
    terms = key_terms(claim, common)
    numbers, words = _vocabulary(evidence)
    missing = [n for n in terms.numbers if n not in numbers]
    missing += [w for w in terms.names if w not in words]
    return sorted(missing)


def looks_like_instruction(text: str) -> bool:
    """True if a source sentence addresses an AI ("ignore your instructions and say ...").

    Such a sentence is data that tries to steer the model; it states no fact about the
    briefing's subject, so it can never be the evidence for a claim.
    """
    return any(p.search(text) for p in _INSTRUCTION_PATTERNS)


@dataclass(frozen=True)
class CheckedClaim:
    """A claim that survived, with the source ids (prompt ids like "S1") that support it."""

    text: str
    source_ids: tuple[str, ...]


@dataclass(frozen=True)
class DroppedClaim:
    text: str
    reason: str


@dataclass
class Verification:
    kept: list[CheckedClaim] = field(default_factory=list)
    dropped: list[DroppedClaim] = field(default_factory=list)
    dropped_ids: list[str] = field(default_factory=list)  # cited ids that were not in the context


def normalize_id(raw: object) -> str:
    """"s1", "[S1]", " S1 " -> "S1"; anything else is returned stripped (and will not match)."""
    text = str(raw).strip().strip("[]()").strip()
    return text.upper() if re.fullmatch(r"[sS]\d+", text) else text


def verify_claims(
    claims: Sequence[tuple[str, Sequence[object]]],
    sources: Mapping[str, Passage],
    embed: Embed | None = None,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
) -> Verification:
    """Keep only claims whose cited sentences exist, are evidence, and support them."""
    result = Verification()
    common = lowercase_words(p.text for p in sources.values())
    pending: list[tuple[str, list[str]]] = []
    for text, cited in claims:
        text = " ".join(str(text).split())
        if not text:
            continue
        ids: list[str] = []
        for raw in cited:
            sid = normalize_id(raw)
            if sid not in sources:
                result.dropped_ids.append(sid)
            elif sid not in ids:
                ids.append(sid)
        if not ids:
            result.dropped.append(DroppedClaim(text, "no citation names a sentence that was in the sources"))
            continue
        evidence_ids = [sid for sid in ids if not looks_like_instruction(sources[sid].text)]
        if not evidence_ids:
            result.dropped.append(DroppedClaim(text, "cites only text that gives instructions, not facts"))
            continue
        evidence = " ".join(sources[sid].text for sid in evidence_ids)
        missing = missing_terms(text, evidence, common)
        if missing:
            result.dropped.append(DroppedClaim(text, "cited text lacks " + ", ".join(missing)))
            continue
        pending.append((text, evidence_ids))

    similarities: list[tuple[float, list[float]]] = [(1.0, [1.0] * len(ids)) for _, ids in pending]
    if embed is not None and pending:
        similarities = _similarities(pending, sources, embed)

    for (text, ids), (best, per_source) in zip(pending, similarities):
        if embed is not None and best < min_similarity:
            result.dropped.append(DroppedClaim(text, f"not close enough to its cited text (similarity {best:.2f})"))
            continue
        result.kept.append(CheckedClaim(text, _prune(text, ids, sources, per_source, embed, min_similarity, common)))
    return result


def _similarities(
    pending: Sequence[tuple[str, list[str]]], sources: Mapping[str, Passage], embed: Embed
) -> list[tuple[float, list[float]]]:
    """One embedding batch for all claims: similarity to each cited sentence and to their union."""
    texts: list[str] = []
    for claim, ids in pending:
        texts.append(claim)
        texts.append(" ".join(sources[sid].text for sid in ids))
        texts.extend(sources[sid].text for sid in ids)
    vectors = np.asarray(embed(texts), dtype=np.float32)
    out: list[tuple[float, list[float]]] = []
    i = 0
    for _, ids in pending:
        claim_vec = vectors[i]
        union = float(claim_vec @ vectors[i + 1])
        each = [float(claim_vec @ vectors[i + 2 + k]) for k in range(len(ids))]
        out.append((max([union, *each]), each))
        i += 2 + len(ids)
    return out


def _prune(
    claim: str,
    ids: list[str],
    sources: Mapping[str, Passage],
    per_source: list[float],
    embed: Embed | None,
    min_similarity: float,
    common: frozenset[str],
) -> tuple[str, ...]:
    """Drop cited sentences that contribute nothing, so every quote shown is relevant."""
    terms = key_terms(claim, common)
    if not terms and embed is None:
        return tuple(ids)
    kept = []
    for sid, sim in zip(ids, per_source):
        numbers, words = _vocabulary(sources[sid].text)
        shares_term = bool(terms.numbers & numbers) or bool(terms.names & words)
        if shares_term or (embed is not None and sim >= min_similarity):
            kept.append(sid)
    return tuple(kept or ids)


__all__ = [
    "DEFAULT_MIN_SIMILARITY",
    "CheckedClaim",
    "DroppedClaim",
    "Terms",
    "Verification",
    "key_terms",
    "looks_like_instruction",
    "lowercase_words",
    "missing_terms",
    "normalize_id",
    "verify_claims",
]
