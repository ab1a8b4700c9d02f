"""Benchmarks 3, 4 and 5: warm answer latency, cold start, memory while serving.

3. Warm ``Engine.ask`` latency (retrieval + answer, in process) over the dev questions
   (shared/eval/dev_briefing.jsonl + bench/data/extra_dev.jsonl, follow-ups asked with their
   history) repeated; p50/p95 (goal p50 <= 100 ms, p95 <= 250 ms: issue 9, cross-encoder included) with a per-stage breakdown
   (query embedding, search, answerer) and the raw encoder's one-query time as the floor.
4. Cold start: wall time of ``briefbot ask --json "..."`` as a fresh process on an existing
   index (goal < 3 s), its phases, and a ``python -X importtime`` summary of the top costs.
5. Memory: peak RSS of a process serving the index (goal < 600 MB), and of the CLI ask.

Each probe runs in a fresh subprocess so none of them inherits another's warm caches. Side
by side in the same run: the default threading and two alternatives (OMP_WAIT_POLICY=PASSIVE,
one torch thread), because on a busy 2-core machine OpenMP's spinning threads dominate.

    python bench/query_latency.py --articles 200
    python bench/query_latency.py --index /work/data/idx_bbc --documents /work/data/bbc_docs
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    ROOT, PhaseTimer, base_parser, corpus_tag, dev_rows, emit, ensure_index, latency_summary, log, machine_info,
    peak_rss_mb, rss_mb,
)

GOALS = {"p50_ms": 100.0, "p95_ms": 250.0, "cold_start_s": 3.0, "peak_rss_mb": 600.0}  # issue 9 (with the cross-encoder)
COLD_QUESTION = "When was Umerov informed?"
VARIANTS = {
    "default": {},
    "omp_passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "one_thread": {"OMP_NUM_THREADS": "1"},
}


# ---- the probe: runs in its own process ---------------------------------------------------
def probe(index: Path, documents: Path, repeats: int) -> dict:
    """Phases from import to first answer, then warm latency over the dev questions, then peak RSS.

    Nothing is loaded that ``ask`` doesn't load itself: the engine decides which encoder embeds
    questions (PyTorch, or the ONNX export once a build has made one)."""
    t_start = time.perf_counter()
    phases = {}

    def mark(name):
        phases[name] = {"s": round(time.perf_counter() - t_start, 3), "rss_mb": rss_mb()}

    mark("python_started")
    from bot.answering.engine import Engine
    from bot.answering.conversation import Turn
    from bot.config import Settings
    from bot.knowledge.search import Searcher

    mark("imported_engine")
    engine = Engine(Settings(documents_dir=documents, index_dir=index))
    snap, _searcher = engine._current()
    mark("index_loaded")
    first = engine.ask(COLD_QUESTION)
    mark("first_answer")

    rows = dev_rows()
    pt = PhaseTimer()
    pt.wrap(engine.encoder, "encode_query", "encode_query")
    pt.wrap(Searcher, "search", "search")
    pt.wrap(engine.answerer, "answer", "answer")
    for q in ("warm-up one", "Who is Rutte?", COLD_QUESTION):
        engine.ask(q)
    lat: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, list[float]] = defaultdict(list)

    def timed_ask(kind, question, history=()):
        pt.reset()
        t = time.perf_counter()
        answer = engine.ask(question, history)
        ms = (time.perf_counter() - t) * 1000
        lat["all"].append(ms)
        lat[kind].append(ms)
        enc = pt.seconds.get("encode_query", 0.0) * 1000
        search = pt.seconds.get("search", 0.0) * 1000
        stages["query_embedding"].append(enc)
        stages["search_without_embedding"].append(search - enc)
        stages["answerer"].append(pt.seconds.get("answer", 0.0) * 1000)
        stages["rest_of_ask"].append(ms - search - pt.seconds.get("answer", 0.0) * 1000)
        return answer

    for _ in range(repeats):
        for row in rows:
            kind = "answerable" if row.get("answerable", True) is not False else "unanswerable"
            first_answer = timed_ask("followup_first" if row.get("followup") else kind, row["question"])
            if row.get("followup"):
                timed_ask("followup", row["followup"], [Turn(first_answer.question, first_answer.answer)])
    pt.restore()
    mark("served")
    serving_peak = peak_rss_mb()
    torch_loaded = "torch" in sys.modules
    query_encoder = type(engine.encoder._query_model).__name__ if getattr(engine.encoder, "_query_model", None) else "torch"
    # The floor, measured last so loading PyTorch here can't inflate the serving figures above:
    # the raw SentenceTransformer embedding one question.
    import torch

    raw = []
    model = engine.encoder.model
    for row in rows:
        t = time.perf_counter()
        model.encode([row["question"]], show_progress_bar=False)
        raw.append((time.perf_counter() - t) * 1000)
    return {
        "phases": phases,
        "index": {"documents": len(snap.documents), "sentences": len(snap.sentences),
                  "vectors_mb": round(snap.vectors.nbytes / 2**20, 1)},
        "first_answer_ok": not first.abstained,
        "query_encoder": query_encoder,
        "torch_loaded_while_serving": torch_loaded,
        "torch_threads": torch.get_num_threads(),
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ},
        "repeats": repeats,
        "questions_per_pass": sum(1 + bool(r.get("followup")) for r in rows),
        "latency": {k: latency_summary(v) for k, v in lat.items()},
        "stages_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "stages_p95_ms": {k: round(sorted(v)[int(0.95 * (len(v) - 1))], 3) for k, v in stages.items()},
        "raw_sentence_transformer_one_query": latency_summary(raw),
        "peak_rss_mb_serving": serving_peak,
        "peak_rss_mb_with_torch_floor": peak_rss_mb(),
    }


# ---- the parent: subprocesses side by side --------------------------------------------------
def run_child_rusage(cmd: list[str], env_extra: dict | None = None) -> dict:
    """Run ``cmd``: wall time, CPU time (wait4) and peak RSS (the child's VmHWM, polled until it exits)."""
    import threading

    env = {**os.environ, **(env_extra or {})}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    bufs, hwm = {}, [0.0]
    done = threading.Event()

    def drain(name, fh):
        bufs[name] = fh.read()

    def watch():
        while not done.is_set():
            v = peak_rss_mb(proc.pid)
            if v == v:  # not NaN: the process is still there
                hwm[0] = max(hwm[0], v)
            done.wait(0.01)

    threads = [threading.Thread(target=drain, args=(n, f)) for n, f in (("out", proc.stdout), ("err", proc.stderr))]
    threads.append(threading.Thread(target=watch))
    for th in threads:
        th.start()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    for th in threads:
        th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(wall, 3), "returncode": proc.returncode, "peak_rss_mb": hwm[0],
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "stdout": bufs["out"].decode(errors="replace"), "stderr": bufs["err"].decode(errors="replace")}


