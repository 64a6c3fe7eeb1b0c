"""Search / ask latency, start-up, peak RSS and disk size at ~1k, 10k and 100k paragraphs.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,10000,100000] [--queries 300]
                                               [--work /tmp/rag-bench] [--json reports/bench/scale.json]

How the corpora are made (seed 0, see README in this folder):

* the real pool is the external dev paragraphs of drcd/dev (Traditional), cmrc2018/dev
  (Simplified) and xquad/zh-dev (Simplified; English questions): 1,998 paragraphs whose chunk
  and sentence vectors are already in the real embedding cache (real model output);
* ~1k = 1,000 real paragraphs of that pool (all 150 xquad, 425 drcd, 425 cmrc);
* 10k / 100k = the whole real pool plus synthetic paragraphs: each takes 6-14 sentences (real
  paragraphs have ~10) from two
  random real paragraphs, shuffled, half of them spliced at a comma with another sentence of the
  two (head of one + tail of the other), so paragraphs and most sentences are new text;
* synthetic rows get vectors WITHOUT the model: a spliced sentence gets the length-weighted mean
  of its two source sentences' real vectors, a chunk (or any row not recognised) the
  length-weighted mean of its paragraph's sentence vectors, each plus seeded Gaussian noise of
  norm ~0.15, re-normalised. They are written into a private embedding cache (by content hash,
  exactly as the indexer keys it), so ``build_index`` runs end to end and encodes nothing.

This measures the system's search, memory and start-up at size, not retrieval quality: the
R@5 shown is only a sanity check that the real gold paragraphs are still found among synthetic
distractors. Queries are real: 100 (seeded) each of drcd (zh-Hant), cmrc (zh-Hans) and xquad
en-zh (English -> Chinese), all with gold in the 1k subset, the same at every size, encoded
by the real query encoder (encoding is part of search latency and reported apart).

Each size is measured in a fresh subprocess (``measure``) so start-up and peak RSS are its own,
with the index files first dropped from the page cache (``posix_fadvise``), as after a reboot;
a separate process before it times an open that hashes every file (``rag verify``). Start-up
is ``RagService.open``: index and model in parallel, then the warm-up (jieba, CC-CEDICT, the
answer module). The first pass over the queries after that cold start is timed apart (its
index pages come from disk); the timed passes after it are the steady state. Then
``rag serve`` is started on it and the same queries are sent over HTTP one at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

EXTERNAL = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external"))
REAL_SETS = ("drcd/dev", "cmrc2018/dev", "xquad/zh-dev")
QUERY_SETS = ("drcd/dev", "cmrc2018/dev", "xquad/en-zh-dev")
SEED = 0
NOISE_NORM = 0.15
SHARD = 5000  # paragraphs per .jsonl file (the loader refuses files over 50 MB)


# --- small helpers shared by the other benchmark scripts -----------------------------------------


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def status_mib(pid: int | None = None) -> dict[str, float]:
    """The kB fields of ``/proc/<pid>/status`` (VmRSS, RssAnon, RssFile, ...) in MiB; {} if unreadable."""
    try:
        lines = Path(f"/proc/{pid or 'self'}/status").read_text().splitlines()
    except OSError:
        return {}
    return {ln.split(":")[0]: round(int(ln.split()[1]) / 1024, 1) for ln in lines if ln.endswith(" kB")}


def rss_split_mib() -> dict[str, float]:
    """This process's resident memory now: anonymous (its own) and file-backed (mapped files)."""
    mib = status_mib()
    return {k: mib[k] for k in ("RssAnon", "RssFile", "RssShmem") if k in mib}


def rss_mb(pid: int | None = None) -> float | None:
    return status_mib(pid).get("VmRSS")


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def private_cache(folder: Path) -> Path:
    """A fresh cache folder whose ``models`` is the real converted model (no re-conversion)."""
    from rag.config import get_settings

    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "models"
    if not link.exists():
        link.symlink_to((get_settings().cache_dir / "models").resolve())
    return folder


