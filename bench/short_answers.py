"""Short-answer accuracy with the gold sentence given (an oracle for retrieval), per question type.

    python bench/short_answers.py [--qa ../shared/qa-train] [--old] [--ablate]
                                  [--cross-encoder FILE --span-min-p P]

Sets: the val split of the SQuAD and RealTimeQA rows of qa-train (the span model never saw
them) and the dev files (the gold sentence is the briefing sentence holding the row's evidence).
A short answer is right when a gold answer is inside it; "accuracy" counts a missing short
answer as wrong, "precision" is over the questions that got one, "coverage" the share that did.
Three answerers side by side: the span scorer alone (bot/answering/spans.py), the cross-encoder's
span at its threshold alone, and the cross-encoder's span else the span scorer's (what ships).
``--old`` also scores the typed-span regexes of the previous answerer (from git), ``--ablate``
scores the old answerer with each of its briefing-shaped special cases removed. Prints JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bot.answering.extractive import reader_span_fits, short_in  # noqa: E402
from bot.answering.spans import FACTOID, question_type, short_answer  # noqa: E402
from bot.knowledge.rerank import default_model  # noqa: E402
from train_spans import gold, oracle_rows  # noqa: E402

OLD_COMMIT = "15ae1cd"  # the answerer before issue 9
DEV_FILES = [ROOT.parent / "shared" / "eval" / "dev_briefing.jsonl", ROOT / "bench" / "data" / "extra_dev.jsonl"]
BRIEFING = ROOT.parent / "shared" / "briefing-us-missile-policy-2024-11.txt"


def dev_rows(path: Path) -> list[dict]:
    """Answerable, non-follow-up dev rows with the briefing sentence that holds their evidence."""
    from bot.ingest.loaders import normalize_text
    from bot.ingest.segment import segment

    sentences = [s.text for s in segment(normalize_text(BRIEFING.read_text(encoding="utf-8")))[0]]
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("answerable") is False or r.get("followup") or not r.get("answers"):
            continue
        hit = next((s for s in sentences for ev in r.get("evidence", []) if ev in s), None)
        if hit:
            rows.append({"id": r["id"], "question": r["question"], "answers": r["answers"], "sentence": hit})
    return rows


def score(rows: list[dict], answer) -> dict:
    """Accuracy, precision and coverage overall, on factoid types and per type."""
    by: dict[str, list[tuple[bool, bool]]] = {}
    for r in rows:
        short = answer(r["question"], r["sentence"])
        ok = bool(short) and any(gold(a).lower() in short.lower() for a in r["answers"])
        t = question_type(r["question"])[0]
        by.setdefault(t, []).append((bool(short), ok))

    def summary(items):
        given = [ok for has, ok in items if has]
        return {"n": len(items), "accuracy": round(sum(ok for _h, ok in items) / len(items), 3) if items else None,
                "precision": round(sum(given) / len(given), 3) if given else None,
                "coverage": round(len(given) / len(items), 3) if items else None}

    out = {"all": summary([x for v in by.values() for x in v]),
           "factoid": summary([x for t, v in by.items() if t in FACTOID for x in v])}
    out.update({t: summary(v) for t, v in sorted(by.items())})
    return out


def new_answer(question: str, sentence: str) -> str:
    return short_answer(question, sentence)[0]


def reader_answer(cross, sure: dict[str, float], with_patterns: bool):
    """The cross-encoder's span at the threshold (what search hands the answerer), falling back
    to the span scorer or not."""

    def answer(question: str, sentence: str) -> str:
        span = cross.read(question, [sentence], [sentence])[1][0]
        read, p = ((span.start, span.end), span.probability) if span is not None else (None, 0.0)
        if with_patterns:
            return short_in(question, sentence, read, p, sure)[0]
        return sentence[slice(*read)] if read and reader_span_fits(question, sentence, read, p, sure) else ""
    return answer


def _from_git(name: str, path: str, replace: dict[str, str] | None = None):
    src = subprocess.run(["git", "show", f"{OLD_COMMIT}:{path}"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    for a, b in (replace or {}).items():
        src = src.replace(a, b)
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def old_module():
    """The previous extractive.py with the search and term helpers of its own commit, all
    loaded from git, so the comparison holds whatever the current search module looks like."""
    _from_git("old_terms", "bot/knowledge/terms.py")
    _from_git("old_search", "bot/knowledge/search.py", {"from bot.knowledge.terms import": "from old_terms import"})
    return _from_git("old_extractive", "bot/answering/extractive.py", {
        "from bot.knowledge.search import": "from old_search import",
        "from bot.knowledge.terms import": "from old_terms import"})


def old_answer(mod):
    def answer(question: str, sentence: str) -> str:
        kind = mod.question_kind(question)
        return "" if kind == "other" else mod.short_answer(kind, question, sentence)[0]
    return answer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qa", default=str(ROOT.parent / "shared" / "qa-train"))
    ap.add_argument("--old", action="store_true", help="also score the previous answerer's regexes")
    ap.add_argument("--ablate", action="store_true", help="score the old answerer without each special case")
    ap.add_argument("--cross-encoder", type=Path, help="another int8 ONNX file than the shipped one")
    ap.add_argument("--span-min-p", type=float, help="another threshold than the manifest's")
    args = ap.parse_args()
    sets = {"squad_val": oracle_rows(Path(args.qa), "val", ("squad2",)),
            "realtimeqa_val": oracle_rows(Path(args.qa), "val", ("realtimeqa",))}
    for path in DEV_FILES:
        if path.is_file():
            sets[path.stem] = dev_rows(path)
    result: dict = {}
    n = sum(map(len, sets.values()))
    if args.cross_encoder:
        from bot.knowledge.cross_encoder import CrossEncoder
        from bot.knowledge.store import file_sha256

        cross, sure = CrossEncoder(args.cross_encoder, file_sha256(args.cross_encoder)), {}
    else:
        model = default_model()
        cross, sure = model.cross_encoder, model.span_min_p
    if args.span_min_p is not None:
        sure = {"default": args.span_min_p}
    result["span_min_p"] = sure
    for variant, answer in (("span scorer", new_answer), ("cross-encoder", reader_answer(cross, sure, False)),
                            ("cross-encoder, else span scorer", reader_answer(cross, sure, True))):
        started = time.perf_counter()
        result[variant] = {name: score(rows, answer) for name, rows in sets.items()}
        result[variant]["ms_per_question"] = round((time.perf_counter() - started) * 1000 / n, 3)
    if args.old or args.ablate:
        mod = old_module()
        result["old"] = {name: score(rows, old_answer(mod)) for name, rows in sets.items()}
    if args.ablate:
        never = re.compile(r"(?!x)x")
        ablations = {
            "without White/House in _NOT_NAMES": lambda m: setattr(m, "_NOT_NAMES", m._NOT_NAMES - {"White", "House"}),
            "without _ADJECTIVAL stripping": lambda m: setattr(m, "_ADJECTIVAL", never),
            "without _ROLE_AFTER skip": lambda m: setattr(m, "_ROLE_AFTER", never),
            "without role anchoring (focus/_role_tail)": lambda m: (setattr(m, "focus_terms", lambda q: frozenset()),
                                                                    setattr(m, "_role_tail", lambda q: frozenset())),
        }
        result["ablation_old"] = {}
        for label, change in ablations.items():
            mod = old_module()
            change(mod)
            result["ablation_old"][label] = {name: score(rows, old_answer(mod))["who"]
                                             for name, rows in sets.items() if any(
                                                 question_type(r["question"])[0] == "who" for r in rows)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
