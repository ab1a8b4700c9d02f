"""Short answers: what a question asks for (its type) and which span of a sentence gives it.

Candidate spans come from general patterns (any date, year, century, time or ISO date; numbers
with decimals and number words; money with decimals; full proper-noun phrases). Each candidate
is scored by a logistic regression over a handful of features (the question type against the
span's kind, whether the span repeats the question, how close it sits to the question's words
in the sentence, ...). The weights were fitted on the train split of SQuAD rows in
shared/qa-train by ``bench/train_spans.py`` and ship as JSON in ``bot/models/spans.json``;
inference is a dot product in plain Python, so answering needs neither sklearn nor numpy.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import Stemmer

from bot.answering.language import ENGLISH_FUNCTION_WORDS, english_words
from bot.knowledge.terms import MONTHS

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "spans.json"

QTYPES = ("when", "who", "where", "number", "money", "what", "other")
KINDS = ("date", "number", "money", "proper")
FACTOID = frozenset({"when", "who", "where", "number", "money"})

_STEM = Stemmer.Stemmer("english")
_WORD = re.compile(r"[^\W_]+(?:[.,'’\-][^\W_]+)*", re.UNICODE)
_STOP = frozenset("""a an the of in on at to for from by with and or but as is are was were be been being has have had
do does did what when where who whom whose which why how that this these those it its they them their he she his her
him there than then so not no if into about over after before during between under up out many much did do s""".split())
_WH = ("what", "when", "where", "who", "whom", "whose", "which", "how", "why")

# ---- question types ----------------------------------------------------------------------
_WHEN_HEADS = {"year", "years", "date", "day", "month", "century", "decade", "time", "era", "period", "season"}
_WHERE_HEADS = {"country", "countries", "city", "cities", "town", "state", "place", "region", "continent",
                "location", "province", "county", "island", "river", "area", "village", "capital", "nation"}
_NUMBER_HEADS = {"percentage", "percent", "number", "amount", "proportion", "share", "size", "population",
                 "age", "length", "distance", "height", "weight", "temperature"}
_MONEY_HEADS = {"price", "cost", "fee", "salary", "budget", "revenue", "value"}
_MONEY_WORDS = {"cost", "costs", "price", "pay", "paid", "worth", "spend", "spent", "money", "charge", "charged"}
_AUX = {"is", "was", "are", "were", "do", "does", "did", "has", "have", "had", "will", "would", "can", "could"}
_HOW_NUMBER = {"many", "long", "old", "far", "big", "large", "tall", "high", "deep", "often", "fast", "heavy", "wide"}


def asks_what_a_name_is(question: str) -> bool:
    """"Who is John Kirby?" asks what he is: the answer describes him ("White House spokesperson"),
    so the sentence that says so comes first and another name is no short answer."""
    m = re.match(r"^\W*who(?:'s|’s| is| was| are| were)\s+(.+?)[\s?!.]*$", question.strip(), re.IGNORECASE)
    if not m:
        return False
    words = m.group(1).split()
    if question.islower():
        # typed in lower case ("who is john kirby"): a name is a few words that aren't grammar,
        # or one word the English vocabulary lacks ("who is umerov")
        return (all(w not in ENGLISH_FUNCTION_WORDS for w in words)
                and (2 <= len(words) <= 4 or len(words) == 1 and words[0] not in english_words()))
    return all(w[:1].isupper() or w.lower() in ("of", "the", "de", "van", "von", "bin", "al") for w in words)


def question_type(question: str) -> tuple[str, str]:
    """(type, head word): the type comes from the first question word, so a " when " later in
    "What happened when ...?" keeps it a "what" question; the head is the noun after
    "what"/"which"/"how many" ("year" in "In what year ...")."""
    words = [w.lower() for w in _WORD.findall(question)]
    idx = next((i for i, w in enumerate(words) if w in _WH), None)
    if idx is None:
        return "other", ""
    wh, rest = words[idx], words[idx + 1:]
    nxt = rest[0] if rest else ""
    if wh == "when":
        return "when", ""
    if wh == "where":
        return "where", ""
    if wh in ("who", "whom", "whose"):
        return ("other" if asks_what_a_name_is(question) else "who"), ""
    if wh == "why":
        return "other", ""
    if wh == "how":
        if nxt == "much":
            money = any(w in _MONEY_WORDS for w in rest) or "$" in question
            return ("money" if money else "number"), _head(rest[1:])
        if nxt in _HOW_NUMBER:
            return "number", _head(rest[1:]) if nxt == "many" else nxt
        return "other", ""
    if wh == "what" and words[-1] == "for" and nxt in _AUX:
        return "other", ""  # "What are the mines for?" asks a purpose, as "why" does
    # what / which: typed by the noun that follows ("what year", "which country")
    head = _head(rest)
    if head in _WHEN_HEADS:
        return "when", head
    if head in _WHERE_HEADS:
        return "where", head
    if head in _NUMBER_HEADS:
        return "number", head
    if head in _MONEY_HEADS:
        return "money", head
    if not head:
        return "other", ""  # "What did Trump say?": a sentence answers it, not a span
    return "what", head


def _head(rest: list[str]) -> str:
    """The first content word of what follows the question word ("kind of" skipped)."""
    for w in rest[:4]:
        if w in ("kind", "type", "sort", "of", "the", "a", "an"):
            continue
        return "" if w in _AUX else w
    return ""


# ---- candidate spans ---------------------------------------------------------------------
_MONTH = rf"(?:{'|'.join(m.capitalize() for m in MONTHS)}|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
_DAYNAME = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_PART = r"(?:early|mid|late)(?:-to-(?:early|mid|late))?"
_ORD_WORDS = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty-first)"
_ERA = r"(?:\s?(?:BC|BCE|AD|CE|B\.C\.|A\.D\.)(?![\w]))"
_YEAR = r"\d{3,4}"
_DATE = re.compile(
    "|".join([
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?\b",  # ISO
        rf"\b(?:{_PART}[- ])?{_MONTH}(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? {_YEAR})?\b",
        rf"\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH}(?:,? {_YEAR})?\b",
        rf"\b(?:(?:the )?(?:early|mid|late)[- ])?(?:\d{{1,2}}(?:st|nd|rd|th)|{_ORD_WORDS}) (?:century|millennium){_ERA}?",
        r"\b(?:the )?(?:early |mid-|mid |late )?\d{2,4}0s\b",
        rf"\b(?:{_YEAR}{_ERA}|\d{{1,2}}{_ERA}|{_YEAR})(?:\s?(?:–|-|—|to|and)\s?{_YEAR}{_ERA}?)?\b",
        r"\b\d{1,2}(?::\d{2})?\s?(?:a\.m\.|p\.m\.|am|pm)(?![\w])|\b\d{1,2}:\d{2}\b|\b(?:noon|midnight)\b",
        rf"\b{_DAYNAME}\b",
        r"\b(?:yesterday|today|tomorrow)\b",
        r"\b(?:a|one|two|three|four|five|several) (?:day|week|month|year|decade)s? (?:later|earlier|ago|after|before)\b",
    ]),
)
_NUM_WORD = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
             r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
             r"thousand|million|billion|trillion|dozen|dozens|hundreds|thousands|millions|billions|single|half|"
             r"double|twice|triple|once|several|a dozen|a hundred|a thousand|a million|a couple)")
_SCALE = r"(?:hundred|thousand|million|billion|trillion|m|bn|k)"
_UNIT = (r"(?:%|per ?cent|percent|percentage points?|km|kilometres?|kilometers?|miles?|metres?|meters?|m|cm|mm|feet|ft|"
         r"foot|inches|inch|kg|kilograms?|g|grams?|tonnes?|tons?|pounds?|lbs?|acres?|hectares?|square \w+|"
         r"degrees?(?: \w+)?|°[CF]?|years?|months?|weeks?|days?|hours?|minutes?|seconds?|times|people|members|votes)")
_MOD = (r"(?:about|around|approximately|roughly|nearly|almost|some|over|under|more than|less than|fewer than|"
        r"up to|as many as|as much as|at least|at most|only|just|estimated|an estimated|a total of)")
_NUMBER = re.compile(
    rf"\b(?:{_MOD} )?(?:\d[\d,]*(?:\.\d+)?|\.\d+|{_NUM_WORD}(?:[- ]{_NUM_WORD})*)\b"
    rf"(?:(?: |-)?{_SCALE}\b)?(?:(?: |-)?{_UNIT}(?![\w]))?",
    re.IGNORECASE,
)
_MONEY = re.compile(
    rf"(?:(?<![\w$])(?:US|A|C|NZ|HK)?[$£€¥₹]\s?\d[\d,]*(?:\.\d+)?(?:\s?{_SCALE}\b)?"
    rf"|\b\d[\d,]*(?:\.\d+)?(?:\s{_SCALE})?\s(?:dollars|pounds|euros|yen|yuan|rupees|francs|marks|cents|pence|USD|GBP|EUR)\b)",
)
_UP = "A-ZÀ-ÖØ-Þ"
_CAP = rf"(?:[{_UP}][\w'’\-]*|[{_UP}]\.(?:[{_UP}]\.)*|\d+(?:st|nd|rd|th)?)"
_CONNECT = rf"(?: (?:of|of the|de|del|da|di|du|van|von|der|den|la|le|al|bin|for|for the|upon|y)(?= [{_UP}]))"
_PROPER = re.compile(rf"\b(?:[Tt]he )?[{_UP}][\w'’\-]*(?:\.)?(?:(?:{_CONNECT})? {_CAP})*")
_LOC_PREP = {"in", "at", "to", "from", "near", "into", "inside", "across", "outside", "throughout", "within"}
_PREPS = ("in", "at", "on", "to", "from", "by", "of", "during", "since", "until", "for", "with", "near", "into")


@dataclass(frozen=True)
class Candidate:
    text: str
    start: int
    end: int
    kind: str


def candidates(text: str) -> list[Candidate]:
    """Every date, number, amount and proper-noun phrase in ``text``; a span found as a date or
    an amount is not also offered as a bare number."""
    found: list[Candidate] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, a: int, b: int) -> None:
        span = text[a:b].strip(" ,;:")
        if not span:
            return
        a = text.index(span, a)
        b = a + len(span)
        span, b = _trim(span, b)
        if not span or any(x < b and a < y and kind in ("number", "proper") for x, y in taken):
            return
        found.append(Candidate(span, a, b, kind))
        if kind in ("date", "money"):
            taken.append((a, b))

    for m in _DATE.finditer(text):
        if _is_year_like(text, m):
            add("date", m.start(), m.end())
    for m in _MONEY.finditer(text):
        add("money", m.start(), m.end())
    for m in _NUMBER.finditer(text):
        add("number", m.start(), m.end())
    propers = []
    for m in _PROPER.finditer(text):
        a, b = m.span()
        span = m.group(0)
        if re.fullmatch(r"(?:[Tt]he )?(?:[A-Z][a-z]{0,2}\.?)", span):
            continue  # "A", "The", "Mr" alone
        add("proper", a, b)
        propers.append((a, b))
    for (a, b), (c, d) in zip(propers, propers[1:]):
        # "Houston, Texas": a place and the larger place it lies in, as one answer (a list's
        # first two items look the same: the "comma_joined" feature lets the model tell)
        if text[b:c] == ", " and not re.match(r",? (?:and|or)\b", text[d:d + 6]):
            add("proper", a, d)
    return found


def _trim(span: str, end: int) -> tuple[str, int]:
    """Drop a trailing possessive or dot: "Kirby's" -> "Kirby"."""
    for tail in ("'s", "’s", "."):
        if span.endswith(tail) and len(span) > len(tail) + 1 and not re.search(r"\b[A-Z]\.$|\b(?:a\.m|p\.m|A\.D|B\.C)\.$", span):
            span, end = span[: -len(tail)], end - len(tail)
    return span, end


def _is_year_like(text: str, m: re.Match) -> bool:
    """A bare three- or four-digit number counts as a date only where it reads as a year."""
    s = m.group(0)
    if not re.fullmatch(r"\d{3,4}", s):
        return True
    value = int(s)
    before = text[max(0, m.start() - 12):m.start()].lower()
    after = text[m.end():m.end() + 3]
    if after[:1] in ("%",) or re.match(r"[.,]\d", after):
        return False
    if re.search(r"\b(?:in|since|by|until|till|from|of|year|circa|c\.|before|after|around|early|late|mid)\s*$", before):
        return True
    return 1000 <= value <= 2100


# ---- features ----------------------------------------------------------------------------
@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    return _STEM.stemWord(word.lower())


def _content(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text) if w.lower() not in _STOP]


def _tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), _stem(m.group(0))) for m in _WORD.finditer(text)]


def feature_names() -> list[str]:
    names = [f"q={q}&k={k}" for q in QTYPES for k in KINDS]
    names += [f"q={q}&locprep" for q in QTYPES] + [f"q={q}&multiword" for q in QTYPES]
    names += [f"prep={p}" for p in _PREPS]
    names += ["overlap", "all_in_question", "some_in_question", "log_dist", "no_anchor", "nearest_of_kind",
              "anchor_share", "log_len", "sentence_start", "head_next", "head_inside", "same_kind_count",
              "has_digit", "the_prefix", "after_anchor", "in_parens", "anchor_right_after", "anchor_right_before",
              "lower_first", "modifies_next_name", "after_name_and_role", "anchors_before_4", "anchors_after_4", "comma_joined"]
    names += [f"q={q}&{f}" for q in QTYPES for f in _PER_TYPE]
    return names + ["bias"]


# Generic features that also get a copy per question type, so "who" can weigh them its own way.
_PER_TYPE = ("the_prefix", "log_dist", "after_anchor", "anchor_right_after", "anchor_right_before",
             "log_len", "sentence_start", "overlap", "some_in_question", "all_in_question",
             "modifies_next_name", "after_name_and_role", "anchors_before_4", "anchors_after_4", "comma_joined")


def features(question: str, qtype: str, head: str, text: str, cands: list[Candidate]) -> list[list[float]]:
    """One feature vector per candidate (see :func:`feature_names`)."""
    qstems = set(_content(question))
    toks = _tokens(text)
    anchors = [i for i, (_a, _b, s) in enumerate(toks) if s in qstems]
    head_stem = _stem(head) if head else ""
    spans_tok = []
    for c in cands:
        idx = [i for i, (a, b, _s) in enumerate(toks) if a >= c.start and b <= c.end]
        spans_tok.append((idx[0], idx[-1]) if idx else (0, 0))
    dists = []
    for lo, hi in spans_tok:
        outside = [i for i in anchors if i < lo or i > hi]
        dists.append(min((lo - i if i < lo else i - hi) for i in outside) if outside else None)
    kind_counts: dict[str, int] = {}
    for c in cands:
        kind_counts[c.kind] = kind_counts.get(c.kind, 0) + 1
    best_of_kind: dict[str, int] = {}
    for j, c in enumerate(cands):
        d = dists[j] if dists[j] is not None else 999
        if c.kind not in best_of_kind or d < (dists[best_of_kind[c.kind]] or 999):
            best_of_kind[c.kind] = j
    rows = []
    names = feature_names()
    pos = {n: i for i, n in enumerate(names)}
    for j, c in enumerate(cands):
        lo, hi = spans_tok[j]
        v = [0.0] * len(names)
        v[pos[f"q={qtype}&k={c.kind}"]] = 1.0
        words = _content(c.text)
        inq = sum(w in qstems for w in words)
        before = text[:c.start].rstrip().lower()
        prev = re.findall(r"[a-z]+$", before)
        prev_word = prev[0] if prev else ""
        if prev_word in _LOC_PREP and c.kind == "proper":
            v[pos[f"q={qtype}&locprep"]] = 1.0
        if len(c.text.split()) > 1 and c.kind == "proper":
            v[pos[f"q={qtype}&multiword"]] = 1.0
        if prev_word in _PREPS:
            v[pos[f"prep={prev_word}"]] = 1.0
        v[pos["overlap"]] = inq / len(words) if words else 0.0
        v[pos["all_in_question"]] = float(bool(words) and inq == len(words))
        v[pos["some_in_question"]] = float(0 < inq < len(words))
        d = dists[j]
        v[pos["log_dist"]] = math.log1p(d) if d is not None else math.log1p(30)
        v[pos["no_anchor"]] = float(d is None)
        v[pos["nearest_of_kind"]] = float(best_of_kind.get(c.kind) == j)
        v[pos["anchor_share"]] = len({toks[i][2] for i in anchors}) / len(qstems) if qstems else 0.0
        v[pos["log_len"]] = math.log1p(len(c.text.split()))
        v[pos["sentence_start"]] = float(c.start == 0)
        if head_stem:
            after = [s for _a, _b, s in toks[spans_tok[j][1] + 1: spans_tok[j][1] + 4]]
            v[pos["head_next"]] = float(head_stem in after)
            v[pos["head_inside"]] = float(head_stem in words)
        v[pos["same_kind_count"]] = math.log1p(kind_counts[c.kind] - 1)
        v[pos["has_digit"]] = float(any(ch.isdigit() for ch in c.text))
        v[pos["the_prefix"]] = float(c.text.lower().startswith("the "))
        v[pos["after_anchor"]] = float(any(i < spans_tok[j][0] for i in anchors))
        v[pos["in_parens"]] = float(before.endswith("("))
        v[pos["anchor_right_after"]] = float(any(hi < i <= hi + 2 for i in anchors))
        v[pos["anchor_right_before"]] = float(any(lo - 2 <= i < lo for i in anchors))
        v[pos["lower_first"]] = float(c.text[:1].islower())
        # "White House spokesperson John Kirby": the first name qualifies the second, which is who.
        propers = [k for k in cands if k.kind == "proper"]
        v[pos["modifies_next_name"]] = float(c.kind == "proper" and any(
            k.start > c.end and re.fullmatch(r" (?:[a-z][\w\-]*(?: of)? ){1,3}", text[c.end:k.start]) for k in propers))
        v[pos["after_name_and_role"]] = float(c.kind == "proper" and any(
            k.end < c.start and re.fullmatch(r" (?:[a-z][\w\-]*(?: of)? ){1,3}", text[k.end:c.start]) for k in propers))
        v[pos["comma_joined"]] = float(c.kind == "proper" and ", " in c.text)
        qn = max(1, len(qstems))
        v[pos["anchors_before_4"]] = len({toks[i][2] for i in anchors if lo - 4 <= i < lo}) / qn
        v[pos["anchors_after_4"]] = len({toks[i][2] for i in anchors if hi < i <= hi + 4}) / qn
        for f in _PER_TYPE:
            v[pos[f"q={qtype}&{f}"]] = v[pos[f]]
        v[pos["bias"]] = 1.0
        rows.append(v)
    return rows


# ---- the model ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_model(path: str = str(MODEL_PATH)) -> dict:
    raw = Path(path).read_bytes()
    recorded = Path(path).with_suffix(".sha256")
    if recorded.is_file() and recorded.read_text().split()[0] != hashlib.sha256(raw).hexdigest():
        raise ValueError(f"{path}: sha256 differs from {recorded.name}; rerun bench/train_spans.py")
    data = json.loads(raw.decode("utf-8"))
    if data.get("features") != feature_names():
        raise ValueError(f"{path}: its features do not match this code; rerun bench/train_spans.py")
    return data


def score(v: list[float], model: dict) -> float:
    z = sum(w * x for w, x in zip(model["weights"], v))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def best_span(question: str, text: str, given: str = "", model: dict | None = None) -> tuple[Candidate | None, float, str]:
    """(the most likely answer span or None, its probability, the question type). ``given`` is
    what the conversation already said: a span it names is not a new answer."""
    qtype, head = question_type(question)
    if qtype == "other":
        return None, 0.0, qtype
    cands = candidates(text)
    if given:
        said = {w.lower() for w in _WORD.findall(given)}
        cands = [c for c in cands if not all(w.lower() in said for w in _WORD.findall(c.text))]
    if not cands:
        return None, 0.0, qtype
    model = model or load_model()
    rows = features(question, qtype, head, text, cands)
    probs = [score(v, model) for v in rows]
    j = max(range(len(cands)), key=lambda i: probs[i])
    return cands[j], probs[j], qtype


def short_answer(question: str, text: str, given: str = "") -> tuple[str, tuple[int, int] | None]:
    """The short answer and its span in ``text``, or ("", None) when no span is sure enough."""
    model = load_model()
    cand, p, qtype = best_span(question, text, given, model)
    threshold = model["thresholds"].get(qtype, model["thresholds"]["default"])
    if cand is None or p < threshold:
        return "", None
    return cand.text, (cand.start, cand.end)
