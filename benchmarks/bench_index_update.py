"""`rag index` when little or nothing changed: no-op, one changed / added / deleted document.

    .venv/bin/python benchmarks/bench_index_update.py [--repeat 5] [--checkout PATH]
    .venv/bin/python benchmarks/bench_index_update.py --sizes 10000,100000 [--work /tmp/rag-bench]

Default corpus (``corpus/``, copied to a temporary folder): a first `rag index`, then
``--repeat`` no-op runs, each a fresh process (``python -m rag.cli index``) timed from its start
to its exit (wall and CPU seconds), then one run after ``touch`` of a file (same bytes, new mtime)
and one after a paragraph is appended to a document. ``--checkout`` times another working tree
(e.g. the commit before incremental indexing) on the same steps.

``--sizes``: the synthetic corpora of ``bench_scale.py`` (same construction, same private
embedding caches with a vector for every row, so nothing is encoded but what a step changes).
After a full build (timed, in process): a no-op (fresh process, as above), one document changed
(one line of one shard rewritten), one added (a new one-line file), one deleted (a line
removed). The update steps run in process with the real encoder loaded beforehand; the time
spent inside ``encode`` is reported apart and subtracted ("excl. encoding"). Passages are
encoded in float32 here, the precision the private caches hold.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli_index(checkout: Path, corpus: Path, index: Path, env: dict[str, str]) -> dict:
    """One `rag index` process: wall and CPU seconds, its output, the data folders after it."""
    cmd = [sys.executable, "-m", "rag.cli", "index", str(corpus), "--index", str(index), "-q"]
    c0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=checkout, env={**env, "PYTHONPATH": str(checkout)}, capture_output=True,
                          text=True, timeout=3600)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if proc.returncode:
        raise SystemExit(f"rag index failed ({proc.returncode}): {proc.stderr[-800:]}")
    data = sorted(p.name for p in index.iterdir() if p.name.startswith("data-"))
    return {"wall_s": wall, "cpu_s": cpu, "out": proc.stdout.strip().splitlines(), "data": data}


def default_corpus(checkout: Path, repeat: int) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="bench-index-update-"))
    corpus, index = work / "corpus", work / "index"
    shutil.copytree(ROOT / "corpus", corpus)
    env = dict(os.environ)
    rows = []
    first = cli_index(checkout, corpus, index, env)
    rows.append({"case": "first build", **first})
    for i in range(repeat):
        r = cli_index(checkout, corpus, index, env)
        r["new_data_folder"] = r["data"] != first["data"]
        rows.append({"case": f"no-op {i + 1}", **r})
    doc = sorted(p for p in corpus.iterdir() if p.suffix == ".txt")[0]
    os.utime(doc)
    rows.append({"case": "touch one file (same bytes)", **cli_index(checkout, corpus, index, env)})
    with open(doc, "a", encoding="utf-8") as fh:
        fh.write("\n\n香港生產力促進局今日公布新的支援計劃，協助中小企業推行數碼轉型。\n")
    rows.append({"case": "one document changed", **cli_index(checkout, corpus, index, env)})
    shutil.rmtree(work, ignore_errors=True)
    return rows


class TimedEncoder:
    """The real encoder, with the seconds spent encoding counted."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.passage_dtype = inner.passage_dtype
        self.seconds = 0.0
        self.texts = 0

    def encode(self, texts, **kw):
        t0 = time.perf_counter()
        try:
            return self.inner.encode(texts, **kw)
        finally:
            self.seconds += time.perf_counter() - t0
            self.texts += len(texts)


