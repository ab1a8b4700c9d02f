"""Sentence segmenters compared: accuracy on bench/data/segmentation.jsonl, speed on the BBC corpus.

Every segmenter gives cut points in one paragraph; a cut counts where the next sentence starts
(whitespace skipped). Fully labelled items (briefing, tricky, BBC sample) give precision, recall,
F1 and the share of paragraphs split exactly right; SQuAD items only label the edges of answer
hints, so they give recall. Speed: every paragraph of the 2,225 BBC articles (normalized as the
build does), one pass each, in one process, the same run.

    pip install pysbd blingfire syntok nltk     # the alternatives (sentencex is a dependency)
    python bench/segmenters.py --out bench/results/segmenters.json
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import base_parser, emit, log, machine_info  # noqa: E402
from bench.corpus import bbc_articles  # noqa: E402
from bot.ingest.loaders import normalize_text  # noqa: E402
from bot.ingest.sentences import sentence_ends  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "segmentation.jsonl"


def _from_pieces(text: str, pieces) -> list[int]:
    """Cut points for pieces found in order (segmenters that return strings)."""
    cuts, pos = [], 0
    for piece in pieces:
        piece = piece.strip()
        found = text.find(piece, pos) if piece else -1
        if found >= 0:
            pos = found + len(piece)
            cuts.append(pos)
    return cuts


def pysbd_raw():
    import pysbd

    seg = pysbd.Segmenter(language="en", clean=False)
    return lambda text: _from_pieces(text, seg.segment(text))


def pysbd_before():
    """pysbd as briefbot used it until now: chunked at safe breaks, overlong pieces re-cut."""
    import pysbd
    from pysbd.lang.english import English

    seg = pysbd.Segmenter(language="en", clean=False)
    safe = re.compile(r"(?<![^\s(\"“‘'])[a-z]{3,}[.!?][\"”’')]*\s+(?=[\"“‘(]?[A-Z])")
    gap = re.compile(r"(?<=\w)([.!?])[\"”’')]*\s+(?=[\"“‘(]?[A-Z]|[-–—•*] )")
    abbreviations = {a.strip().lower() for a in English.Abbreviation.ABBREVIATIONS
                     + English.Abbreviation.PREPOSITIVE_ABBREVIATIONS}

    def chunks(p):
        if len(p) <= 4000:
            return [p]
        out, start, last = [], 0, 0
        for m in safe.finditer(p):
            if m.end() - start > 4000 and last > start:
                out.append(p[start:last])
                start = last
            last = m.end()
        return [*out, p[start:]]

    def resplit(piece):
        if len(piece) <= 300:
            return [piece]
        ends = []
        for m in gap.finditer(piece):
            if m.group(1) == ".":
                word = re.search(r"\S*$", piece[max(0, m.start() - 40) : m.start()]).group().lstrip("\"“‘'([")
                if len(word) < 2 or "." in word or word.lower() in abbreviations:
                    continue
            if m.end() < len(piece):
                ends.append(m.end())
        return [piece[a:b] for a, b in zip([0, *ends], [*ends, len(piece)])]

    def split(text):
        pieces = []
        for chunk in chunks(text):
            try:
                found = seg.processor(chunk).process()
            except Exception:
                found = [chunk]
            for piece in found:
                pieces.extend(resplit(piece))
        cuts = _from_pieces(text, pieces)
        closer = re.compile(r"\s*[\"”’']+(?=\s|$)")  # its stray-closing-quote repair
        return [m.end() if (m := closer.match(text, c)) else c for c in cuts]

    return split


def sentencex_raw():
    import sentencex

    return lambda text: [b["end_index"] for b in sentencex.get_sentence_boundaries("en", text)]


def blingfire_raw():
    import blingfire

    return lambda text: [e for _, e in blingfire.text_to_sentences_and_offsets(text)[1]] if text.strip() else []


def syntok_raw():
    import syntok.segmenter as syntok

    def split(text):
        cuts = []
        for paragraph in syntok.analyze(text):
            for sentence in paragraph:
                cuts.append(sentence[-1].offset + len(sentence[-1].value))
        return cuts

    return split


def punkt_trained(exclude: set[int]):
    """NLTK Punkt trained (unsupervised) on the BBC articles outside the labelled sample."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    trainer = PunktTrainer()
    trainer.INCLUDE_ALL_COLLOCS = True
    for i, (_, raw) in enumerate(bbc_articles()):
        if i not in exclude:
            trainer.train(normalize_text(raw), finalize=False)
    trainer.finalize_training()
    tok = PunktSentenceTokenizer(trainer.get_params())
    return lambda text: [e for _, e in tok.span_tokenize(text)]


