"""Benchmarks 1 and 2: full build vs the raw encoder, incremental re-index, batch-size sweep.

1. A full build on a fresh index folder (no embedding cache), with the model already loaded,
   next to the raw model alone on exactly the unique sentence texts the build embedded, in the
   same process right after it: the int8 ONNX session in length-sorted batches (the default
   encoder), or ``SentenceTransformer.encode`` when the build runs on PyTorch
   (``BRIEFBOT_ENCODER=torch``). Reports wall and CPU seconds, tokens/s for
   both, the ratio build/raw (goal >= 0.9) and where the build's time went, phase by phase.
2. Incremental re-index after changing one document, in the same process with the model warm
   (goal < 3 s), plus a build with nothing changed; also phase by phase.
3. A batch-size sweep of ``Encoder.encode`` on a random sample of the corpus sentences, to
   choose ``BATCH_SIZE`` in bot/knowledge/embed.py.

    python bench/build_throughput.py --articles 200          # a quick subset
    python bench/build_throughput.py --out bench/results/build.json   # the full corpus
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PhaseTimer, base_parser, clock, corpus_tag, count_tokens, emit, ensure_index, fresh_dir, log, machine_info,
    peak_rss_mb, prepare_docs,
)

GOAL_RATIO = 0.9
GOAL_INCREMENTAL_S = 3.0


def instrument(encoder) -> PhaseTimer:
    """Time the build's phases by wrapping the functions bot/knowledge/build.py calls."""
    import bm25s

    import bot.knowledge.build as build
    import bot.knowledge.embed as embed

    pt = PhaseTimer()
    for attr in ("remove_stale", "load_snapshot", "list_documents", "file_sha256", "load_document",
                 "_segment_document", "_reuse", "_fill_vectors", "_assemble", "write_snapshot", "terms"):
        pt.wrap(build, attr)
    pt.wrap(embed.EmbeddingCache, "get_many", "cache.get_many")
    pt.wrap(embed.EmbeddingCache, "put_many", "cache.put_many")
    pt.wrap(bm25s.BM25, "index", "bm25.index")
    pt.wrap(encoder, "encode", "encoder.encode")  # instance attribute: only this encoder
    return pt


def raw_encode(encoder, texts: list[str]):
    """The model alone, as the build's encoder runs it, without anything briefbot adds."""
    from bot.knowledge.embed import BATCH_SIZE

    if not encoder.uses_int8:
        return encoder.model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
    import numpy as np

    session = encoder._int8
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.empty((len(texts), encoder.dimension), dtype=np.float32)
    for lo in range(0, len(texts), BATCH_SIZE):
        idx = order[lo : lo + BATCH_SIZE]
        out[idx] = session.encode([texts[i] for i in idx])
    return out


def token_count(encoder, texts: list[str]) -> int:
    if not encoder.uses_int8:
        return count_tokens(encoder.model.tokenizer, texts, encoder.model.max_seq_length)
    tok = encoder._int8.tokenizer  # truncates at 256 like the model; padding is not counted
    return sum(sum(e.attention_mask) for lo in range(0, len(texts), 4096)
               for e in tok.encode_batch(texts[lo : lo + 4096]))