def du_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    return round(total / 2**20, 1)


# --- corpus and vectors ------------------------------------------------------------------------


def real_pool() -> tuple[list[dict], list[dict]]:
    """(real paragraphs, fixed query sample whose gold lies in the 1k subset)."""
    rows = {name: jsonl(EXTERNAL / name / "corpus.jsonl") for name in REAL_SETS}
    rng = random.Random(SEED)
    one_k: set[str] = {r["id"] for r in rows["xquad/zh-dev"]}
    for name in ("drcd/dev", "cmrc2018/dev"):
        one_k.update(r["id"] for r in rng.sample(rows[name], 425))
    queries = []
    for name in QUERY_SETS:
        ok = [q for q in jsonl(EXTERNAL / name / "queries.jsonl") if set(q["gold"]) & one_k]
        for q in rng.sample(ok, 100):
            queries.append({"id": q["id"], "question": q["question"], "gold": q["gold"], "set": name})
    paras = [{**r, "in_1k": r["id"] in one_k} for name in REAL_SETS for r in rows[name]]
    return paras, queries


def _rows_of(docs, settings):
    """(row texts, row para ids) exactly as build_index makes them (chunks, then sentences)."""
    from rag.index.rows import embed_text
    from rag.ingest.chunking import chunk_documents, sentence_chunks
    from rag.profiles import profile_of_settings

    chunks = chunk_documents(docs, settings.chunk_max_chars, settings.chunk_overlap_chars)
    with_sentences = profile_of_settings(settings).sentence_vectors
    sentences = [s for d in docs for p in d.paragraphs for s in sentence_chunks(p)] if with_sentences else []
    by_id = {d.doc_id: d for d in docs}
    texts = [embed_text(c, by_id[c.doc_id], settings) for c in chunks] + [s.text for s in sentences]
    return texts, [c.para_id for c in chunks] + [s.para_id for s in sentences]


