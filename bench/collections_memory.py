"""Many collections in one process: memory stays bounded, and a build never stalls other servers.

1. ``--collections`` small collections (a few BBC articles each) are built, then a question is
   asked in each in turn through one :class:`Collections` registry with ``--max-loaded``
   engines: the number loaded never exceeds it, and peak RSS stays under the bound
   start + max_loaded x (memory of one loaded collection) + 16 MB, where one collection's memory
   is measured in a clean child process that keeps all of them loaded.
2. One collection (``--build-articles`` articles, rebuilt from scratch) builds in a thread
   while another collection keeps answering: answers during the build, their latency.

Prints one JSON object. Run: ``python bench/collections_memory.py`` (about 2-5 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.corpus import bbc_articles  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.answering.collections import Collections  # noqa: E402


def rss_mb() -> float:
    """Current resident memory (not the peak), from /proc."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def first_sentence_question(text: str) -> str:
    words = text.split()
    return "What happened with " + " ".join(words[:6]) + "?"


def rotate(settings: Settings, names: list[str], questions: list[str], max_loaded: int, encoder=None) -> dict:
    """Ask once in each collection in turn through one registry; memory and loaded counts as it goes."""
    registry = Collections(settings.with_(max_loaded_collections=max_loaded), encoder=encoder)
    registry.ask(names[0], questions[0])  # model + query encoder warm, one collection loaded
    gc.collect()
    base = rss_mb()
    samples, latencies, max_seen = [], [], 0
    for name, q in zip(names, questions):
        t = time.perf_counter()
        registry.ask(name, q)
        latencies.append((time.perf_counter() - t) * 1000)
        max_seen = max(max_seen, len(registry.loaded()))
        samples.append(rss_mb())
    return {"registry": registry, "base": base, "peak": max(samples), "end": samples[-1], "max_seen": max_seen,
            "p50_ms": statistics.median(latencies), "evictions": registry.evictions}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collections", type=int, default=50)
    ap.add_argument("--max-loaded", type=int, default=8)
    ap.add_argument("--articles-per-collection", type=int, default=3)
    ap.add_argument("--build-articles", type=int, default=60)
    ap.add_argument("--unbounded-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("BRIEFBOT_BENCH_WORKDIR", "/work/data/bench"))
                    / "collections")
    args = ap.parse_args()
    work = args.workdir
    articles = bbc_articles()
    settings = Settings(documents_dir=work / "documents", index_dir=work / "index", index_check_seconds=3600)
    names = [f"c{i:03d}" for i in range(args.collections)]
    per = args.articles_per_collection
    questions = [first_sentence_question(articles[i * per][1]) for i in range(args.collections)]
    if args.unbounded_only:  # a clean process, every collection kept loaded: what one collection costs
        out = rotate(settings, names, questions, max_loaded=args.collections)
        print(json.dumps({"base": out["base"], "end": out["end"], "max_seen": out["max_seen"]}))
        return 0

    if work.exists():
        shutil.rmtree(work)
    for i, name in enumerate(names):
        folder = settings.documents_dir / name
        folder.mkdir(parents=True)
        for fname, text in articles[i * per:(i + 1) * per]:
            (folder / fname).write_text(text, encoding="utf-8")
    started = time.perf_counter()
    builder = Collections(settings)
    for name in names:
        with builder.using(name) as engine:
            engine.build()
    build_s = time.perf_counter() - started
    encoder = builder.encoder
    del builder
    gc.collect()

    child = subprocess.run([sys.executable, __file__, "--unbounded-only", "--workdir", str(work),
                            "--collections", str(args.collections), "--articles-per-collection", str(per)],
                           capture_output=True, text=True, check=True)
    unbounded = json.loads(child.stdout.strip().splitlines()[-1])
    per_collection = (unbounded["end"] - unbounded["base"]) / max(1, args.collections - 1)
    bounded = rotate(settings, names, questions, max_loaded=args.max_loaded, encoder=encoder)
    bound = bounded["base"] + args.max_loaded * per_collection + 16.0  # 16 MB allocator slack
    registry = bounded["registry"]

    # a big build in one collection while another keeps answering
    big = settings.documents_dir / "big"
    big.mkdir()
    first = args.collections * per
    for fname, text in articles[first:first + args.build_articles]:
        (big / fname).write_text(text, encoding="utf-8")
    done = threading.Event()
    build_seconds: list[float] = []

    def build_big():
        t = time.perf_counter()
        with registry.using("big") as engine:
            engine.build(rebuild=True)
        build_seconds.append(time.perf_counter() - t)
        done.set()

    thread = threading.Thread(target=build_big)
    thread.start()
    during = []
    while not done.is_set():
        t = time.perf_counter()
        registry.ask(names[1], questions[1])
        during.append((time.perf_counter() - t) * 1000)
        time.sleep(0.05)
    thread.join()
    result = {
        "bench": "collections_memory",
        "collections": args.collections,
        "articles_per_collection": per,
        "max_loaded_setting": args.max_loaded,
        "max_loaded_seen": bounded["max_seen"],
        "evictions": bounded["evictions"],
        "build_all_s": round(build_s, 1),
        "rss_mb_per_loaded_collection": round(per_collection, 2),
        "unbounded_growth_mb_all_loaded": round(unbounded["end"] - unbounded["base"], 1),
        "bounded_rss_mb_start": round(bounded["base"], 1),
        "bounded_rss_mb_peak": round(bounded["peak"], 1),
        "bounded_growth_mb": round(bounded["peak"] - bounded["base"], 1),
        "memory_bound_mb": round(bound, 1),
        "memory_within_bound": bounded["peak"] <= bound,
        "answer_ms_rotation_p50": round(bounded["p50_ms"], 1),
        "concurrent_build_s": round(build_seconds[0], 1) if build_seconds else None,
        "answers_during_build": len(during),
        "answer_ms_during_build_p50": round(statistics.median(during), 1) if during else None,
        "answer_ms_during_build_max": round(max(during), 1) if during else None,
        "answers_kept_flowing": len(during) >= 3 and bool(build_seconds) and max(during) / 1000 < 0.25 * build_seconds[0],
        "cpu_count": os.cpu_count(),
        "note": "2 shared cores, other engineers' jobs running at the same time",
    }
    print(json.dumps(result, indent=1))
    return 0 if result["memory_within_bound"] and result["max_loaded_seen"] <= args.max_loaded else 1


if __name__ == "__main__":
    sys.exit(main())