def build_vs_raw(args, docs: Path, encoder) -> tuple[dict, object]:
    from bot.answering.engine import Engine
    from bot.config import Settings
    from bot.knowledge.embed import BATCH_SIZE

    index = fresh_dir(args.workdir / f"idx-build-{corpus_tag(args.articles)}")
    engine = Engine(Settings(documents_dir=docs, index_dir=index), encoder=encoder)
    pt = instrument(encoder)
    log(f"full build of {docs} into {index} (fresh, no embedding cache)")
    with clock() as c_build:
        report = engine.build(rebuild=False)
    phases = pt.snapshot()
    snap = engine._current()[0]
    texts = sorted(set(snap.sentences.texts))
    assert report.sentences_embedded == len(texts), (report.sentences_embedded, len(texts))
    tokens = token_count(encoder, texts)

    log(f"raw encode ({encoder.name}) on the same {len(texts):,} unique sentences")
    with clock() as c_raw:
        raw = raw_encode(encoder, texts)
    # The build's vectors for the same texts must be the raw encoder's (same model, same input).
    row = {t: i for i, t in enumerate(texts)}
    pick = [snap.sentences.texts.index(t) for t in texts[:: max(1, len(texts) // 200)]]
    diff = max(float(abs(snap.vectors[i] - raw[row[snap.sentences.texts[i]]]).max()) for i in pick)

    encode_s = phases.get("encoder.encode", 0.0)
    result = {
        "documents": len(snap.documents),
        "sentences": len(snap.sentences),
        "unique_sentences_embedded": len(texts),
        "tokens_embedded": tokens,
        "batch_size": BATCH_SIZE,
        "encoder": encoder.name,
        "build": {**c_build.as_dict(), "report_seconds": round(report.seconds, 3),
                  "tokens_per_s": round(tokens / c_build.wall, 1),
                  "sentences_per_s": round(len(texts) / c_build.wall, 1),
                  "tokens_per_cpu_s": round(tokens / c_build.cpu, 1) if c_build.cpu else None},
        "raw_encode": {**c_raw.as_dict(), "tokens_per_s": round(tokens / c_raw.wall, 1),
                       "sentences_per_s": round(len(texts) / c_raw.wall, 1),
                       "tokens_per_cpu_s": round(tokens / c_raw.cpu, 1) if c_raw.cpu else None},
        "ratio_build_over_raw": round(c_raw.wall / c_build.wall, 3),
        "ratio_build_over_raw_cpu": round(c_raw.cpu / c_build.cpu, 3) if c_build.cpu else None,
        "goal_ratio": GOAL_RATIO,
        "build_phases_s": phases,
        "build_outside_encoder_s": round(c_build.wall - encode_s, 3),
        "build_encoder_vs_raw": round(encode_s / c_raw.wall, 3) if c_raw.wall else None,
        "max_abs_diff_build_vs_raw_vectors": diff,
    }
    result["meets_goal"] = result["ratio_build_over_raw"] >= GOAL_RATIO
    pt.restore()
    return result, engine


def paired_subset(args, encoder, articles: int, rounds: int) -> dict:
    """Fresh build and raw encode alternated (A B A B ...) on a subset, so drift in the machine's
    load hits both alike; the ratio of the medians is the drift-controlled build/raw figure."""
    from bot.answering.engine import Engine
    from bot.config import Settings

    docs = prepare_docs(args.workdir, articles)
    builds, raws, outside = [], [], []
    texts = None
    for r in range(rounds):
        index = fresh_dir(args.workdir / f"idx-paired-{articles}")
        engine = Engine(Settings(documents_dir=docs, index_dir=index), encoder=encoder)
        pt = instrument(encoder)
        log(f"paired round {r + 1}/{rounds}: fresh build of {docs.name}")
        with clock() as cb:
            engine.build()
        phases = pt.snapshot()
        pt.restore()
        texts = sorted(set(engine._current()[0].sentences.texts))
        log(f"paired round {r + 1}/{rounds}: raw encode of {len(texts):,} sentences")
        with clock() as cr:
            raw_encode(encoder, texts)
        builds.append(cb.wall)
        raws.append(cr.wall)
        outside.append(cb.wall - phases.get("encoder.encode", 0.0))
    return {
        "articles": articles, "rounds": rounds, "unique_sentences": len(texts),
        "build_s": [round(x, 3) for x in builds], "raw_s": [round(x, 3) for x in raws],
        "build_outside_encoder_s": [round(x, 3) for x in outside],
        "ratio_per_round": [round(r / b, 3) for r, b in zip(raws, builds)],
        "ratio_of_medians": round(statistics.median(raws) / statistics.median(builds), 3),
        "meets_goal": statistics.median(raws) / statistics.median(builds) >= GOAL_RATIO,
    }


def incremental(args, engine, docs: Path, repeats: int) -> dict:
    pt = instrument(engine.encoder)
    names = sorted(p.name for p in docs.iterdir() if p.name.startswith("bbc-")) or sorted(p.name for p in docs.iterdir())
    target = docs / names[len(names) // 2]
    original = target.read_bytes()
    runs = []
    try:
        log("no-change build")
        pt.reset()
        with clock() as c_noop:
            rep = engine.build()
        noop = {**c_noop.as_dict(), "swapped": rep.swapped, "phases_s": pt.snapshot()}
        for i in range(repeats):
            edit = f"\n\nBenchmark edit {i} at {time.time():.0f}: the committee met again and approved {i + 3} new measures.\n"
            target.write_bytes(original + edit.encode())
            pt.reset()
            log(f"incremental build {i + 1}/{repeats}: changed {target.name}")
            with clock() as c:
                rep = engine.build()
            runs.append({**c.as_dict(), "changed": rep.changed, "sentences_embedded": rep.sentences_embedded,
                         "phases_s": pt.snapshot()})
    finally:
        target.write_bytes(original)
        pt.reset()
        engine.build()  # back to the original corpus for whoever reuses this index
        pt.restore()
    walls = [r["wall_s"] for r in runs]
    return {
        "changed_document": target.name,
        "repeats": repeats,
        "seconds_median": round(statistics.median(walls), 3),
        "seconds_max": round(max(walls), 3),
        "goal_s": GOAL_INCREMENTAL_S,
        "meets_goal": statistics.median(walls) < GOAL_INCREMENTAL_S,
        "runs": runs,
        "no_change_build": noop,
    }


def batch_sweep(encoder, texts: list[str], sizes: list[int], threads: list[int], sample: int, rounds: int) -> dict:
    """Encoder.encode (length-sorted batches, as the build uses it) per batch size and thread count:
    torch's threads for the PyTorch encoder; for the int8 one, an ONNX Runtime session per thread
    count (a session's threads are fixed when it is made, so setting torch's would change nothing)."""
    import torch

    from bot.knowledge import onnx_query

    rng = random.Random(0)
    pick = rng.sample(texts, min(sample, len(texts)))
    model = encoder.model
    tokens = count_tokens(model.tokenizer, pick, model.max_seq_length)
    import bot.knowledge.embed as embed

    before = torch.get_num_threads()
    before_encode = getattr(embed, "ENCODE_THREADS", None)  # Encoder.encode sets this many threads itself
    grid = [(th, bs) for th in threads for bs in sizes]
    best: dict[tuple[int, int], float] = {}
    all_runs: dict[tuple[int, int], list[float]] = defaultdict(list)
    encoder.encode(pick[:64])  # warm-up
    int8_session = encoder._int8 if encoder.uses_int8 else None
    sessions = {th: onnx_query.OnnxQueryEncoder(onnx_query.export_dir(encoder.name), int8=True, threads=th)
                for th in threads} if int8_session is not None else {}
    try:
        for r in range(rounds):
            order = list(grid)
            random.Random(100 + r).shuffle(order)  # a new order each round, so drift spreads over all
            for th, bs in order:
                torch.set_num_threads(th)
                if sessions:
                    encoder._int8 = sessions[th]
                if before_encode is not None:
                    embed.ENCODE_THREADS = th
                log(f"batch sweep round {r + 1}/{rounds}: {th} thread(s), batch size {bs}")
                t = time.perf_counter()
                encoder.encode(pick, batch_size=bs)
                dt = time.perf_counter() - t
                all_runs[(th, bs)].append(round(dt, 3))
                best[(th, bs)] = min(best.get((th, bs), float("inf")), dt)
    finally:
        torch.set_num_threads(before)
        if int8_session is not None:
            encoder._int8 = int8_session
        if before_encode is not None:
            embed.ENCODE_THREADS = before_encode
    med = {k: statistics.median(v) for k, v in all_runs.items()}
    rows = {f"threads={th},batch={bs}": {"threads": th, "batch_size": bs, "best_s": round(best[(th, bs)], 3),
                                         "median_s": round(med[(th, bs)], 3), "runs_s": all_runs[(th, bs)],
                                         "sentences_per_s": round(len(pick) / med[(th, bs)], 1),
                                         "sentences_per_s_best": round(len(pick) / best[(th, bs)], 1),
                                         "tokens_per_s": round(tokens / med[(th, bs)], 1)} for th, bs in grid}
    by_threads = {}
    for th in threads:
        fastest = min(sizes, key=lambda bs: med[(th, bs)])
        by_threads[str(th)] = {"fastest_batch_size": fastest, "fastest_batch_size_by_best_run":
                               min(sizes, key=lambda bs: best[(th, bs)]),
                               "within_5pct_of_fastest": [bs for bs in sizes if med[(th, bs)] <= med[(th, fastest)] * 1.05]}
    overall = min(grid, key=lambda k: med[k])
    return {"encoder": encoder.name, "sample_sentences": len(pick), "sample_tokens": tokens, "rounds": rounds, "runs": rows,
            "best_by_threads": by_threads, "fastest_overall": {"threads": overall[0], "batch_size": overall[1]},
            "default_threads": before}


def main() -> int:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="8,16,32,64,128,256")
    ap.add_argument("--sweep-threads", default="2,1", help="torch thread counts in the sweep")
    ap.add_argument("--sweep-sample", type=int, default=256, help="sentences in the batch-size sweep")
    ap.add_argument("--sweep-rounds", type=int, default=3)
    ap.add_argument("--sweep-only", action="store_true",
                    help="run only the batch-size sweep (on a sample of the corpus) and add it to the --out file")
    ap.add_argument("--incremental-repeats", type=int, default=3)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--paired-articles", type=int, default=300,
                    help="subset for the drift-controlled build/raw pairs (0 = skip)")
    ap.add_argument("--paired-rounds", type=int, default=2)
    ap.add_argument("--incremental-only", action="store_true",
                    help="run only the incremental re-index (on a copy of the existing index) and add it to the --out file")
    ap.add_argument("--paired-only", action="store_true",
                    help="run only the paired subset and add it to the --out file from an earlier run")
    args = ap.parse_args()
    if args.sweep_only:
        from bot.knowledge.embed import Encoder
        from bot.knowledge.store import load_snapshot

        result = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {
            "benchmark": "build_throughput", "machine": machine_info(), "articles": corpus_tag(args.articles)}
        _docs, index = ensure_index(args.workdir, args.articles)  # the build's folder, brought up to date
        texts = load_snapshot(index).sentences.texts
        encoder = Encoder()
        encoder.encode(["warm-up sentence for the encoder."])
        sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
        threads = [int(x) for x in args.sweep_threads.split(",") if x.strip()]
        result["batch_sweep"] = batch_sweep(encoder, texts, sizes, threads, args.sweep_sample, args.sweep_rounds)
        result["batch_sweep"]["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        emit(result, args.out)
        return 0
    if args.incremental_only:
        import shutil

        from bot.answering.engine import Engine
        from bot.config import Settings
        from bot.knowledge.embed import Encoder

        result = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {
            "benchmark": "build_throughput", "machine": machine_info(), "articles": corpus_tag(args.articles)}
        docs, index = ensure_index(args.workdir, args.articles)
        tag = corpus_tag(args.articles)
        docs_copy, index_copy = args.workdir / f"docs-incr-{tag}", args.workdir / f"idx-incr-{tag}"
        for src, dst in ((docs, docs_copy), (index, index_copy)):
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
        encoder = Encoder()
        encoder.encode(["warm-up sentence for the encoder."])
        engine = Engine(Settings(documents_dir=docs_copy, index_dir=index_copy), encoder=encoder)
        engine.build()  # loads the live snapshot: the engine is warm, as in a serving process
        result["incremental"] = incremental(args, engine, docs_copy, args.incremental_repeats)
        result["incremental"]["git"] = machine_info()["git"]
        emit(result, args.out)
        return 0
    if args.paired_only:
        from bot.knowledge.embed import Encoder

        result = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {
            "benchmark": "build_throughput", "machine": machine_info(), "articles": corpus_tag(args.articles)}
        encoder = Encoder()
        encoder.encode(["warm-up sentence for the encoder."])
        result["paired_subset"] = paired_subset(args, encoder, args.paired_articles, args.paired_rounds)
        emit(result, args.out)
        return 0

    result = {"benchmark": "build_throughput", "machine": machine_info(), "articles": corpus_tag(args.articles)}
    docs = prepare_docs(args.workdir, args.articles)
    from bot.knowledge.embed import Encoder

    encoder = Encoder()
    with clock() as c_load:
        encoder.prepare()  # the int8 export (made on first use), or the PyTorch model
        encoder.encode(["warm-up sentence for the encoder."])
    result["model_load"] = c_load.as_dict()

    result["full_build"], engine = build_vs_raw(args, docs, encoder)
    result["incremental"] = incremental(args, engine, docs, args.incremental_repeats)
    if not args.skip_sweep:
        sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
        threads = [int(x) for x in args.sweep_threads.split(",") if x.strip()]
        result["batch_sweep"] = batch_sweep(encoder, engine._current()[0].sentences.texts, sizes, threads,
                                            args.sweep_sample, args.sweep_rounds)
    if args.articles is not None:
        args.paired_articles = min(args.paired_articles, args.articles)  # a subset run stays a subset
    if args.paired_articles:
        result["paired_subset"] = paired_subset(args, encoder, args.paired_articles, args.paired_rounds)
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
