"""Rebuild bench/data/segmentation.jsonl, the labelled set bench/segmenters.py scores against.

Four sources, each item one paragraph:
- ``briefing``: the briefing's paragraphs, split as tests/test_segment.py's EXPECTED_SENTENCES
  (checked by reading);
- ``tricky``: hand-written cases: abbreviations, initials, single capitals ending a sentence,
  decimals, money, times, quotes, lists; some come from the issue and from errors seen while
  labelling the BBC sample (so they are not blind to the rules added for them);
- ``bbc``: 15 BBC articles (random, seed 7) labelled by adjudication: every cut that pysbd (as
  briefbot used it) or sentencex made was read; the wrong ones are listed in WRONG_CUTS below, a
  cut neither made would be missed (none were seen when reading the 15 articles, but they were
  not re-read word by word);
- ``squad``: qa-train val SQuAD paragraphs; only the edges of the questions' answer-sentence
  hints are labelled (``boundaries``: a sentence must start there), so they score recall only.

    python bench/data/build_segmentation.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from corpus import BRIEFING, SHARED, bbc_articles  # noqa: E402

from bot.ingest.loaders import normalize_text  # noqa: E402

OUT = Path(__file__).with_name("segmentation.jsonl")
BBC_SEED, BBC_COUNT = 7, 15
# Per BBC paragraph index: cut offsets (end of the sentence before) that one segmenter made
# and reading showed wrong; all other cuts either made are sentence ends.
WRONG_CUTS = {197: {521, 531, 544, 946, 1503}, 1776: {1210}}
# Adjudicated cut sets (union of both segmenters' cuts per article, before removing WRONG_CUTS).
BBC_CUTS_FILE = Path(__file__).with_name("segmentation_bbc_cuts.json")

TRICKY = [
    ["The work was complete for C.", "This means the next phase can start."],
    ["Take vitamin D.", "Not only does it help bones, it helps mood."],
    ["The plan has three options: A, B and C.", "We chose B."],
    ["Grade the answers from A to F.", "F means fail."],
    ["He met J. R. R. Tolkien in Oxford.", "Then he left."],
    ["Lloyd J. Austin called on Tuesday.", "Rustem Umerov answered."],
    ["Lloyd J Austin called.", "Lloyd J. Austin wrote back."],
    ["George W. Bush spoke first."],
    ["Mr. Biden spoke.", "Mrs. Smith and Dr. Jones listened."],
    ["Mr Biden spoke.", "Ms Harris left."],
    ["Gen. Smith and Sen. Jones met in St. Louis on Friday."],
    ["Prof. Adams of the Univ. of Leeds disagreed."],
    ["The U.S. Army left.", "The U.K. stayed."],
    ["Troops from the U.S. arrived on Monday.", "More came later."],
    ["He works at Apple Inc. in Cupertino."],
    ["Shares in Acme Corp. rose.", "Rivals fell."],
    ["Some tools, e.g. drones and mines, were used.", "Others, i.e. tanks, were not."],
    ["Bring pens, paper, etc. to the meeting.", "It starts soon."],
    ["The depot was 3.5 km inside Russia.", "It burned."],
    ["Prices rose 2.5% to $3.50.", "Then they fell."],
    ["It cost £5.2bn in 2004.", "Critics said it was too much."],
    ["See section 4.2 for details.", "It explains the rules."],
    ["Version 2.0.1 fixed it.", "Version 3 broke it again."],
    ["They arrived at 10 a.m.", "The meeting began."],
    ["Talks ended at 5 p.m. on Friday.", "They resume today."],
    ["The meeting is at 9.30am.", "Be on time."],
    ["He was born in 1990.", "In 2000 he moved."],
    ["The score was 2-1.", "Arsenal won."],
    ["No. 10 Downing St. is in London.", "It is old."],
    ["Visit www.bbc.co.uk for more.", "It is free."],
    ['The aide said: "Ukraine is authorised."', "Mr Biden agreed."],
    ["He called it “unacceptable.”", "Officials disagreed."],
    ['"It is over," he said.', '"We go home now."'],
    ['"It is over," he said.', '"We go home now," she replied.', "They left."],
    ["He said: “We won.”", "“They lost.”"],
    ['She told the BBC: "I am delighted.', 'It has been a long year."'],
    ["The report was called 'a disgrace'.", "Ministers rejected it."],
    ["Is it true?", "Yes!", "It is."],
    ["What next?", "Nobody knows."],
    ["Wait...", "Then it happened."],
    ["1. Open the valve.", "2. Close the door."],
    ["a) Check the pump.", "b) Log the reading."],
    ["- First item.", "- Second item."],
    ["Step 1: unplug the unit.", "Step 2: wait ten seconds."],
    ["The film Salaam Bombay! was a hit.", "Nair made it."],
    ["The virus is called Bagle.AT and spreads by e-mail.", "It is new."],
    ["Yahoo! shares rose.", "Google's fell."],
    ["The band's album, 'Hello.', sold well."],
    ["It happened in Jan. 2005 in Washington D.C.", "Nobody was hurt."],
    ["The vote was 52 vs. 48.", "It passed."],
]


def sentence_starts(text: str, sentences: list[str]) -> list[int]:
    starts, pos = [], 0
    for s in sentences:
        found = text.index(s, pos)
        starts.append(found)
        pos = found + len(s)
    return starts[1:]


def items() -> list[dict]:
    out = []
    sys.path.insert(0, str(ROOT / "tests"))
    from test_segment import EXPECTED_SENTENCES  # noqa: E402  (checked by reading)

    text = normalize_text(BRIEFING.read_text(encoding="utf-8"))
    expected = iter(EXPECTED_SENTENCES)
    pending = next(expected)
    for n, line in enumerate(l.strip() for l in text.split("\n")):
        sentences = []
        while pending is not None and line.startswith(" ".join([*sentences, pending]).strip()):
            sentences.append(pending)
            pending = next(expected, None)
            if " ".join(sentences) == line:
                break
        if sentences and " ".join(sentences) == line:
            out.append({"id": f"briefing-{n}", "source": "briefing", "text": line, "sentences": sentences})

    for n, sentences in enumerate(TRICKY):
        out.append({"id": f"tricky-{n}", "source": "tricky", "text": " ".join(sentences), "sentences": sentences})

    paras = [normalize_text(raw).strip() for _, raw in bbc_articles()]
    cuts = {int(k): v for k, v in json.loads(BBC_CUTS_FILE.read_text()).items()}
    for i in random.Random(BBC_SEED).sample(range(len(paras)), BBC_COUNT):
        p = paras[i]
        ends = sorted(set(cuts[i]) - WRONG_CUTS.get(i, set()))
        bounds = [0, *ends, len(p)]
        sentences = [p[a:b].strip() for a, b in zip(bounds, bounds[1:]) if p[a:b].strip()]
        out.append({"id": f"bbc-{i}", "source": "bbc", "text": p, "sentences": sentences})

    passages = {}
    for line in open(SHARED / "qa-train" / "passages.jsonl", encoding="utf-8"):
        p = json.loads(line)
        if p["dataset"] == "squad2" and p["split"] == "val":
            passages[p["id"]] = p["text"]
    edges: dict[str, set[int]] = {}
    for line in open(SHARED / "qa-train" / "questions.jsonl", encoding="utf-8"):
        q = json.loads(line)
        hint = q.get("answer_sentence_hint")
        if q["passage_id"] not in passages or not hint:
            continue
        text = passages[q["passage_id"]]
        at = text.find(hint)
        if at < 0:
            continue
        e = edges.setdefault(q["passage_id"], set())
        if at > 0:
            e.add(at)
        after = at + len(hint)
        while after < len(text) and text[after].isspace():
            after += 1
        if after < len(text):
            e.add(after)
    for pid, e in sorted(edges.items()):
        if e:
            out.append({"id": pid, "source": "squad", "text": passages[pid], "boundaries": sorted(e)})
    for item in out:
        if "sentences" in item:
            item["boundaries"] = sentence_starts(item["text"], item["sentences"])
    return out


if __name__ == "__main__":
    rows = items()
    with open(OUT, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {}
    for row in rows:
        counts[row["source"]] = counts.get(row["source"], 0) + 1
    print(json.dumps({"items": len(rows), **counts}))