def starts(text: str, cuts) -> set[int]:
    out = set()
    for c in cuts:
        while c < len(text) and text[c].isspace():
            c += 1
        if 0 < c < len(text):
            out.add(c)
    return out


def score(split, items) -> dict:
    by_source: dict[str, dict] = {}
    for item in items:
        s = by_source.setdefault(item["source"], {"tp": 0, "fp": 0, "fn": 0, "exact": 0, "items": 0})
        got, gold = starts(item["text"], split(item["text"])), set(item["boundaries"])
        s["items"] += 1
        s["tp"] += len(got & gold)
        s["fn"] += len(gold - got)
        if "sentences" in item:
            s["fp"] += len(got - gold)
            s["exact"] += got == gold
    out = {}
    full = {"tp": 0, "fp": 0, "fn": 0, "exact": 0, "items": 0}
    for source, s in by_source.items():
        r = s["tp"] / max(1, s["tp"] + s["fn"])
        if source == "squad":
            out[source] = {"recall": round(r, 4), "edges": s["tp"] + s["fn"], "missed": s["fn"]}
            continue
        for k in full:
            full[k] += s[k]
        p = s["tp"] / max(1, s["tp"] + s["fp"])
        out[source] = {"precision": round(p, 4), "recall": round(r, 4), "exact": f"{s['exact']}/{s['items']}",
                       "fp": s["fp"], "fn": s["fn"]}
    p = full["tp"] / max(1, full["tp"] + full["fp"])
    r = full["tp"] / max(1, full["tp"] + full["fn"])
    out["labelled"] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(1e-9, p + r), 4),
                       "exact": round(full["exact"] / full["items"], 4), "errors": full["fp"] + full["fn"]}
    return out


def main() -> None:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=[], help="segmenters to leave out")
    args = ap.parse_args()
    items = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    sample = {int(i["id"].split("-")[1]) for i in items if i["source"] == "bbc"}
    articles = bbc_articles()[: args.articles] if args.articles else bbc_articles()
    paragraphs = [line.strip() for _, raw in articles for line in normalize_text(raw).split("\n") if line.strip()]
    result = {"machine": machine_info(), "items": len(items), "paragraphs": len(paragraphs),
              "characters": sum(map(len, paragraphs)), "segmenters": {}}
    makers = {
        "sentencex + briefbot rules (chosen)": lambda: sentence_ends,
        "sentencex": sentencex_raw,
        "pysbd as briefbot used it (before)": pysbd_before,
        "pysbd": pysbd_raw,
        "blingfire": blingfire_raw,
        "syntok": syntok_raw,
        "nltk punkt trained on BBC": lambda: punkt_trained(sample),
    }
    for name, make in makers.items():
        if name in args.skip:
            continue
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            split = make()
        except ImportError as exc:
            result["segmenters"][name] = {"skipped": str(exc)}
            continue
        entry = {"setup_s": round(time.perf_counter() - t0, 2), **score(split, items)}
        t0, c0 = time.perf_counter(), time.process_time()
        for p in paragraphs:
            split(p)
        entry["bbc_seconds"] = round(time.perf_counter() - t0, 2)
        entry["bbc_cpu_seconds"] = round(time.process_time() - c0, 2)
        result["segmenters"][name] = entry
        log(f"  {json.dumps(entry)}")
    base = result["segmenters"].get("pysbd as briefbot used it (before)", {}).get("bbc_seconds")
    for entry in result["segmenters"].values():
        if base and entry.get("bbc_seconds"):
            entry["speedup_vs_before"] = round(base / entry["bbc_seconds"], 1)
    result["machine"]["loadavg_end"] = list(__import__("os").getloadavg())
    emit(result, args.out)


if __name__ == "__main__":
    main()
