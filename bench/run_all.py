"""Run every benchmark in one go and merge them into ``bench/results/latest.json``.

Each benchmark runs as its own process (``python bench/<name>.py --articles N --out ...``),
in this order: build_throughput (1, 2), query_latency (3, 4, 5), langchain_peer (6, given the
build's results so its full-corpus index time sits next to the peer's), onnx_int8 (7). Then
``bench/plot.py`` draws ``bench/results/side_by_side.png``.

    python bench/run_all.py --articles 200                       # a quick subset run
    python bench/run_all.py                                      # the full corpus (~1-2 h on 2 busy cores)
    python bench/run_all.py --reuse --reference                  # merge finished results, write reference.json

``--reuse`` takes a benchmark's result file from an earlier run of the same corpus instead of
running it again (per-benchmark files are ``bench/results/<name>[-<articles>].json``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, base_parser, corpus_tag, emit, log, machine_info  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ORDER = ("build_throughput", "query_latency", "langchain_peer", "onnx_int8")


def result_file(name: str, articles: int | None) -> Path:
    tag = corpus_tag(articles)
    return RESULTS / (f"{name}.json" if tag == "all" else f"{name}-{tag}.json")


def run(name: str, args, extra: list[str]) -> dict:
    out = result_file(name, args.articles)
    if args.reuse and out.is_file():
        data = json.loads(out.read_text())
        if data.get("articles") in (corpus_tag(args.articles), "given index"):
            log(f"{name}: reusing {out.relative_to(ROOT)}")
            return data
    cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--out", str(out), "--workdir", str(args.workdir)]
    if args.articles is not None:
        cmd += ["--articles", str(args.articles)]
    cmd += extra
    log(f"{name}: {' '.join(cmd[1:])}")
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, cwd=ROOT)  # stderr (progress) passes through
    if proc.returncode != 0:
        log(f"{name} failed with exit code {proc.returncode}")
        return {"error": f"exit code {proc.returncode}"}
    log(f"{name}: done in {time.perf_counter() - t:.0f}s")
    return json.loads(out.read_text())


def get(d: dict, *path, default=None):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def summarize(b: dict) -> dict:
    """The headline numbers, each with its goal where the issue sets one."""
    bt, ql, lp, ox = (b.get(k, {}) for k in ORDER)
    s = {}
    fb = bt.get("full_build", {})
    if fb:
        s["1_build"] = {
            "documents": fb["documents"], "unique_sentences": fb["unique_sentences_embedded"],
            "tokens": fb["tokens_embedded"],
            "build_s": fb["build"]["wall_s"], "raw_encode_s": fb["raw_encode"]["wall_s"],
            "build_tokens_per_s": fb["build"]["tokens_per_s"], "raw_tokens_per_s": fb["raw_encode"]["tokens_per_s"],
            "ratio_build_over_raw": fb["ratio_build_over_raw"], "ratio_cpu_time": fb["ratio_build_over_raw_cpu"],
            "build_outside_encoder_s": fb["build_outside_encoder_s"],
            "encoder_share_of_build": round(fb["build_phases_s"].get("encoder.encode", 0) / fb["build"]["wall_s"], 3),
            "goal": ">= 0.9", "meets_goal": fb["meets_goal"],
        }
    ps = bt.get("paired_subset")
    if ps:
        s["1_build_paired_subset"] = {k: ps[k] for k in ("articles", "unique_sentences", "build_s", "raw_s",
                                                         "build_outside_encoder_s", "ratio_of_medians", "meets_goal")}
    inc = bt.get("incremental", {})
    if inc:
        s["2_incremental"] = {"seconds_median": inc["seconds_median"], "seconds_max": inc["seconds_max"],
                              "no_change_s": inc["no_change_build"]["wall_s"], "goal": "< 3 s",
                              "meets_goal": inc["meets_goal"]}
    sw = bt.get("batch_sweep", {})
    if sw:
        s["batch_sweep"] = {"best_by_threads": sw["best_by_threads"], "fastest_overall": sw["fastest_overall"],
                            "sentences_per_s": {k: v["sentences_per_s"] for k, v in sw["runs"].items()}}
    if ql:
        probes = ql.get("serving_probes", {})
        goals = ql.get("goals", {})  # query_latency's own GOALS, so the summary can't drift from them
        s["3_warm_latency"] = {
            **{k: get(ql, "warm_latency", k) for k in ("p50_ms", "p95_ms", "n")},
            "stages_p50_ms": get(ql, "warm_latency", "stages_p50_ms"),
            "variants": {k: {"p50_ms": get(v, "latency", "all", "p50_ms"), "p95_ms": get(v, "latency", "all", "p95_ms")}
                         for k, v in probes.items()},
            "goal": f"p50 < {goals.get('p50_ms', 0):g} ms, p95 < {goals.get('p95_ms', 0):g} ms",
            "meets_goal": get(ql, "warm_latency", "meets_goal"),
        }
        s["4_cold_start"] = {"wall_s_median": get(ql, "cold_start", "wall_s_median"),
                             "phases_s": get(ql, "cold_start", "in_process_phases_s"),
                             "floors_wall_s": get(ql, "cold_start", "floors_wall_s"),
                             "top_imports_s": dict(list((get(ql, "import_times", "top_level_cumulative_s") or {}).items())[:6]),
                             "goal": f"< {goals.get('cold_start_s', 0):g} s", "meets_goal": get(ql, "cold_start", "meets_goal")}
        s["5_memory"] = {"peak_rss_mb_serving": get(ql, "memory", "peak_rss_mb_serving"),
                         "peak_rss_mb_cli_ask": get(ql, "memory", "peak_rss_mb_cli_ask"),
                         "goal": f"< {goals.get('peak_rss_mb', 0):g} MB", "meets_goal": get(ql, "memory", "meets_goal")}
    if lp:
        conds = {}
        for name, c in lp.get("conditions", {}).items():
            e = c["evidence"]["all"]
            conds[name] = {"briefbot_top_citation": e["briefbot_top_citation_evidence"],
                           "peer_top1": e["peer_top1_evidence"], "peer_top3": e["peer_top3_evidence"],
                           "briefbot_ask_p50_ms": c["latency"]["briefbot_ask"]["p50_ms"],
                           "peer_search_p50_ms": c["latency"]["peer_similarity_search"]["p50_ms"],
                           "peer_index_s": c["peer_index"]["wall_s"]}
        s["6_langchain_peer"] = {"index_speed": {k: get(lp, "index_speed", *k.split("."))
                                                 for k in ("articles", "briefbot.wall_s", "peer.wall_s",
                                                           "peer_over_briefbot_time")},
                                 "full_corpus_index_time": lp.get("full_corpus_index_time"), "conditions": conds}
    if ox:
        s["7_onnx_int8"] = {**ox.get("recommendation", {}),
                            "accuracy_change": {k: v.get("change") for k, v in ox.get("accuracy", {}).items()},
                            "cosine_vs_fp32_mean": get(ox, "speed", "variants", "onnx_int8", "cosine_vs_torch_fp32", "mean")}
    return s


def main() -> int:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ORDER), help="comma-separated subset of " + ",".join(ORDER))
    ap.add_argument("--reuse", action="store_true", help="reuse a benchmark's result file from an earlier run")
    ap.add_argument("--serve-index", type=Path, help="an existing index for query_latency (with --serve-documents)")
    ap.add_argument("--serve-documents", type=Path)
    ap.add_argument("--reference", action="store_true", help="also write bench/results/reference.json (committed)")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    if args.out is None:
        args.out = RESULTS / "latest.json"
    only = [x for x in args.only.split(",") if x]
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    benchmarks = {}
    for name in ORDER:
        if name not in only:
            continue
        extra = []
        if name == "query_latency" and args.serve_index:
            extra = ["--index", str(args.serve_index), "--documents", str(args.serve_documents)]
        if name == "langchain_peer":
            extra = ["--build-results", str(result_file("build_throughput", args.articles))]
        benchmarks[name] = run(name, args, extra)
    merged = {
        "machine": machine_info(),
        "articles": corpus_tag(args.articles),
        "wall_s": round(time.perf_counter() - started, 1),
        "summary": summarize(benchmarks),
        "benchmarks": benchmarks,
    }
    emit(merged, args.out)
    if args.reference:
        (RESULTS / "reference.json").write_text(json.dumps(merged, indent=1, ensure_ascii=False, default=str) + "\n")
        log("wrote bench/results/reference.json")
    if not args.no_plot:
        subprocess.run([sys.executable, str(ROOT / "bench" / "plot.py"), str(args.out)], cwd=ROOT,
                       stdout=subprocess.DEVNULL, check=False)
    return 0 if all("error" not in b for b in benchmarks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