def _noise(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v * (NOISE_NORM / np.linalg.norm(v))


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def make_corpus(size: int, work: Path, settings) -> dict:
    """Write ``work/corpus-<size>/*.jsonl`` and a private cache holding a vector for every row."""
    from rag.embedding import DEFAULT_MODEL_ID
    from rag.embedding.cache import EmbeddingCache, text_key
    from rag.ingest.corpus import load_corpus

    folder = work / f"corpus-{size}"
    cache_dir = private_cache(work / f"cache-{size}")
    done = folder / "DONE"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    paras, _ = real_pool()
    real = [p for p in paras if p["in_1k"]] if size <= 1000 else paras
    n_synth = max(0, size - len(real))

    # Real rows: their vectors come from the real cache (all were embedded by the model).
    key = lambda t: text_key(DEFAULT_MODEL_ID, "passage", t)  # noqa: E731
    real_file = folder / "real.jsonl"
    real_file.write_text("".join(json.dumps({k: p[k] for k in ("id", "title", "text")}, ensure_ascii=False) + "\n" for p in real))
    real_docs, _ = load_corpus([real_file])
    texts, pids = _rows_of(real_docs, settings)
    real_cache = EmbeddingCache(settings.cache_dir / "embeddings.sqlite3")
    keys = [key(t) for t in texts]
    vecs = real_cache.get_many(keys)
    real_cache.close()
    missing = sum(1 for k in keys if k not in vecs)
    sent_vec: dict[str, np.ndarray] = {}  # real sentence text -> vector
    para_sents: dict[str, list[str]] = {}
    from rag.ingest.chunking import sentence_chunks

    for d in real_docs:
        for p in d.paragraphs:
            ss = [s.text for s in sentence_chunks(p)] or [p.text]
            ss = [s for s in ss if key(s) in vecs]
            para_sents[p.para_id] = ss
            for s in ss:
                sent_vec[s] = vecs[key(s)]
    out = EmbeddingCache(cache_dir / "embeddings.sqlite3")
    out.put_many(list(vecs.items()))

    # Synthetic paragraphs: recombined sentences of two real paragraphs, vectors from theirs.
    rng = random.Random(SEED + size)
    sources = [p for p in para_sents if len(para_sents[p]) >= 2]
    title = {p["id"]: p["title"] for p in paras}
    dim = len(next(iter(sent_vec.values())))
    made = 0
    for shard in range(0, n_synth, SHARD):
        lines, row_vec = [], {}
        syn_sents: dict[str, list[tuple[str, np.ndarray]]] = {}
        for i in range(shard, min(n_synth, shard + SHARD)):
            a, b = rng.sample(sources, 2)
            pool = para_sents[a] + para_sents[b]
            picked = rng.sample(pool, min(len(pool), rng.randint(6, 14)))
            out_s: list[tuple[str, np.ndarray]] = []
            for s in picked:
                other = rng.choice(pool)
                ca, cb = [j for j, c in enumerate(s) if c in "，,"], [j for j, c in enumerate(other) if c in "，,"]
                if other != s and ca and cb and rng.random() < 0.5:
                    h, t = s[: rng.choice(ca) + 1], other[rng.choice(cb) + 1 :]
                    if len(t) >= 4:
                        v = _unit(len(h) * sent_vec[s] + len(t) * sent_vec[other])
                        out_s.append((h + t, v))
                        continue
                out_s.append((s, sent_vec[s]))
            pid = f"synth:{size}:{i}"
            syn_sents[pid] = out_s
            lines.append(json.dumps({"id": pid, "title": title[a], "text": "".join(s for s, _ in out_s)}, ensure_ascii=False))
        path = folder / f"synth-{shard // SHARD:04d}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        docs, _ = load_corpus([path])
        texts, pids = _rows_of(docs, settings)
        for t, pid in zip(texts, pids, strict=True):
            k = key(t)
            if k in row_vec:
                continue
            sents = syn_sents[pid]
            exact = next((v for s, v in sents if s == t), None)
            if exact is None:  # a chunk, or a sentence split differently: the paragraph's mean
                exact = _unit(sum(len(s) * v for s, v in sents))
            row_vec[k] = _unit(exact + _noise(t, dim))
        out.put_many(list(row_vec.items()))
        made += len(lines)
        print(f"  corpus-{size}: {made}/{n_synth} synthetic paragraphs", file=sys.stderr, flush=True)
    out.close()
    info = {
        "size": size, "real_paragraphs": len(real), "synthetic_paragraphs": n_synth,
        "real_rows_without_cached_vector": missing, "make_s": round(time.perf_counter() - t0, 1),
        "cache_dir": str(cache_dir), "corpus_dir": str(folder),
    }
    done.write_text(json.dumps(info))
    return info


def build(size: int, work: Path, store: str = "faiss") -> dict:
    """Corpus + private cache + ``build_index`` into ``index-<size>[-milvus]`` (timed; nothing encoded)."""
    from rag.config import get_settings
    from rag.index.build import build_index
    from rag.index.compat import FORMAT_VERSION

    settings = get_settings()
    info = make_corpus(size, work, settings)
    index_dir = work / (f"index-{size}" if store == "faiss" else f"index-{size}-{store}")
    manifest = index_dir / "manifest.json"
    record = work / f"build-{index_dir.name}.json"  # how this index was built (reused while current)
    if manifest.exists() and record.exists() and json.loads(manifest.read_text()).get("format_version") == FORMAT_VERSION:
        return {**info, **json.loads(record.read_text())}
    shutil.rmtree(index_dir, ignore_errors=True)
    # float32 passages: the private cache holds the real cache's float32 vectors under float32 keys
    local = settings.model_copy(update={"cache_dir": Path(info["cache_dir"]), "store": store,
                                        "embed_passage_dtype": "float32"})
    t0, c0 = time.perf_counter(), time.process_time()
    summary = build_index([Path(info["corpus_dir"])], index_dir, local)
    built = {
        "store_kind": store, "built": True, "build_s": round(time.perf_counter() - t0, 1),
        "build_cpu_s": round(time.process_time() - c0, 1), "build_load": load(), "paragraphs": summary.paragraphs,
        "chunks": summary.chunks, "sentence_vectors": summary.sentence_vectors,
        "encoded_during_build": summary.encoded, "build_peak_rss_mb": peak_rss_mb(), "index_dir": str(index_dir),
    }
    built.update(gloss_build(Path(info["corpus_dir"]), local))
    record.write_text(json.dumps(built))
    return {**info, **built}


def gloss_build(corpus_dir: Path, settings) -> dict:
    """The English gloss alone (part of ``build_index`` above), timed again on the same paragraphs."""
    from rag.index.gloss import build_gloss_index
    from rag.ingest.corpus import load_corpus
    from rag.text.normalise import Normaliser

    docs, _ = load_corpus([corpus_dir])
    paragraphs = [p for d in docs for p in d.paragraphs]
    rss0 = rss_mb() or 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    gloss = build_gloss_index([corpus_dir], paragraphs, Normaliser(settings.opencc_config), settings.glossary,
                              cache_dir=settings.cache_dir)
    return {"gloss_build_s": round(time.perf_counter() - t0, 1), "gloss_build_cpu_s": round(time.process_time() - c0, 1),
            "gloss_build_rss_delta_mb": round((rss_mb() or 0.0) - rss0, 1), "gloss_rows": len(gloss)}


# --- measurement (one fresh process per index) -------------------------------------------------


def measure(index_dir: Path, cache_dir: Path, n_queries: int, recall_queries: int) -> dict:
    from rag.config import get_settings
    from rag.service import RagService

    settings = get_settings().model_copy(update={"cache_dir": cache_dir})
    _, queries = real_pool()
    queries = queries[:n_queries]
    rss0 = rss_mb()
    # Start-up as `rag serve` does it: the thread limits, then the index opens while the encoder
    # loads in a thread.
    from rag.threads import limit_process

    t0, c0 = time.perf_counter(), time.process_time()
    limit_process()
    svc = RagService.open(index_dir, settings)
    t1, c1 = time.perf_counter(), time.process_time()
    res: dict = {
        "rss_before_mb": rss0, "startup_s": round(t1 - t0, 2), "startup_cpu_s": round(c1 - c0, 2),
        "encoder_load_s": round(svc.encoder_load_seconds, 2), "index_open_s": round(svc.index.load_seconds, 2),
        "startup_load": load(), "rss_after_open_mb": rss_mb(), "store": svc.index.manifest["store"],
        "counts": svc.index.manifest["counts"], "disk_mb": du_mb(index_dir), "verified": svc.index.verified,
    }
    r = svc.retriever
    # First pass right after the (cold) start: the index pages each question touches come from
    # disk. Timed apart; the timed passes below are the steady state.
    first = []
    for q in queries:
        t = time.perf_counter()
        svc.search(q["question"], 10)
        first.append((time.perf_counter() - t) * 1000)
    res["first_pass_search_ms_p50"], res["first_pass_search_ms_p95"] = pct(first, 50), pct(first, 95)
    for q in queries[:5]:  # warm-up of the ask path
        svc.ask(q["question"], 5)
    enc_ms, ret_ms, search_ms, ask_ms, search_cpu, ask_cpu, recall = [], [], [], [], [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        v = r.encode_queries([svc.question(q["question"])])[0]
        t_e = time.perf_counter()
        r.search(svc.question(q["question"]), 10, query_vector=v)
        enc_ms.append((t_e - t) * 1000)
        ret_ms.append((time.perf_counter() - t_e) * 1000)
        t, c = time.perf_counter(), time.process_time()
        hits = svc.search(q["question"], 10)
        search_ms.append((time.perf_counter() - t) * 1000)
        search_cpu.append((time.process_time() - c) * 1000)
        t, c = time.perf_counter(), time.process_time()
        svc.ask(q["question"], 5)
        ask_ms.append((time.perf_counter() - t) * 1000)
        ask_cpu.append((time.process_time() - c) * 1000)
        recall.append(1.0 if set(q["gold"]) & {h.para_id for h in hits[:5]} else 0.0)
    res.update({
        "queries": len(queries), "query_load": load(),
        "encode_ms_p50": pct(enc_ms, 50), "encode_ms_p95": pct(enc_ms, 95),
        "retrieve_ms_p50": pct(ret_ms, 50), "retrieve_ms_p95": pct(ret_ms, 95),
        "search_ms_p50": pct(search_ms, 50), "search_ms_p95": pct(search_ms, 95),
        "search_cpu_ms_p50": pct(search_cpu, 50),
        "ask_ms_p50": pct(ask_ms, 50), "ask_ms_p95": pct(ask_ms, 95), "ask_cpu_ms_p50": pct(ask_cpu, 50),
        "r_at_5_sanity": round(float(np.mean(recall)), 3), "peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb(),
        "rss_split_mib": rss_split_mib(),
    })
    # Retrieval stages at this size (where the time goes), on the first 50 queries.
    stage: dict[str, list[float]] = {"dense_ann": [], "bm25": [], "rest": []}
    depth = min(r.candidates * 2, len(r.index.chunk_ids))
    for q in queries[:50]:
        v = r.encode_queries([svc.question(q["question"])])[0]
        t = time.perf_counter()
        r.index.store.search_rows(v[None, :], depth)
        t_a = time.perf_counter()
        # The question's BM25 as the search asks for it: every chunk row (bm25s), or the top
        # rows (Milvus; the candidates' exact scores are in "rest").
        r.index.bm25.search(svc.question(q["question"]).tokens, depth)
        t_b = time.perf_counter()
        r.search(svc.question(q["question"]), 10, query_vector=v)
        t_c = time.perf_counter()
        stage["dense_ann"].append((t_a - t) * 1000)
        stage["bm25"].append((t_b - t_a) * 1000)
        stage["rest"].append(((t_c - t_b) - (t_b - t)) * 1000)
    res["stage_ms_p50"] = {k: pct(v, 50) for k, v in stage.items()}
    res["gloss"] = measure_gloss(svc, queries)
    store = r.index.store
    if getattr(store, "approximate", False) and recall_queries:
        # HNSW vs exact: the same query vectors against a flat index of the same rows.
        import faiss

        qs = r.encode_queries([svc.question(q["question"]) for q in queries[:recall_queries]])
        hnsw = store._ready_index()
        flat = faiss.IndexFlatIP(store.dim)
        flat.add(np.ascontiguousarray(store._vecs, dtype=np.float32))
        out = {}
        for k in (10, 200):
            _, a = hnsw.search(qs, k)
            _, b = flat.search(qs, k)
            out[f"row_recall@{k}"] = round(float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)])), 4)
        # Paragraph level: the full hybrid search with HNSW vs with the flat index swapped in.
        top_h = [[h.para_id for h in r.search(svc.question(q["question"]), 10, query_vector=v)] for q, v in zip(queries, qs, strict=False)]
        store._index = flat
        top_f = [[h.para_id for h in r.search(svc.question(q["question"]), 10, query_vector=v)] for q, v in zip(queries, qs, strict=False)]
        store._index = hnsw
        out["paragraph_top10_overlap"] = round(float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top_h, top_f, strict=True)])), 4)
        out["queries"] = len(qs)
        res["hnsw_vs_flat"] = out
    return res