def briefbot_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "briefbot"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.surfaces.cli"]


def cold_start(index: Path, documents: Path, runs: int) -> dict:
    cmd = [*briefbot_cmd(), "ask", "--json", COLD_QUESTION, "--index", str(index), "--documents", str(documents)]
    out = []
    for i in range(runs):
        log(f"cold start {i + 1}/{runs}: {' '.join(cmd[-6:])}")
        r = run_child_rusage(cmd)
        try:
            answer = json.loads(r["stdout"])
            ok = bool(answer.get("citations"))
            in_process_ms = answer.get("latency_ms")
        except ValueError:
            ok, in_process_ms = False, None
        out.append({"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"],
                    "returncode": r["returncode"], "answered_with_citation": ok, "ask_latency_ms": in_process_ms,
                    **({"stderr_tail": r["stderr"][-500:]} if r["returncode"] else {})})
    floors = {}
    for name, code in (("python_bare", "pass"), ("import_torch", "import torch"),
                       ("import_sentence_transformers", "import sentence_transformers"),
                       ("briefbot_help", None)):
        cmd2 = [*briefbot_cmd(), "--help"] if code is None else [sys.executable, "-c", code]
        walls = [run_child_rusage(cmd2)["wall_s"] for _ in range(2)]
        floors[name] = round(min(walls), 3)
    onnx = Path(os.environ.get("BRIEFBOT_BENCH_ONNX", "/work/data/onnx")) / "model_qint8_per_channel.onnx"
    if onnx.is_file():
        # What a torch-free query path would pay: onnxruntime + tokenizers, load int8 model, embed one question.
        code = ("import onnxruntime as ort, numpy as np; from tokenizers import Tokenizer; "
                f"s = ort.InferenceSession({str(onnx)!r}, providers=['CPUExecutionProvider']); "
                f"t = Tokenizer.from_file({str(onnx.parent / 'tokenizer.json')!r}); e = t.encode({COLD_QUESTION!r}); "
                "f = {'input_ids': np.array([e.ids]), 'attention_mask': np.array([e.attention_mask]), "
                "'token_type_ids': np.array([e.type_ids])}; s.run(None, f)")
        runs = [run_child_rusage([sys.executable, "-c", code]) for _ in range(2)]
        if all(r["returncode"] == 0 for r in runs):
            floors["onnx_int8_query_embedding_process"] = round(min(r["wall_s"] for r in runs), 3)
            floors["onnx_int8_query_embedding_peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    walls = [r["wall_s"] for r in out]
    return {"command": " ".join(cmd), "runs": out, "wall_s_median": round(statistics.median(walls), 3),
            "wall_s_min": round(min(walls), 3), "goal_s": GOALS["cold_start_s"],
            "meets_goal": statistics.median(walls) < GOALS["cold_start_s"], "floors_wall_s": floors}


def import_times(index: Path, documents: Path, top: int = 15) -> dict:
    """``python -X importtime`` of the real ask command, summarized."""
    cmd = [sys.executable, "-X", "importtime", "-m", "bot.surfaces.cli", "ask", "--json", COLD_QUESTION,
           "--index", str(index), "--documents", str(documents)]
    r = run_child_rusage(cmd)
    rows = []
    for line in r["stderr"].splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    by_package_self = defaultdict(int)
    for self_us, _cum, _lvl, name in rows:
        by_package_self[name.split(".")[0]] += self_us
    top_level = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:top]
    total_us = sum(r[1] for r in rows if r[2] == 0)
    return {
        "command": " ".join(cmd[:4]) + " ...",
        "wall_s": r["wall_s"],
        "total_import_s": round(total_us / 1e6, 3),
        "top_level_cumulative_s": {name: round(cum / 1e6, 3) for _s, cum, _l, name in top_level},
        "by_package_self_s": {k: round(v / 1e6, 3) for k, v in sorted(by_package_self.items(), key=lambda kv: -kv[1])[:top]},
        "top_self_s": {name: round(s / 1e6, 3) for s, _c, _l, name in sorted(rows, key=lambda r: -r[0])[:top]},
    }


