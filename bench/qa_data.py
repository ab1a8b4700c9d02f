"""The retrieval setting for ../shared/qa-train: many passages indexed together as documents.

Used by bench/train_ranker.py (train split) and bench/quality.py (val split). A sample of
passages is written as .txt documents into a scratch folder and indexed with briefbot's own
build pipeline and encoder, so a question meets distractors from every other document. A share
of the sampled passages is *held out* (not indexed): their questions are "not covered at all"
and count as unanswerable. The data stays out of the package (research-only licenses).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QA_DIR = ROOT.parent / "shared" / "qa-train"
BBC_DIR = ROOT.parent / "shared" / "corpora" / "bbc-news"
SENTENCE_SETS = ("wikiqa", "trecqa", "selqa_ass")
TITLED = ("wikiqa", "squad2", "selqa_ass")  # titles that name the subject (Wikipedia articles)


@dataclass
class QASet:
    passages: dict[str, dict]  # id -> passage row, with "doc" (file name) when indexed
    questions: list[dict]  # each with "indexed" (its passage is in the index) and "article_indexed" (its article is)
    held_out: set[str] = field(default_factory=set)


def load(split: str) -> tuple[dict[str, dict], list[dict]]:
    passages = {}
    with open(QA_DIR / "passages.jsonl", encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            if p["split"] == split:
                passages[p["id"]] = p
    with open(QA_DIR / "questions.jsonl", encoding="utf-8") as f:
        questions = [q for q in map(json.loads, f) if q["split"] == split and q["passage_id"] in passages]
    return passages, questions


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "passage"


def document_text(p: dict) -> str:
    body = p["text"].split("\n") if p["dataset"] in SENTENCE_SETS else [" ".join(p["text"].split())]
    lines = [ln.strip() for ln in body if ln.strip()]
    title = (p.get("title") or "").strip()
    if p["dataset"] in TITLED and title:
        lines.insert(0, title.replace("/", " ").strip())
    return "\n".join(lines) + "\n"


def article_of(p: dict) -> tuple[str, str]:
    """The article (or reviewed item) a passage comes from: a held-out SQuAD paragraph whose
    article has other paragraphs indexed is "same topic, no answer", not "not covered at all"."""
    title = (p.get("title") or "").strip()
    if p["dataset"] in ("squad2", "wikiqa", "subjqa") and title:
        return p["dataset"], title
    if p["dataset"] == "selqa_ass" and title:
        return p["dataset"], title.split(" / ")[0]
    return p["dataset"], p["id"]  # RealTimeQA (title = source and date) and TrecQA: one passage, one article


def sample(split: str, per_dataset: dict[str, int], held_out_share: float, seed: int,
           max_questions: dict[str, int] | None = None) -> QASet:
    """``per_dataset`` passages of each dataset, ``held_out_share`` of them left out of the index."""
    passages, questions = load(split)
    rng = random.Random(seed)
    by_ds: dict[str, list[str]] = {}
    for pid in sorted(passages):
        by_ds.setdefault(passages[pid]["dataset"], []).append(pid)
    chosen: dict[str, dict] = {}
    held: set[str] = set()
    for ds, ids in sorted(by_ds.items()):
        rng.shuffle(ids)
        take = ids[: per_dataset.get(ds, 0)]
        n_held = int(round(len(take) * held_out_share))
        held.update(take[:n_held])
        for i, pid in enumerate(take):
            p = dict(passages[pid])
            p["doc"] = f"{ds}-{i:04d}-{_slug(p.get('title') or ds)}.txt"
            chosen[pid] = p
    indexed_articles = {article_of(passages[pid]) for pid in chosen if pid not in held}
    qs = [dict(q, indexed=q["passage_id"] not in held, article_indexed=article_of(passages[q["passage_id"]]) in indexed_articles)
          for q in questions if q["passage_id"] in chosen]
    if max_questions:
        rng.shuffle(qs)
        kept, count = [], {}
        for q in qs:
            if count.get(q["dataset"], 0) < max_questions.get(q["dataset"], 10**9):
                count[q["dataset"]] = count.get(q["dataset"], 0) + 1
                kept.append(q)
        qs = sorted(kept, key=lambda q: q["id"])
    return QASet(chosen, qs, held)


def write_documents(qa: QASet, folder: Path, bbc_articles: int = 0, seed: int = 0) -> int:
    """Write the indexed passages (and optionally BBC articles as distractors) as .txt files."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for pid, p in qa.passages.items():
        if pid not in qa.held_out:
            wanted[p["doc"]] = document_text(p)
    if bbc_articles and BBC_DIR.is_dir():
        from bench.corpus import bbc_articles as all_bbc

        articles = all_bbc()
        random.Random(seed).shuffle(articles)
        for name, text in articles[:bbc_articles]:
            wanted[name] = text
    for old in folder.glob("*.txt"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return len(wanted)


def is_answer_sentence(q: dict, passage_doc: str, doc: str, sentence: str) -> bool:
    """Whether an indexed sentence is (one of) the gold answer sentence(s) of ``q``."""
    if not q.get("answerable") or not q.get("indexed", True) or doc != passage_doc:
        return False
    s = " ".join(sentence.split())
    hint = " ".join((q.get("answer_sentence_hint") or "").split())
    answers = [" ".join(a.split()) for a in q.get("answers", []) if a.strip()]
    if q["dataset"] in SENTENCE_SETS:
        # answers are whole candidate sentences; the segmenter may have cut one in two
        return any(len(s) >= 15 and (s in a or a in s) for a in answers + ([hint] if hint else []))
    overlaps_hint = bool(hint) and (s in hint or hint in s)
    return overlaps_hint and any(a in s for a in answers)


TEST_SAMPLE_PASSAGES = dict(squad2=14, wikiqa=14, realtimeqa=16, subjqa=12, selqa_ass=6, trecqa=2)


def write_test_sample(path: Path, seed: int = 11, max_questions: int = 150) -> dict:
    """The small fixed val sample tests/test_quality.py indexes (passages + questions, JSONL)."""
    qa = sample("val", TEST_SAMPLE_PASSAGES, 0.1, seed)
    rng = random.Random(seed)
    qs = list(qa.questions)
    rng.shuffle(qs)
    qs = sorted(qs[:max_questions], key=lambda q: q["id"])
    keep = ("id", "dataset", "passage_id", "question", "answers", "answer_sentence_hint", "answerable", "indexed")
    with open(path, "w", encoding="utf-8") as f:
        for pid, p in sorted(qa.passages.items()):
            f.write(json.dumps({"kind": "passage", "id": pid, "dataset": p["dataset"], "title": p.get("title"),
                                "text": p["text"], "doc": p["doc"], "indexed": pid not in qa.held_out}) + "\n")
        for q in qs:
            f.write(json.dumps({"kind": "question", **{k: q.get(k) for k in keep}}) + "\n")
    return {"passages": len(qa.passages), "questions": len(qs)}
