"""Many collections in one process: memory stays bounded, and a build never stalls other servers.

1. ``--collections`` small collections (one BBC article each) are built, then questions are
   asked in each in turn through one :class:`Collections` registry with
   ``--max-loaded`` engines: the number loaded never exceeds it, and RSS after all of them
   is compared with RSS once the registry was first full (the plateau).
2. One collection (``--build-articles`` articles, rebuilt from scratch) builds in a thread
   while another collection keeps answering: answers during the build, their latency.

Prints one JSON object. Run: ``python bench/collections_memory.py`` (about 2-5 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
from bot.knowledge.collections import Collections  # noqa: E402


def rss_mb() -> float:
    """Current resident memory (not the peak), from /proc."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def first_sentence_question(text: str) -> str:
    words = text.split()
    return "What happened with " + " ".join(words[:6]) + "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--collections", type=int, default=50)
    ap.add_argument("--max-loaded", type=int, default=8)
    ap.add_argument("--build-articles", type=int, default=150)
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("BRIEFBOT_BENCH_WORKDIR", "/work/data/bench"))
                    / "collections")
    args = ap.parse_args()
    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    articles = bbc_articles()
    settings = Settings(documents_dir=work / "documents", index_dir=work / "index",
                        max_loaded_collections=args.max_loaded, index_check_seconds=3600)
    names = [f"c{i:03d}" for i in range(args.collections)]
    for i, name in enumerate(names):
        folder = settings.documents_dir / name
        folder.mkdir(parents=True)
        fname, text = articles[i]
        (folder / fname).write_text(text, encoding="utf-8")

    # build every collection once (the embedding cache is per collection index, so this is the slow part)
    started = time.perf_counter()
    builder = Collections(settings)
    for name in names:
        with builder.using(name) as engine:
            engine.build()
    build_s = time.perf_counter() - started
    encoder = builder.encoder
    del builder

    # a fresh registry answers in each collection in turn
    registry = Collections(settings, encoder=encoder)
    registry.ask(names[0], first_sentence_question(articles[0][1]))  # model + query encoder warm
    base = rss_mb()
    samples, max_loaded_seen, plateau = [], 0, None
    latencies = []
    for i, name in enumerate(names):
        t = time.perf_counter()
        registry.ask(name, first_sentence_question(articles[i][1]))
        latencies.append((time.perf_counter() - t) * 1000)
        max_loaded_seen = max(max_loaded_seen, len(registry.loaded()))
        samples.append(rss_mb())
        if i + 1 == args.max_loaded:
            plateau = samples[-1]
    peak_rotation = max(samples)
    per_collection = (plateau - base) / max(1, args.max_loaded - 1) if plateau else 0.0

    # a big build in one collection while another keeps answering
    big = settings.documents_dir / "big"
    big.mkdir()
    for fname, text in articles[args.collections:args.collections + args.build_articles]:
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
    q = first_sentence_question(articles[1][1])
    while not done.is_set():
        t = time.perf_counter()
        answer = registry.ask(names[1], q)
        during.append(((time.perf_counter() - t) * 1000, answer.abstained))
        time.sleep(0.05)
    thread.join()
    ms = [m for m, _ in during]
    result = {
        "bench": "collections_memory",
        "collections": args.collections,
        "max_loaded_setting": args.max_loaded,
        "max_loaded_seen": max_loaded_seen,
        "evictions": registry.evictions,
        "build_all_s": round(build_s, 1),
        "rss_mb_after_first_answer": round(base, 1),
        "rss_mb_when_registry_first_full": round(plateau or 0, 1),
        "rss_mb_peak_over_all_collections": round(peak_rotation, 1),
        "rss_mb_per_loaded_collection": round(per_collection, 2),
        "memory_bound_mb": round((plateau or base) + 2 * max(per_collection, 1.0), 1),
        "memory_within_bound": peak_rotation <= (plateau or base) + 2 * max(per_collection, 1.0),
        "answer_ms_rotation_p50": round(statistics.median(latencies), 1),
        "concurrent_build_s": round(build_seconds[0], 1) if build_seconds else None,
        "answers_during_build": len(during),
        "answer_ms_during_build_p50": round(statistics.median(ms), 1) if ms else None,
        "answer_ms_during_build_max": round(max(ms), 1) if ms else None,
        "answers_kept_flowing": len(during) >= 3 and (max(ms) if ms else 1e9) < 0.5 * 1000 * (build_seconds[0] if build_seconds else 0),
        "cpu_count": os.cpu_count(),
        "note": "2 shared cores, other engineers' jobs running at the same time",
    }
    print(json.dumps(result, indent=1))
    return 0 if result["memory_within_bound"] and result["max_loaded_seen"] <= args.max_loaded else 1


if __name__ == "__main__":
    sys.exit(main())