def measure_gloss(svc, queries: list[dict]) -> dict:
    """What the English gloss channel costs an English question: retrieval with it and without
    it (same query vectors, interleaved), and its own stage (gloss BM25 of every paragraph + the
    best rows joining the candidates)."""
    from rag.text.sentences import question_terms

    r = svc.retriever
    english = [q for q in queries if q.get("set") == "xquad/en-zh-dev"]
    if not english or r.index.gloss is None:
        return {}
    vectors = r.encode_queries([svc.question(q["question"]) for q in english])
    weight = r.gloss_weight or 0.03
    on, off, stage = [], [], []
    for _ in range(2):
        for q, v in zip(english, vectors, strict=True):
            for w, out in ((weight, on), (0.0, off)):
                r.gloss_weight = w
                t = time.perf_counter()
                r.search(svc.question(q["question"]), 10, query_vector=v)
                out.append((time.perf_counter() - t) * 1000)
            r.gloss_weight = weight
            t = time.perf_counter()
            r._with_gloss(svc.question(q["question"]), np.zeros(0, dtype=np.int64))
            stage.append((time.perf_counter() - t) * 1000)
    r.gloss_weight = weight
    gloss_dir = Path(r.index.data_dir) / "gloss"
    return {
        "queries": len(english), "retrieve_on_ms_p50": pct(on, 50), "retrieve_off_ms_p50": pct(off, 50),
        "retrieve_on_ms_p95": pct(on, 95), "retrieve_off_ms_p95": pct(off, 95),
        "added_ms_p50": round(pct(on, 50) - pct(off, 50), 2), "stage_ms_p50": pct(stage, 50),
        "stage_ms_p95": pct(stage, 95), "disk_mb": du_mb(gloss_dir),
        "terms_per_question": round(float(np.mean([len(question_terms(q["question"])) for q in english])), 1),
    }