class HashVectors:
    """A stand-in passage encoder for the scale runs: a seeded random unit vector per text.

    The update timings exclude encoding, so the vectors need not be the model's; this one makes
    any corpus size buildable without hours of encoding (the model's own speed is
    ``bench_encoder.py`` / ``bench_passage_dtype.py``)."""

    model_id, dim, passage_dtype = "bench-hash-vectors", 384, "float32"

    def encode(self, texts, *, kind, batch_size=None, show_progress=False):
        import hashlib

        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(f"{kind}:{t}".encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out


def synthetic_corpus(size: int, work: Path) -> Path:
    """``size`` paragraphs in 5,000-line ``.jsonl`` shards: the real dev paragraphs of drcd,
    cmrc2018 and xquad-zh, then paragraphs of 6-14 sentences drawn from two real ones (seed 0)."""
    import random
    import re

    folder = work / f"update-corpus-{size}"
    done = work / f".update-corpus-{size}.done"  # outside the folder: not a corpus file
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    external = Path(os.environ.get("RAG_EXTERNAL_DIR", ROOT.parent / "shared" / "data" / "external"))
    real = []
    for name in ("drcd/dev", "cmrc2018/dev", "xquad/zh-dev"):
        with open(external / name / "corpus.jsonl", encoding="utf-8") as fh:
            real.extend(json.loads(line) for line in fh if line.strip())
    real = real[:size]
    sentences = [[s for s in re.split(r"(?<=[。！？])", p["text"]) if s.strip()] for p in real]
    rng = random.Random(size)
    rows = [{"id": p["id"], "title": p.get("title", ""), "text": p["text"]} for p in real]
    pool = [i for i, ss in enumerate(sentences) if len(ss) >= 2]
    for i in range(size - len(rows)):
        a, b = rng.sample(pool, 2)
        mix = sentences[a] + sentences[b]
        text = "".join(rng.sample(mix, min(len(mix), rng.randint(6, 14))))
        rows.append({"id": f"synth:{size}:{i}", "title": real[a].get("title", ""), "text": text})
    for n in range(0, len(rows), 5000):
        (folder / f"shard-{n // 5000:04d}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[n : n + 5000]), encoding="utf-8")
    done.write_text(str(len(rows)))
    return folder


def scale(size: int, work: Path, hnsw_threshold: int | None) -> list[dict]:
    from bench_scale import load

    from rag.config import get_settings
    from rag.index.build import build_index
    from rag.index.loaded import LoadedIndex

    corpus = synthetic_corpus(size, work)
    cache = work / f"update-cache-{size}"
    update = {"embed_passage_dtype": "float32", "cache_dir": cache, "embed_model": "bench-hash-vectors"}
    if hnsw_threshold:
        update["hnsw_threshold"] = hnsw_threshold
    settings = get_settings().model_copy(update=update)
    index = work / f"index-update-{size}"
    shutil.rmtree(index, ignore_errors=True)
    rows: list[dict] = []
    enc = TimedEncoder(HashVectors())

    def step(case: str) -> None:
        enc.seconds, enc.texts = 0.0, 0
        t0, c0 = time.perf_counter(), time.process_time()
        s = build_index([corpus], index, settings, encoder=enc)
        wall = time.perf_counter() - t0
        rows.append({"case": case, "wall_s": wall, "cpu_s": time.process_time() - c0, "encode_s": enc.seconds,
                     "encoded": s.encoded, "excl_encoding_s": wall - enc.seconds, "load": load()[0],
                     "out": s.lines()[:3]})
        print(f"  {size}: {case}: {wall:.1f} s ({enc.seconds:.1f} s encoding)", file=sys.stderr, flush=True)

    step("full build (stand-in vectors)")
    env = {**os.environ, "RAG_CACHE_DIR": str(cache), "RAG_EMBED_PASSAGE_DTYPE": "float32",
           "RAG_EMBED_MODEL": "bench-hash-vectors", "RAG_HNSW_THRESHOLD": str(settings.hnsw_threshold)}
    r = cli_index(ROOT, corpus, index, env)
    rows.append({"case": "no-op (fresh process)", **r, "load": load()[0]})
    shards = sorted(corpus.glob("shard-*.jsonl"))
    shard = shards[len(shards) // 2]
    original = shard.read_text(encoding="utf-8")
    lines = original.splitlines()
    row = json.loads(lines[17])
    row["text"] += "香港生產力促進局今日公布新的支援計劃，協助中小企業推行數碼轉型。"
    lines[17] = json.dumps(row, ensure_ascii=False)
    shard.write_text("\n".join(lines) + "\n", encoding="utf-8")
    step("one document changed")
    (corpus / "extra.jsonl").write_text(json.dumps(
        {"id": f"extra:{size}", "title": "新增", "text": "數碼港人工智能超算中心明年投入第二階段服務。"},
        ensure_ascii=False) + "\n", encoding="utf-8")
    step("one document added")
    del lines[42]
    shard.write_text("\n".join(lines) + "\n", encoding="utf-8")
    step("one document deleted")
    loaded = LoadedIndex.open(index, settings=settings)
    assert len(loaded.paragraphs) == size, len(loaded.paragraphs)  # one added, one deleted
    rows.append({"case": "index", "wall_s": 0.0, "cpu_s": 0.0, "out": [
        f"{len(loaded.paragraphs)} paragraphs, {len(loaded.chunk_ids)} chunks, {len(loaded.sentence_table)} sentences, "
        f"store {loaded.manifest['store']['index']} (masked {loaded.manifest['store'].get('masked', 0)})"]})
    loaded.close()
    (corpus / "extra.jsonl").unlink()
    shard.write_text(original, encoding="utf-8")
    shutil.rmtree(index, ignore_errors=True)
    return rows


def table(title: str, rows: list[dict]) -> str:
    out = [f"### {title}", "", "| case | wall s | CPU s | excl. encoding s | output |", "|---|---|---|---|---|"]
    for r in rows:
        excl = f"{r['excl_encoding_s']:.2f}" if "excl_encoding_s" in r else ""
        first = r["out"][0] if r.get("out") else ""
        out.append(f"| {r['case']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {excl} | {first[:90]} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkout", type=Path, default=ROOT)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="", help="comma-separated synthetic corpus sizes, e.g. 10000,100000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rag-bench"))
    ap.add_argument("--hnsw-threshold", type=int, default=None,
                    help="RAG_HNSW_THRESHOLD for the scale runs (default: the setting, 50,000)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    result: dict = {"load_average_1min_start": round(os.getloadavg()[0], 1)}
    if not args.sizes:
        rows = default_corpus(args.checkout.resolve(), args.repeat)
        result["default"] = rows
        print(table(f"default corpus, {args.checkout}", rows))
        noop = sorted(r["wall_s"] for r in rows if r["case"].startswith("no-op"))
        print(f"\nno-op median {noop[len(noop) // 2]:.2f} s wall; new data folder on a no-op: "
              f"{any(r.get('new_data_folder') for r in rows)}")
    for size in [int(s) for s in args.sizes.split(",") if s]:
        args.work.mkdir(parents=True, exist_ok=True)
        rows = scale(size, args.work, args.hnsw_threshold)
        result[str(size)] = rows
        print(table(f"{size:,} paragraphs", rows))
    result["load_average_1min_end"] = round(os.getloadavg()[0], 1)
    print(f"\nload average (1 min): {result['load_average_1min_start']} at start, {result['load_average_1min_end']} at end")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
