"""Peers on the same model, corpus and queries, in one run: quality (R@1, R@5) beside latency.

    .venv/bin/python benchmarks/bench_peers.py [--sets drcd/dev,cmrc2018/dev,xquad/en-zh-dev]
        [--queries 300] [--peer-python /tmp/rag-peers-venv/bin/python] [--json PATH]

Systems, each indexing one external set's corpus.jsonl on its own (like tune_fusion.py):

* ``rag`` — this project (``RagService.search``, hybrid, paragraph + sentence vectors), with
  its defaults: on a CPU with native bfloat16 the question is encoded in bfloat16
  (``RAG_EMBED_QUERY_DTYPE=auto``), so a second row runs it with float32 questions, the
  peers' precision, to show what the retrieval itself costs;
* ``bm25s`` — bm25s alone, the README floor of the external data (NFKC, lower case, OpenCC
  t2s, jieba ``lcut_for_search``, k1 1.2, b 0.75; score 0 = not retrieved);
* ``st+faiss`` — a plain script: ``SentenceTransformer(<the same converted e5-small>)``,
  one vector per paragraph (``passage: `` prompt, truncated at 512 tokens), ``IndexFlatIP``,
  the query encoded with ``query: ``;
* ``haystack`` / ``haystack-hybrid`` — Haystack's (haystack-ai 3.x + sentence-transformers-haystack) standard pipelines in their own virtualenv
  (``--peer-python``; skipped when absent): ``SentenceTransformersTextEmbedder`` ->
  ``InMemoryEmbeddingRetriever``, and that plus ``InMemoryBM25Retriever`` joined by
  ``DocumentJoiner`` (reciprocal rank fusion), Haystack's documented hybrid recipe.

Paragraph vectors of the peers are the same model's output for the same ``passage: `` text;
they are computed once and cached by content hash in ``<work>/peers/vectors.sqlite3`` (the
project's cache supplies paragraphs that were already a single chunk), so the peers' indexing
time below excludes encoding (the encoder's rate is bench_encoder.py / bench_pipeline.py).
Query latency always includes encoding the query with the real model, one query at a time.
This project and bm25s run in this process; the plain script in a fresh process of the same
environment and Haystack in its own virtualenv, so no system's threads or thread limits reach
another's.
Queries: a seeded sample (seed 0) of ``--queries`` per set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

EXTERNAL = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external"))
DEFAULT_SETS = "drcd/dev,cmrc2018/dev,xquad/en-zh-dev"
SEED = 0


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _pct(v: list[float], q: float) -> float:
    return round(float(np.percentile(v, q)), 1) if v else float("nan")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _score(name: str, ranked: list[list[str]], queries: list[dict], lat_ms: list[float], index_s: float,
           cpu_ms: list[float] | None = None) -> dict:
    r1 = np.mean([1.0 if set(q["gold"]) & set(r[:1]) else 0.0 for q, r in zip(queries, ranked, strict=True)])
    r5 = np.mean([1.0 if set(q["gold"]) & set(r[:5]) else 0.0 for q, r in zip(queries, ranked, strict=True)])
    return {"system": name, "r_at_1": round(float(r1), 3), "r_at_5": round(float(r5), 3),
            "p50_ms": _pct(lat_ms, 50), "p95_ms": _pct(lat_ms, 95),
            "cpu_ms_p50": _pct(cpu_ms or [], 50), "index_s": round(index_s, 2), "load": _load()}


# --- peers in the project's environment -------------------------------------------------------


def run_bm25s(corpus: list[dict], queries: list[dict]) -> dict:
    import unicodedata

    import bm25s
    import jieba
    import opencc

    jieba.setLogLevel(60)
    cc = opencc.OpenCC("t2s")

    def tok(text: str) -> list[str]:
        return [t for t in jieba.lcut_for_search(cc.convert(unicodedata.normalize("NFKC", text).lower())) if t.strip()]

    t = time.perf_counter()
    bm = bm25s.BM25(k1=1.2, b=0.75)
    bm.index([tok(r["text"]) for r in corpus], show_progress=False)
    index_s = time.perf_counter() - t
    ids = [r["id"] for r in corpus]
    ranked, lat, cpu = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        s = bm.get_scores(tok(q["question"]))
        top = np.argsort(-s)[:10]
        ranked.append([ids[i] for i in top if s[i] > 0])
        lat.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return _score("bm25s alone", ranked, queries, lat, index_s, cpu)


def paragraph_vectors(corpus: list[dict], work: Path, model_folder: Path) -> np.ndarray:
    """The e5 vector of each whole paragraph (``passage: ``), cached by content hash."""
    from rag.config import get_settings
    from rag.embedding import DEFAULT_MODEL_ID, get_encoder
    from rag.embedding.cache import EmbeddingCache, text_key

    keys = [text_key(DEFAULT_MODEL_ID, "passage", r["text"]) for r in corpus]
    peer = EmbeddingCache(work / "vectors.sqlite3")
    found = peer.get_many(keys)
    missing = [k for k in keys if k not in found]
    if missing:  # paragraphs that were one chunk are in the project's cache already
        main = EmbeddingCache(get_settings().cache_dir / "embeddings.sqlite3")
        found.update(main.get_many(missing))
        main.close()
    todo = [(k, r["text"]) for k, r in zip(keys, corpus, strict=True) if k not in found]
    todo = list(dict(todo).items())
    if todo:
        print(f"  encoding {len(todo)} paragraphs for the peers (once; cached)", file=sys.stderr, flush=True)
        # float32, as the key says (and as the peers' own scripts encode)
        vecs = get_encoder(get_settings(), passage_dtype="float32").encode([t for _, t in todo], kind="passage", show_progress=True)
        peer.put_many(list(zip([k for k, _ in todo], vecs, strict=True)))
        found.update(zip([k for k, _ in todo], vecs, strict=True))
    peer.put_many([(k, found[k]) for k in keys])
    peer.close()
    return np.stack([found[k] for k in keys]).astype(np.float32)


def run_st_faiss_spec(spec_path: Path) -> list[dict]:
    """The plain script on every set of the spec, in a process of its own.

    Its own process, so that nothing of this project's process (its torch thread's OpenMP
    team, its thread limits) reaches the script's encoder: each system runs as it would alone.
    """
    from sentence_transformers import SentenceTransformer

    spec = json.loads(spec_path.read_text())
    model = SentenceTransformer(spec["model"], device="cpu")
    model.encode(["warm up"], prompt="query: ")
    out = []
    for s in spec["sets"]:
        r = run_st_faiss(_jsonl(Path(s["corpus"])), _jsonl(Path(s["queries"])), np.load(s["vectors"]), model)
        out.append({"set": s["name"], **r})
    return out


def run_st_faiss(corpus: list[dict], queries: list[dict], vecs: np.ndarray, model) -> dict:
    import faiss

    t = time.perf_counter()
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    index_s = time.perf_counter() - t
    ids = [r["id"] for r in corpus]
    ranked, lat, cpu = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        qv = model.encode([q["question"]], prompt="query: ", normalize_embeddings=True, convert_to_numpy=True)
        _, rows = index.search(np.asarray(qv, dtype=np.float32), 10)
        ranked.append([ids[i] for i in rows[0] if i >= 0])
        lat.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return _score("sentence-transformers + FAISS (plain)", ranked, queries, lat, index_s, cpu)


def get_encoder_dtype() -> str:
    """The precision the product encodes questions in on this machine (RAG_EMBED_QUERY_DTYPE)."""
    from rag.config import get_settings
    from rag.embedding.encoder import resolve_query_dtype

    s = get_settings()
    return resolve_query_dtype(s.embed_query_dtype, s.embed_device)


def run_rag(name: str, queries: list[dict], work: Path, query_dtype: str | None = None) -> dict:
    from rag.config import get_settings
    from rag.index.build import build_index
    from rag.service import RagService

    settings = get_settings()
    if query_dtype:  # the product with its questions in another precision (RAG_EMBED_QUERY_DTYPE)
        settings = settings.model_copy(update={"embed_query_dtype": query_dtype})
    index_dir = work / f"rag-{name.replace('/', '-')}"  # own folder: the lead's eval-index may be busy
    t = time.perf_counter()
    build_index([EXTERNAL / name / "corpus.jsonl"], index_dir, settings)  # vectors from the cache
    from rag.threads import limit_process

    limit_process()  # as the `rag` commands do: questions run on this thread
    svc = RagService.open(index_dir, settings)
    index_s = time.perf_counter() - t
    svc.search(queries[0]["question"], 10)
    ranked, lat, cpu = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        hits = svc.search(q["question"], 10)
        lat.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        ranked.append([h.para_id for h in hits])
    label = f"rag (this project), questions in {svc.encoder.query_dtype}"
    out = _score(label if query_dtype else "rag (this project)", ranked, queries, lat, index_s, cpu)
    out["query_dtype"] = svc.encoder.query_dtype
    out["index_note"] = "build_index (vectors from the cache) + load"
    return out


# --- Haystack, run by the peer virtualenv's python ---------------------------------------------


def run_haystack(spec_path: Path) -> list[dict]:
    from haystack import Document, Pipeline
    try:  # Haystack 3 moved it to the sentence-transformers-haystack integration
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersTextEmbedder,
        )
    except ImportError:  # Haystack 2
        from haystack.components.embedders import SentenceTransformersTextEmbedder
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    spec = json.loads(spec_path.read_text())
    out = []
    for s in spec["sets"]:
        corpus = _jsonl(Path(s["corpus"]))
        queries = _jsonl(Path(s["queries"]))
        vecs = np.load(s["vectors"])
        t = time.perf_counter()
        store = InMemoryDocumentStore(index=s["name"])  # defaults: BM25L, per-CJK-character tokens
        store.write_documents([Document(id=r["id"], content=r["text"], embedding=v.tolist()) for r, v in zip(corpus, vecs, strict=True)])
        index_s = time.perf_counter() - t
        for hybrid in (False, True):
            p = Pipeline()
            p.add_component("embed", SentenceTransformersTextEmbedder(model=spec["model"], prefix="query: ", normalize_embeddings=True,
                                                                           progress_bar=False))
            p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=10))
            p.connect("embed.embedding", "dense.query_embedding")
            if hybrid:
                p.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=10))
                p.add_component("join", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=10))
                p.connect("dense", "join")
                p.connect("bm25", "join")
            p.warm_up()

            def ask(q: str, p=p, hybrid=hybrid):
                data = {"embed": {"text": q}}
                if hybrid:
                    data["bm25"] = {"query": q}
                res = p.run(data)
                return (res["join"] if hybrid else res["dense"])["documents"]

            ask(queries[0]["question"])
            ranked, lat, cpu = [], [], []
            for q in queries:
                t, c = time.perf_counter(), time.process_time()
                docs = ask(q["question"])
                lat.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
                ranked.append([d.id for d in docs])
            name = "Haystack hybrid (embedding + BM25, RRF)" if hybrid else "Haystack embedding retriever"
            out.append({"set": s["name"], **_score(name, ranked, queries, lat, index_s, cpu)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=DEFAULT_SETS)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("RAG_BENCH_DIR", "/tmp/rag-bench")) / "peers")
    ap.add_argument("--peer-python", default=os.environ.get("RAG_PEER_PYTHON", "/tmp/rag-peers-venv/bin/python"))
    ap.add_argument("--haystack-spec", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--st-faiss-spec", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.haystack_spec:  # inside the peer virtualenv
        print(json.dumps(run_haystack(args.haystack_spec)))
        return
    if args.st_faiss_spec:  # a fresh process of this environment
        print(json.dumps(run_st_faiss_spec(args.st_faiss_spec)))
        return

    from rag.config import get_settings
    from rag.embedding import build_default_model

    args.work.mkdir(parents=True, exist_ok=True)
    model_folder = Path(build_default_model(get_settings().cache_dir))
    results, spec = [], {"model": str(model_folder), "sets": []}
    for name in args.sets.split(","):
        folder = EXTERNAL / name
        corpus = _jsonl(folder / "corpus.jsonl")
        allq = _jsonl(folder / "queries.jsonl")
        queries = random.Random(SEED).sample(allq, min(args.queries, len(allq)))
        vecs = paragraph_vectors(corpus, args.work, model_folder)
        slug = name.replace("/", "-")
        np.save(args.work / f"{slug}.npy", vecs)
        (args.work / f"{slug}.queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries))
        spec["sets"].append({"name": name, "corpus": str(folder / "corpus.jsonl"), "queries": str(args.work / f"{slug}.queries.jsonl"),
                             "vectors": str(args.work / f"{slug}.npy")})
        for system in ("rag", "rag-float32", "bm25s"):
            if system == "rag":
                r = run_rag(name, queries, args.work)
            elif system == "rag-float32":  # where the default is bfloat16: the retrieval alone, same precision as the peers
                if get_encoder_dtype() == "float32":
                    continue
                r = run_rag(name, queries, args.work, "float32")
            else:
                r = run_bm25s(corpus, queries)
            r = {"set": name, "paragraphs": len(corpus), "queries": len(queries), **r}
            print(f"  {name}: {r['system']}: R@5 {r['r_at_5']}, p50 {r['p50_ms']} ms (load {r['load'][0]})", file=sys.stderr, flush=True)
            results.append(r)
    spec_path = args.work / "peer-spec.json"
    spec_path.write_text(json.dumps(spec))
    print("  running the plain sentence-transformers + FAISS script in its own process", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, "--st-faiss-spec", str(spec_path)], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"the plain script failed:\n{proc.stderr[-3000:]}")
    for r in json.loads(proc.stdout.strip().splitlines()[-1]):
        n = next(x for x in results if x["set"] == r["set"])
        results.append({"paragraphs": n["paragraphs"], "queries": n["queries"], **r})
    if Path(args.peer_python).exists():
        print("  running Haystack in its own virtualenv", file=sys.stderr, flush=True)
        proc = subprocess.run([args.peer_python, __file__, "--haystack-spec", str(spec_path)], capture_output=True, text=True,
                              env={**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode == 0:
            for r in json.loads(proc.stdout.strip().splitlines()[-1]):
                n = next(x for x in results if x["set"] == r["set"])
                results.append({"paragraphs": n["paragraphs"], "queries": n["queries"], **r})
        else:
            print(f"Haystack run failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
    else:
        print(f"no peer virtualenv at {args.peer_python}: Haystack skipped", file=sys.stderr)

    sets = list(dict.fromkeys(r["set"] for r in results))
    systems = list(dict.fromkeys(r["system"] for r in results))
    print(f"\nPeers: same model (multilingual-e5-small), same corpus and queries per set, one run; "
          f"{results[0]['queries'] if results else 0} queries per set (seed {SEED}); latency per single query, in process\n")
    print("| system | " + " | ".join(f"{s} R@1 / R@5" for s in sets) + " | " + " | ".join(f"{s} p50 / p95 ms (CPU p50)" for s in sets) + " | load avg |")
    print("|---|" + "---:|" * (2 * len(sets)) + "---|")
    for sysname in systems:
        rs = {r["set"]: r for r in results if r["system"] == sysname}
        q = " | ".join(f"{rs[s]['r_at_1']} / {rs[s]['r_at_5']}" if s in rs else "-" for s in sets)
        t = " | ".join(f"{rs[s]['p50_ms']} / {rs[s]['p95_ms']} ({rs[s]['cpu_ms_p50']})" if s in rs else "-" for s in sets)
        ld = " ".join(str(rs[s]["load"][0]) for s in sets if s in rs)
        print(f"| {sysname} | {q} | {t} | {ld} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