def evict(index_dir: Path) -> int:
    """Drop the index files from the page cache (as after a reboot); returns the bytes evicted.

    ``posix_fadvise(DONTNEED)`` needs no privileges; clean pages of a file go at once.
    """
    total = 0
    for path in index_dir.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            total += path.stat().st_size
    return total


def measure_full_open(index_dir: Path, cache_dir: Path) -> dict:
    """Index open with every file hashed (``rag verify``; an open whose stamps do not vouch), cold."""
    from rag.config import get_settings
    from rag.index.loaded import LoadedIndex

    settings = get_settings().model_copy(update={"cache_dir": cache_dir})
    t0 = time.perf_counter()
    loaded = LoadedIndex.open(index_dir, verify="full", settings=settings)
    return {"full_open_s": round(time.perf_counter() - t0, 2), "hashed_mb": round(loaded.verified["hashed_bytes"] / 1e6, 1)}


def measure_http(index_dir: Path, cache_dir: Path, n_queries: int) -> dict:
    import httpx
    from load_test import free_port, start_server, wait_ready

    _, queries = real_pool()
    queries = queries[:n_queries]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ["RAG_CACHE_DIR"] = str(cache_dir)
    t0 = time.perf_counter()
    proc = start_server(index_dir, port, Path(f"/tmp/rag-bench-serve-{port}.log"))
    try:
        wait_ready(base, proc, 900)
        ready = time.perf_counter() - t0
        lat: dict[str, list[float]] = {"search": [], "ask": []}
        with httpx.Client(base_url=base, timeout=120) as c:
            for q in queries[:5]:
                c.post("/api/search", json={"query": q["question"], "k": 10})
                c.post("/api/ask", json={"question": q["question"], "k": 5})
            for q in queries:
                for kind, path, body in (("search", "/api/search", {"query": q["question"], "k": 10}),
                                         ("ask", "/api/ask", {"question": q["question"], "k": 5})):
                    t = time.perf_counter()
                    resp = c.post(path, json=body)
                    resp.raise_for_status()
                    lat[kind].append((time.perf_counter() - t) * 1000)
        return {
            "serve_ready_s": round(ready, 1), "http_load": load(), "server_rss_mb": rss_mb(proc.pid),
            **{f"http_{k}_ms_p{p}": pct(v, p) for k, v in lat.items() for p in (50, 95)},
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def table(results: list[dict]) -> str:
    cols = [f"{r['size']:,}" for r in results]
    rows = [
        ("paragraphs (real + synthetic)", lambda r: f"{r['paragraphs']:,} ({r['real_paragraphs']:,} + {r['synthetic_paragraphs']:,})"),
        ("ANN rows (chunks) + sentence rows", lambda r: f"{r['m']['store']['count']:,} + {r['m']['counts']['sentence_vectors']:,}"),
        ("store: ANN index", lambda r: f"{r['m']['store']['kind']}: {r['m']['store']['index']}"),
        ("index on disk (MB)", lambda r: r["m"]["disk_mb"]),
        ("build_index s (no encoding; CPU s)", lambda r: f"{r.get('build_s')} ({r.get('build_cpu_s')})"),
        ("start-up in process s (CPU s), index files not in page cache", lambda r: f"{r['m']['startup_s']} ({r['m']['startup_cpu_s']})"),
        ("  index open s / encoder load s (in parallel)", lambda r: f"{r['m']['index_open_s']} / {r['m']['encoder_load_s']}"),
        ("  index files hashed at open (stamps vouched for the rest)", lambda r: f"{r['m']['verified']['hashed_files']} of {r['m']['verified']['hashed_files'] + r['m']['verified']['vouched_files']}"),
        ("index open hashing every file (`rag verify`), not in page cache s", lambda r: f"{r['full']['full_open_s']} ({r['full']['hashed_mb']} MB)"),
        ("start-up: `rag serve` to /readyz s", lambda r: r.get("h", {}).get("serve_ready_s")),
        ("first pass after the cold start: search p50 / p95 ms", lambda r: f"{r['m']['first_pass_search_ms_p50']} / {r['m']['first_pass_search_ms_p95']}"),
        ("search p50 / p95 ms (in process)", lambda r: f"{r['m']['search_ms_p50']} / {r['m']['search_ms_p95']}"),
        ("  of which query encoding p50 / p95", lambda r: f"{r['m']['encode_ms_p50']} / {r['m']['encode_ms_p95']}"),
        ("  of which retrieval p50 / p95", lambda r: f"{r['m']['retrieve_ms_p50']} / {r['m']['retrieve_ms_p95']}"),
        ("  retrieval stages p50: ANN / BM25 / rest", lambda r: " / ".join(str(v) for v in r["m"]["stage_ms_p50"].values())),
        ("search CPU ms p50", lambda r: r["m"]["search_cpu_ms_p50"]),
        ("English questions: retrieval p50 ms with / without the gloss channel (added)",
         lambda r: f"{r['m']['gloss']['retrieve_on_ms_p50']} / {r['m']['gloss']['retrieve_off_ms_p50']} "
                   f"(+{r['m']['gloss']['added_ms_p50']})"),
        ("  gloss stage p50 / p95 ms (BM25 of every paragraph + best rows)",
         lambda r: f"{r['m']['gloss']['stage_ms_p50']} / {r['m']['gloss']['stage_ms_p95']}"),
        ("gloss build s (CPU s; part of build_index) / on disk MB / build RSS +MiB",
         lambda r: f"{r['gloss_build_s']} ({r['gloss_build_cpu_s']}) / {r['m']['gloss']['disk_mb']} / {r['gloss_build_rss_delta_mb']}"),
        ("ask p50 / p95 ms (in process)", lambda r: f"{r['m']['ask_ms_p50']} / {r['m']['ask_ms_p95']}"),
        ("ask CPU ms p50", lambda r: r["m"]["ask_cpu_ms_p50"]),
        ("search p50 / p95 ms (HTTP)", lambda r: f"{r.get('h', {}).get('http_search_ms_p50')} / {r.get('h', {}).get('http_search_ms_p95')}"),
        ("ask p50 / p95 ms (HTTP)", lambda r: f"{r.get('h', {}).get('http_ask_ms_p50')} / {r.get('h', {}).get('http_ask_ms_p95')}"),
        ("peak RSS MiB (in process, after queries)", lambda r: r["m"]["peak_rss_mb"]),
        ("  RSS at the end: anonymous / file-backed (mapped index, model, libraries) MiB",
         lambda r: f"{r['m']['rss_split_mib']['RssAnon']} / {r['m']['rss_split_mib']['RssFile']}"),
        ("`rag serve` RSS MiB after queries", lambda r: r.get("h", {}).get("server_rss_mb")),
        ("R@5 sanity (real gold among distractors)", lambda r: r["m"]["r_at_5_sanity"]),
        ("HNSW vs flat: row recall@10 / @200", lambda r: (f"{r['m']['hnsw_vs_flat']['row_recall@10']} / {r['m']['hnsw_vs_flat']['row_recall@200']}" if "hnsw_vs_flat" in r["m"] else "flat (exact)")),
        ("HNSW vs flat: top-10 paragraphs shared", lambda r: r["m"].get("hnsw_vs_flat", {}).get("paragraph_top10_overlap", "-")),
        ("load average (1/5/15 min) at queries", lambda r: " ".join(map(str, r["m"]["query_load"]))),
    ]
    out = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, f in rows:
        cells = []
        for r in results:
            try:
                cells.append(str(f(r)))
            except (KeyError, TypeError):
                cells.append("-")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--recall-queries", type=int, default=100)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("RAG_BENCH_DIR", "/tmp/rag-bench")))
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--full-open", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--build-only", action="store_true", help="make corpora and indexes, measure nothing")
    ap.add_argument("--store", choices=("faiss", "milvus"), default="faiss",
                    help="milvus: build and serve with RAG_STORE=milvus (Milvus Lite file in the index folder)")
    args = ap.parse_args()
    os.environ["RAG_STORE"] = args.store  # read by get_settings here, in the measuring child and the server
    if args.measure:  # child process: one index, fresh interpreter
        print(json.dumps(measure(args.measure, args.cache, args.queries, args.recall_queries)))
        return
    if args.full_open:
        print(json.dumps(measure_full_open(args.full_open, args.cache)))
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        print(f"size {size}: building (load {load()})", file=sys.stderr, flush=True)
        info = build(size, args.work, args.store)
        if args.build_only:
            print(json.dumps(info), file=sys.stderr)
            continue
        # Cold start-up: first an open that hashes every file (as `rag verify`, or the first open
        # of files the build could not stamp), which leaves the stamps valid; then the start-up
        # a restart after a reboot sees. Both with the index files out of the page cache.
        print(f"size {size}: full open, cold (evicted {evict(Path(info['index_dir'])) / 1e6:.0f} MB)", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--full-open", info["index_dir"], "--cache", info["cache_dir"], "--store", args.store],
            capture_output=True, text=True,
        )
        if child.returncode:
            sys.exit(f"size {size}: the full open failed:\n{child.stderr[-3000:]}")
        info["full"] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"size {size}: measuring in process, cold (evicted {evict(Path(info['index_dir'])) / 1e6:.0f} MB)",
              file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--measure", info["index_dir"], "--cache", info["cache_dir"],
             "--queries", str(args.queries), "--recall-queries", str(args.recall_queries), "--store", args.store],
            capture_output=True, text=True,
        )
        if child.returncode:
            sys.exit(f"size {size}: the measuring process failed:\n{child.stderr[-3000:]}")
        info["m"] = json.loads(child.stdout.strip().splitlines()[-1])
        if not args.no_http:
            print(f"size {size}: measuring over HTTP", file=sys.stderr, flush=True)
            info["h"] = measure_http(Path(info["index_dir"]), Path(info["cache_dir"]), min(args.queries, 100))
        results.append(info)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    if results:
        print(f"\nScale benchmark, store {args.store} ({os.cpu_count()} CPUs, load average per column; seed {SEED})\n")
        print(table(results))


if __name__ == "__main__":
    main()
