"""Benchmark 6: the tutorial LangChain RAG pipeline, side by side with briefbot in one process.

The peer, as most RAG bots build it: each document split by langchain-text-splitters'
``RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)``, the same all-MiniLM-L6-v2
through sentence-transformers (``HuggingFaceEmbeddings`` defaults: ``encode`` with batch size
32), a flat FAISS L2 index (what ``FAISS.from_documents`` makes; faiss used directly, no
langchain-community) and ``similarity_search(query, k=3)``.

Measured for both, on the same documents, in the same process:
- index time: the peer's split + embed + add, against briefbot's full build on a fresh index
  folder (no embedding cache), on ``--speed-articles`` articles (default 300; ``all`` for the
  whole corpus);
- query latency: the peer's embed + search, against briefbot's whole ``ask``;
- evidence: on the answerable dev questions, how often the peer's top-1 chunk contains the
  gold evidence, against how often briefbot's top citation quotes it; with and without the BBC
  distractors. The peer has no conversation memory, so a follow-up is searched as asked (and,
  as a generous variant, with its first question prepended).

    python bench/langchain_peer.py --articles 200 --speed-articles 50
    python bench/langchain_peer.py --out bench/results/langchain_peer.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    TOTAL_ARTICLES, base_parser, clock, corpus_tag, count_tokens, dev_rows, emit, ensure_index, evidence_hit, fresh_dir,
    latency_summary, log, machine_info, peak_rss_mb, prepare_docs,
)

CHUNK_SIZE, CHUNK_OVERLAP, K = 500, 50, 3
# The peer runs in its own process in real life, with PyTorch's default threads. Here it shares
# a process with briefbot, whose search calls faiss.omp_set_num_threads(1), and that setting is
# OpenMP's, so PyTorch drops to one thread too: the peer's indexing restores the default first.
TORCH_THREADS = None
PEER_BATCH = 32  # HuggingFaceEmbeddings -> SentenceTransformer.encode default


class Peer:
    """The tutorial pipeline, without the LLM call (retrieval is what is compared)."""

    def __init__(self, model):
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        self.model = model
        self.splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
        self.chunks: list[str] = []
        self.sources: list[str] = []
        self.index = None

    def build(self, docs: Path) -> dict:
        import faiss
        import torch

        if TORCH_THREADS:
            torch.set_num_threads(TORCH_THREADS)

        timings = {}
        t = time.perf_counter()
        for path in sorted(docs.iterdir()):
            if path.suffix == ".txt":
                text = path.read_text(encoding="utf-8")  # TextLoader
                for chunk in self.splitter.split_text(text):
                    self.chunks.append(chunk)
                    self.sources.append(path.name)
        timings["load_and_split_s"] = time.perf_counter() - t
        t = time.perf_counter()
        vectors = self.model.encode(self.chunks, batch_size=PEER_BATCH, convert_to_numpy=True, show_progress_bar=False)
        timings["embed_s"] = time.perf_counter() - t
        t = time.perf_counter()
        self.index = faiss.IndexFlatL2(vectors.shape[1])
        self.index.add(vectors.astype("float32"))
        timings["faiss_add_s"] = time.perf_counter() - t
        timings = {k: round(v, 3) for k, v in timings.items()}
        timings["chunks"] = len(self.chunks)
        timings["torch_threads"] = torch.get_num_threads()
        return timings

    def similarity_search(self, query: str, k: int = K) -> list[str]:
        qv = self.model.encode([query], convert_to_numpy=True, show_progress_bar=False).astype("float32")
        _d, ids = self.index.search(qv, k)
        return [self.chunks[i] for i in ids[0] if i >= 0]


def load_model():
    from sentence_transformers import SentenceTransformer

    from bot.knowledge.embed import resolve_model

    return SentenceTransformer(resolve_model("")[1], device="cpu")


def speed(args, model, encoder) -> dict:
    """Index both systems fresh on the same documents, back to back in this process."""
    from bot.answering.engine import Engine
    from bot.config import Settings

    n = None if args.speed_articles in ("all", None) else int(args.speed_articles)
    if args.articles is not None and (n is None or n > args.articles):
        n = args.articles  # never index more for the speed pair than the run itself uses
    docs = prepare_docs(args.workdir, n)
    index = fresh_dir(args.workdir / f"idx-peer-speed-{corpus_tag(n)}")
    log(f"speed: briefbot full build of {docs.name} (fresh index, no cache)")
    engine = Engine(Settings(documents_dir=docs, index_dir=index), encoder=encoder)
    with clock() as c_ours:
        report = engine.build()
    snap = engine._current()[0]
    ours_tokens = count_tokens(model.tokenizer, sorted(set(snap.sentences.texts)), model.max_seq_length)
    log(f"speed: peer index of {docs.name}")
    peer = Peer(model)
    with clock() as c_peer:
        timings = peer.build(docs)
    peer_tokens = count_tokens(model.tokenizer, peer.chunks, model.max_seq_length)
    return {
        "articles": corpus_tag(n),
        "documents": len(snap.documents),
        "briefbot": {**c_ours.as_dict(), "sentences_embedded": report.sentences_embedded, "tokens": ours_tokens,
                     "tokens_per_s": round(ours_tokens / c_ours.wall, 1)},
        "peer": {**c_peer.as_dict(), **timings, "tokens": peer_tokens,
                 "tokens_per_s": round(peer_tokens / c_peer.wall, 1)},
        "peer_over_briefbot_time": round(c_peer.wall / c_ours.wall, 3),
    }


def evaluate(engine, peer: Peer, rows: list[dict], repeats: int) -> dict:
    from bot.answering.conversation import Turn

    ours_lat, peer_lat = [], []
    per_q = []
    for row in rows:
        answerable = row.get("answerable", True) is not False
        first = engine.ask(row["question"])
        answer = first
        if row.get("followup"):
            answer = engine.ask(row["followup"], [Turn(first.question, first.answer)])
        asked = row.get("followup") or row["question"]
        hits = peer.similarity_search(asked)
        generous = peer.similarity_search(f"{row['question']} {row['followup']}") if row.get("followup") else hits
        ev = row.get("evidence", [])
        per_q.append({
            "id": row["id"], "set": row["set"], "answerable": answerable,
            "ours_top_citation": bool(answer.citations) and evidence_hit(answer.citations[0].text, ev) if ev else None,
            "ours_any_citation": any(evidence_hit(c.text, ev) for c in answer.citations) if ev else None,
            "ours_abstained": answer.abstained,
            "peer_top1": evidence_hit(hits[0], ev) if ev and hits else None,
            "peer_top3": any(evidence_hit(h, ev) for h in hits) if ev else None,
            "peer_top1_with_first_question": evidence_hit(generous[0], ev) if ev and generous else None,
        })
    # Latency: every question, repeated, both systems alternating so drift hits both alike.
    questions = [q for r in rows for q in ([r["question"]] + ([r["followup"]] if r.get("followup") else []))]
    engine.ask("warm-up")
    peer.similarity_search("warm-up")
    for _ in range(repeats):
        for q in questions:
            t = time.perf_counter()
            engine.ask(q)
            ours_lat.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            peer.similarity_search(q)
            peer_lat.append((time.perf_counter() - t) * 1000)

    def rate(key, subset):
        xs = [q[key] for q in subset if q[key] is not None]
        return round(sum(xs) / len(xs), 4) if xs else None

    out = {}
    for name, subset in (("dev", [q for q in per_q if q["set"] == "dev"]),
                         ("extra", [q for q in per_q if q["set"] == "extra"]),
                         ("all", per_q)):
        ans = [q for q in subset if q["answerable"]]
        una = [q for q in subset if not q["answerable"]]
        out[name] = {
            "answerable": len(ans),
            "briefbot_top_citation_evidence": rate("ours_top_citation", ans),
            "briefbot_any_citation_evidence": rate("ours_any_citation", ans),
            "briefbot_false_abstentions": sum(q["ours_abstained"] for q in ans),
            "briefbot_abstains_on_unanswerable": round(sum(q["ours_abstained"] for q in una) / len(una), 4) if una else None,
            "peer_top1_evidence": rate("peer_top1", ans),
            "peer_top3_evidence": rate("peer_top3", ans),
            "peer_top1_evidence_followups_with_first_question": rate("peer_top1_with_first_question", ans),
            "peer_abstains_on_unanswerable": 0.0 if una else None,
        }
    return {
        "evidence": out,
        "latency": {"briefbot_ask": latency_summary(ours_lat), "peer_similarity_search": latency_summary(peer_lat)},
        "per_question": per_q,
    }


def main() -> int:
    ap = base_parser(__doc__.splitlines()[0])
    ap.add_argument("--speed-articles", default="300",
                    help="articles for the side-by-side fresh index timing ('all' = the whole corpus)")
    ap.add_argument("--repeats", type=int, default=3, help="passes over the dev questions for latency")
    ap.add_argument("--build-results", type=Path,
                    help="build_throughput JSON of the same run: adds its full-corpus build time next to the peer's")
    args = ap.parse_args()
    import torch

    global TORCH_THREADS
    TORCH_THREADS = torch.get_num_threads()

    result = {"benchmark": "langchain_peer", "machine": machine_info(), "articles": corpus_tag(args.articles),
              "peer_config": {"splitter": f"RecursiveCharacterTextSplitter({CHUNK_SIZE}, {CHUNK_OVERLAP})",
                              "embedding": "all-MiniLM-L6-v2 via SentenceTransformer.encode, batch 32",
                              "index": "faiss.IndexFlatL2", "k": K}}
    from bot.answering.engine import Engine
    from bot.config import Settings
    from bot.knowledge.embed import Encoder

    encoder = Encoder()
    model = load_model()
    encoder.encode(["warm-up"])
    model.encode(["warm-up"], show_progress_bar=False)
    rows = dev_rows()

    result["index_speed"] = speed(args, model, encoder)
    conditions = {"briefing_only": 0, "with_bbc": args.articles if args.articles is not None else TOTAL_ARTICLES}
    result["conditions"] = {}
    for name, n in conditions.items():
        if name == "with_bbc" and n == 0:
            continue
        docs, index = ensure_index(args.workdir, n)
        engine = Engine(Settings(documents_dir=docs, index_dir=index), encoder=encoder)
        log(f"{name}: peer index of {docs.name}")
        peer = Peer(model)
        with clock() as c_peer:
            timings = peer.build(docs)
        log(f"{name}: evaluating both on {len(rows)} dev rows")
        ev = evaluate(engine, peer, rows, args.repeats)
        snap = engine._current()[0]
        result["conditions"][name] = {"documents": len(snap.documents), "briefbot_sentences": len(snap.sentences),
                                      "peer_index": {**c_peer.as_dict(), **timings}, **ev}
    if args.build_results and args.build_results.is_file():
        b = json.loads(args.build_results.read_text())
        fb = b.get("full_build", {})
        if "with_bbc" in result["conditions"] and b.get("articles") == result["articles"]:
            result["full_corpus_index_time"] = {
                "briefbot_build_s": fb.get("build", {}).get("wall_s"),
                "peer_index_s": result["conditions"]["with_bbc"]["peer_index"]["wall_s"],
                "note": "briefbot's from build_throughput in the same run_all (fresh folder, no cache)",
            }
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
