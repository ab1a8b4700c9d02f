"""Draw the side-by-side figures of a run_all result as one PNG.

    python bench/plot.py [bench/results/latest.json] [--png bench/results/side_by_side.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def get(d, *path, default=None):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def bars(ax, labels, values, colors, fmt="{:.1f}", goal=None, goal_label=None, log=False):
    values = [v if v is not None else 0 for v in values]
    pos = range(len(values))
    ax.bar(pos, values, color=colors)
    ax.set_xticks(list(pos), labels, fontsize=8)
    for x, v in zip(pos, values):
        ax.annotate(fmt.format(v), (x, v), ha="center", va="bottom", fontsize=8)
    if goal is not None:
        ax.axhline(goal, color="crimson", ls="--", lw=1)
        ax.annotate(goal_label or f"goal {goal}", (len(values) - 0.5, goal), ha="right", va="bottom",
                    fontsize=7, color="crimson")
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    ap.add_argument("--png", type=Path, default=ROOT / "bench" / "results" / "side_by_side.png")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.results.read_text())
    b = data.get("benchmarks", {})
    ours, peer, raw, alt = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c"
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    m = data.get("machine", {})
    fig.suptitle(f"briefbot benchmarks, side by side ({data.get('articles')} BBC articles + the briefing) - "
                 f"{m.get('cpu', '?')}, {m.get('logical_cores', '?')} cores, {m.get('ram_gb', '?')} GB, "
                 f"{str(m.get('date', ''))[:10]}", fontsize=11)

    # 1. Full index time.
    ax = axes[0][0]
    fb = get(b, "build_throughput", "full_build", default={})
    labels, vals, cols = [], [], []
    if fb:
        labels += ["raw encode\n(same texts)", "briefbot\nbuild"]
        vals += [fb["raw_encode"]["wall_s"], fb["build"]["wall_s"]]
        cols += [raw, ours]
    b32 = get(b, "build_throughput", "full_build_batch32", "build", "wall_s")
    if b32:
        labels.append("briefbot build\nbatch 32")
        vals.append(b32)
        cols.append(ours)
        labels[1] = "briefbot build\nbatch 64"
    peer_full = get(b, "langchain_peer", "conditions", "with_bbc", "peer_index", "wall_s")
    if peer_full:
        labels.append("LangChain\npeer index")
        vals.append(peer_full)
        cols.append(peer)
    encoder = fb.get("encoder", "") if fb else ""
    int8_build = get(b, "onnx_int8", "accuracy", "with_bbc", "onnx_int8", "build", "wall_s")
    if int8_build and "int8" not in encoder:  # else the build above is already the int8 one
        labels.append("briefbot build\nONNX int8")
        vals.append(int8_build)
        cols.append(alt)
    bars(ax, labels, vals, cols, "{:.0f} s")
    ratio = fb.get("ratio_build_over_raw") if fb else None
    paired = get(b, "build_throughput", "paired_subset", "ratio_of_medians")
    ax.set_title(f"1. Full index, s: raw/build {ratio} (alternated subset {paired}), goal >= 0.9",
                 fontsize=9)

    # 2. Incremental and cold start.
    ax = axes[0][1]
    inc = get(b, "build_throughput", "incremental", default={})
    cold = get(b, "query_latency", "cold_start", default={})
    floors = cold.get("floors_wall_s", {}) if cold else {}
    labels = ["re-index\n1 changed doc", "no-change\nbuild", "cold start\nbriefbot ask", "python +\nimport torch"]
    vals = [inc.get("seconds_median"), get(inc, "no_change_build", "wall_s"), cold.get("wall_s_median"),
            floors.get("import_torch")]
    bars(ax, labels, vals, [ours, ours, ours, raw], "{:.2f} s", goal=3.0, goal_label="goal 3 s")
    ax.set_title("2 + 4. Incremental re-index and cold start, s", fontsize=10)

    # 3. Warm latency: briefbot variants and the peer.
    ax = axes[0][2]
    probes = get(b, "query_latency", "serving_probes", default={})
    labels, p50, p95 = [], [], []
    for name, label in (("default", "briefbot ask\n(defaults)"), ("omp_passive", "briefbot ask\nOMP passive"),
                        ("one_thread", "briefbot ask\n1 thread")):
        if "latency" in probes.get(name, {}):
            labels.append(label)
            p50.append(probes[name]["latency"]["all"]["p50_ms"])
            p95.append(probes[name]["latency"]["all"]["p95_ms"])
    peer_lat = get(b, "langchain_peer", "conditions", "with_bbc", "latency") or \
        get(b, "langchain_peer", "conditions", "briefing_only", "latency")
    if peer_lat:
        labels.append("LangChain peer\nsearch k=3")
        p50.append(peer_lat["peer_similarity_search"]["p50_ms"])
        p95.append(peer_lat["peer_similarity_search"]["p95_ms"])
    x = list(range(len(labels)))
    ax.bar([i - 0.2 for i in x], p50, 0.4, label="p50", color=ours)
    ax.bar([i + 0.2 for i in x], p95, 0.4, label="p95", color="#aec7e8")
    for i, (a, c) in enumerate(zip(p50, p95)):
        ax.annotate(f"{a:.0f}", (i - 0.2, a), ha="center", va="bottom", fontsize=7)
        ax.annotate(f"{c:.0f}", (i + 0.2, c), ha="center", va="bottom", fontsize=7)
    goals = get(b, "query_latency", "goals", default={})
    goal50, goal95 = goals.get("p50_ms", 100), goals.get("p95_ms", 250)
    ax.axhline(goal50, color="crimson", ls="--", lw=1)
    ax.axhline(goal95, color="crimson", ls=":", lw=1)
    ax.set_xticks(x, labels, fontsize=8)
    if max(p95 or [0]) > 200:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.margins(y=0.15)
    ax.set_title(f"3. Warm latency, ms (goals: p50 {goal50:g} dashed, p95 {goal95:g} dotted)", fontsize=10)

    # 4. Evidence: top citation vs peer top-1.
    ax = axes[1][0]
    conds = get(b, "langchain_peer", "conditions", default={})
    names = [c for c in ("briefing_only", "with_bbc") if c in conds]
    x = list(range(len(names)))
    ob = [conds[c]["evidence"]["all"]["briefbot_top_citation_evidence"] for c in names]
    pb = [conds[c]["evidence"]["all"]["peer_top1_evidence"] for c in names]
    ax.bar([i - 0.2 for i in x], ob, 0.4, label="briefbot top citation", color=ours)
    ax.bar([i + 0.2 for i in x], pb, 0.4, label="LangChain top-1 chunk", color=peer)
    for i, (a, c) in enumerate(zip(ob, pb)):
        ax.annotate(f"{a:.2f}", (i - 0.2, a), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{c:.2f}", (i + 0.2, c), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [n.replace("_", " ") for n in names], fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("6. Gold evidence found (answerable dev questions)", fontsize=10)

    # 5. Memory.
    ax = axes[1][1]
    mem = get(b, "query_latency", "memory", default={})
    phases = mem.get("rss_by_phase_mb", {}) if mem else {}
    labels = [k.replace("_", "\n") for k in phases] + ["peak\nserving"]
    vals = list(phases.values()) + [mem.get("peak_rss_mb_serving")]
    bars(ax, labels, vals, [raw] * len(phases) + [ours], "{:.0f}", goal=600, goal_label="goal 600 MB")
    ax.set_title("5. Memory while serving: RSS by phase, MB", fontsize=10)

    # 6. Encoder variants: batch sweep and ONNX.
    ax = axes[1][2]
    sweep = get(b, "build_throughput", "batch_sweep", "runs", default={})
    swept_with = get(b, "build_throughput", "batch_sweep", "encoder", default=encoder)  # the build's encoder
    swept = "Encoder (ONNX int8)" if "int8" in swept_with else "Encoder (torch fp32)"
    for th, color in (("2", ours), ("1", alt)):
        pts = sorted((v["batch_size"], v["sentences_per_s"]) for v in sweep.values() if str(v["threads"]) == th)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=f"{swept}, {th} thread(s)")
    ox = get(b, "onnx_int8", "speed", "variants", default={})
    bs = get(b, "onnx_int8", "speed", "batch_size", default=64)
    n = get(b, "onnx_int8", "speed", "sample_sentences", default="?")
    for name, marker in (("torch_fp32", "D"), ("onnx_fp32", "s"), ("onnx_int8", "^"), ("onnx_int8_1thread", "v")):
        if name in ox:
            ax.plot([bs], [ox[name]["sentences_per_s"]], marker, ms=9,
                    label=f"{name.replace('_', ' ')}, batch {bs} ({n}-sentence sample)")
    ax.set_xscale("log", base=2)
    sizes = sorted({v["batch_size"] for v in sweep.values()} | ({bs} if ox else set()))
    if sizes:
        ax.set_xticks(sizes, [str(x) for x in sizes], fontsize=8)
    ax.set_xlabel("batch size", fontsize=8)
    ax.set_ylabel("sentences/s", fontsize=8)
    top = max([v["sentences_per_s"] for v in sweep.values()] + [v["sentences_per_s"] for v in ox.values()] + [1])
    ax.set_ylim(0, top * 1.7)  # room above the points for the legend
    ax.legend(fontsize=6.5, loc="upper right")
    rec = get(b, "onnx_int8", "recommendation", default={})
    ax.set_title(f"Encoder: batch sweep; 7. ONNX int8 x{rec.get('speedup_used_for_rule', '?')}, "
                 f"acc drop {rec.get('worst_accuracy_drop', '?')}", fontsize=10)

    fig.tight_layout(rect=(0, 0, 1, 0.95))
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=80)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