def main() -> int:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, help="an existing index folder (default: <workdir>/idx-<articles>, built if needed)")
    ap.add_argument("--documents", type=Path, help="its documents folder")
    ap.add_argument("--repeats", type=int, default=5, help="passes over the dev questions per probe")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"threading variants to probe: {','.join(VARIANTS)}")
    ap.add_argument("--probe", action="store_true", help=argparse_hidden())
    args = ap.parse_args()

    if args.probe:
        print(json.dumps(probe(args.index, args.documents, args.repeats)))
        return 0

    result = {"benchmark": "query_latency", "machine": machine_info(), "goals": GOALS}
    if args.index:
        if not args.documents:
            ap.error("--index needs --documents")
        docs, index = args.documents, args.index
        result["articles"] = "given index"
    else:
        docs, index = ensure_index(args.workdir, args.articles)
        result["articles"] = corpus_tag(args.articles)
    result["index_dir"], result["documents_dir"] = str(index), str(docs)

    probes = {}
    for name in [v for v in args.variants.split(",") if v]:
        log(f"serving probe '{name}' ({VARIANTS[name] or 'project defaults'}), {args.repeats} passes")
        r = run_child_rusage([sys.executable, str(Path(__file__).resolve()), "--probe", "--index", str(index),
                              "--documents", str(docs), "--repeats", str(args.repeats)], VARIANTS[name])
        if r["returncode"] != 0:
            probes[name] = {"error": r["stderr"][-2000:]}
            continue
        data = json.loads(r["stdout"].strip().splitlines()[-1])
        data["process_wall_s"] = r["wall_s"]
        probes[name] = data
    result["serving_probes"] = probes
    d = probes.get("default", {})
    if "latency" in d:
        lat = d["latency"]["all"]
        result["warm_latency"] = {**lat, "meets_goal": lat["p50_ms"] < GOALS["p50_ms"] and lat["p95_ms"] < GOALS["p95_ms"],
                                  "query_encoder": d["query_encoder"], "stages_p50_ms": d["stages_p50_ms"],
                                  "raw_sentence_transformer_one_query_p50_ms":
                                  d["raw_sentence_transformer_one_query"]["p50_ms"]}
        result["memory"] = {"peak_rss_mb_serving": d["peak_rss_mb_serving"], "goal_mb": GOALS["peak_rss_mb"],
                            "meets_goal": d["peak_rss_mb_serving"] < GOALS["peak_rss_mb"],
                            "torch_loaded_while_serving": d["torch_loaded_while_serving"],
                            "rss_by_phase_mb": {k: v["rss_mb"] for k, v in d["phases"].items()},
                            "peak_rss_mb_after_loading_torch_too": d["peak_rss_mb_with_torch_floor"]}
    result["cold_start"] = cold_start(index, docs, args.cold_runs)
    result["cold_start"]["in_process_phases_s"] = {k: v["s"] for k, v in d.get("phases", {}).items()}
    if "memory" in result:
        result["memory"]["peak_rss_mb_cli_ask"] = max(r["peak_rss_mb"] for r in result["cold_start"]["runs"])
    log("python -X importtime of the ask command")
    result["import_times"] = import_times(index, docs)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    emit(result, args.out)
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
