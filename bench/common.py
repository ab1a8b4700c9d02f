"""Shared helpers for the benchmark scripts: corpus folders, machine info, dev rows, timing, JSON out.

Benchmarks write their working folders (documents, indexes, exported models) under
``--workdir`` (default /work/data/bench, outside the repository) and never touch ``index/``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import shutil
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import corpus  # noqa: E402  (the corpus layout belongs to bench/corpus.py)

DEV_FILES = {
    "dev": ROOT.parent / "shared" / "eval" / "dev_briefing.jsonl",
    "extra": ROOT / "bench" / "data" / "extra_dev.jsonl",
}
DEFAULT_WORKDIR = Path(os.environ.get("BRIEFBOT_BENCH_WORKDIR", "/work/data/bench"))
TOTAL_ARTICLES = 2225


def base_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--articles", type=int, default=None,
                    help="index only the first N BBC articles (default: all 2,225); 0 = the briefing alone")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON result to this file")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help=f"scratch folder for documents, indexes and models (default {DEFAULT_WORKDIR})")
    return ap


def corpus_tag(articles: int | None) -> str:
    return "all" if articles is None or articles >= TOTAL_ARTICLES else str(articles)


def prepare_docs(workdir: Path, articles: int | None) -> Path:
    """A documents folder with the briefing plus the first ``articles`` BBC articles (None = all).

    Reused when it already holds exactly that set (a marker file records it); written afresh
    otherwise, so a benchmark never indexes a folder someone edited by hand.
    """
    tag = corpus_tag(articles)
    target = Path(workdir) / f"docs-{tag}"
    marker = Path(workdir) / f".docs-{tag}.ok"
    arts = corpus.bbc_articles()
    if articles is not None:
        arts = arts[: max(0, articles)]
    expected = {corpus.BRIEFING.name, *(name for name, _ in arts)}
    if marker.is_file() and target.is_dir() and {p.name for p in target.iterdir()} == expected:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(corpus.BRIEFING, target / corpus.BRIEFING.name)
    for name, text in arts:
        (target / name).write_text(text, encoding="utf-8")
    marker.write_text(f"{len(expected)}\n")
    return target


def ensure_index(workdir: Path, articles: int | None, docs: Path | None = None) -> tuple[Path, Path]:
    """(documents, index) for the read-mostly benchmarks: ``<workdir>/idx-<tag>``, seeded from the
    build benchmark's folder when that exists (same documents, so the embedding cache is valid),
    then brought up to date with an ordinary incremental build (a no-op when nothing changed)."""
    tag = corpus_tag(articles)
    docs = docs or prepare_docs(workdir, articles)
    index = Path(workdir) / f"idx-{tag}"
    seed = Path(workdir) / f"idx-build-{tag}"
    if not (index / "CURRENT").is_file() and (seed / "CURRENT").is_file():
        if index.exists():
            shutil.rmtree(index)
        shutil.copytree(seed, index, ignore=shutil.ignore_patterns(".lock"))
    from bot.answering.engine import Engine
    from bot.config import Settings

    log(f"bringing {index} up to date with {docs}")
    report = Engine(Settings(documents_dir=docs, index_dir=index)).build()
    log(report.summary().splitlines()[0])
    return docs, index


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    flags = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split())
    except (OSError, AttributeError):
        pass
    versions = {}
    for mod in ("torch", "sentence_transformers", "transformers", "faiss", "bm25s", "onnxruntime",
                "langchain_text_splitters", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # not installed or no version: leave it out
            pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gb": mem_gb,
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16"}),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                       if k in os.environ},
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except Exception:
        pass
    info["git"] = git_state()
    return info


def git_state() -> dict:
    """The commit measured, and whether core files had uncommitted edits (others work here too)."""
    import subprocess

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "bot").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD"), "core_files_modified": dirty}


def dev_rows(which: tuple[str, ...] = ("dev", "extra")) -> list[dict]:
    """Rows of the dev sets, each tagged with ``set`` (dev | extra)."""
    rows = []
    for name in which:
        for line in DEV_FILES[name].read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                row["set"] = name
                rows.append(row)
    return rows


def dev_questions(rows: list[dict]) -> list[tuple[str, list[tuple[str, str]] | None]]:
    """(question, None) for single questions; follow-ups as (followup, [(question, None)]) markers."""
    out = []
    for row in rows:
        out.append((row["question"], None))
        if row.get("followup"):
            out.append((row["followup"], [(row["question"], None)]))
    return out


_WS = re.compile(r"\s+")


def squeeze(text: str) -> str:
    return _WS.sub(" ", text).strip()


def evidence_hit(text: str, evidence: list[str]) -> bool:
    """Whether ``text`` quotes one of the gold evidence strings (whitespace-insensitive)."""
    t = squeeze(text)
    return any(squeeze(ev) in t for ev in evidence)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return round(float(np.percentile(values, p)), 3)


def latency_summary(ms: list[float]) -> dict:
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else None,
        "max_ms": round(max(ms), 3) if ms else None,
    }


class Clock:
    """Wall time, this process's CPU time (all threads) and the machine load while it ran."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.load = None

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall, 3), "cpu_s": round(self.cpu, 3),
                "cpu_per_wall": round(self.cpu / self.wall, 2) if self.wall else None,
                "loadavg_1m_after": self.load}


@contextmanager
def clock():
    c = Clock()
    w, p = time.perf_counter(), time.process_time()
    try:
        yield c
    finally:
        c.wall = time.perf_counter() - w
        c.cpu = time.process_time() - p
        c.load = round(os.getloadavg()[0], 2)


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size of a process so far: VmHWM, which belongs to the process's own
    memory map. (ru_maxrss is not used: Linux carries the parent's high-water mark across
    fork + exec, so every child of a big parent would report at least the parent's size.)"""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1) if pid == "self" else float("nan")


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def count_tokens(tokenizer, texts, max_length: int = 256, chunk: int = 4096) -> int:
    """Tokens the model sees (special tokens included, truncated as the model truncates)."""
    total = 0
    for lo in range(0, len(texts), chunk):
        enc = tokenizer(list(texts[lo : lo + chunk]), truncation=True, max_length=max_length,
                        add_special_tokens=True)
        total += sum(len(ids) for ids in enc["input_ids"])
    return total


def emit(result: dict, out: Path | None) -> None:
    text = json.dumps(result, indent=1, ensure_ascii=False, default=str)
    print(text)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")


def log(msg: str) -> None:
    """Progress for people, on stderr so stdout stays pure JSON."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class PhaseTimer:
    """Accumulates wall time per named function while patched in (nested phases are separate)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list = []

    def wrap(self, owner, attr: str, name: str | None = None) -> None:
        original = getattr(owner, attr)
        label = name or attr

        @functools.wraps(original)
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.seconds[label] += time.perf_counter() - t
                self.calls[label] += 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def snapshot(self) -> dict:
        return {k: round(v, 3) for k, v in sorted(self.seconds.items(), key=lambda kv: -kv[1])}

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()
