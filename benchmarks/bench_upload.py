"""One PDF uploaded into a collection of 10k paragraphs: from the request to a search that cites it.

    .venv/bin/python benchmarks/bench_upload.py [--paragraphs 10000] [--pages 20] [--work /tmp/rag-bench]

What a user waits for after sending a document to a running server: `rag serve` (its own
process, the real default encoder, e5-small), a collection ``bench`` whose ``sources/`` hold
``--paragraphs`` synthetic paragraphs (``bench_index_update.synthetic_corpus``) and whose index
is live; then ``POST /api/collections/bench/documents`` with a generated ``--pages``-page PDF
(the press texts of ``corpus/`` typeset with reportlab's Chinese CID font: Traditional Chinese
with English names in parentheses, so the upload also brings new glossary pairs),
``GET /api/jobs/{id}`` every 0.2 s until it is done, and ``POST /api/search`` with a question on
the PDF until a hit cites it. Timed: wall seconds from the POST to that hit, the server
process's CPU seconds over the same span, and when the job entered each stage.

Setup, not timed: the collection's index is built in this process with the model's identity
(model id, passage precision, dimension, read from the loaded encoder) but stand-in vectors
(``bench_index_update.HashVectors``) stored in a private embedding cache under the model's
vector space, so the server's update takes the corpus rows over as from any earlier build and
encodes only the PDF. The private cache's ``models/`` is a link to the user's, so the server
loads the real model. A PDF left by an earlier run is removed first (an incremental update).
Needs reportlab (the ``test`` extra) for the PDF.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

COLLECTION = "bench"
KEY = "bench-admin"
PDF_NAME = "press-digest.pdf"
QUESTION = "新型工業化發展中心由哪個機構成立？"


def press_pdf(pages: int) -> bytes:
    """The paragraphs of ``corpus/*.txt`` typeset over ``pages`` A4 pages (one text line per 40 characters)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    paras = [" ".join(p.split()) for f in sorted((ROOT / "corpus").glob("*.txt"))
             for p in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")) if p.strip()]
    per_page = sum(len(p) for p in paras) / pages
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setTitle("香港新型工業化新聞匯編")
    width, height = A4
    size, per_line = 10.5, 40
    y, on_page, page = height - 72, 0, 1
    c.setFont("STSong-Light", size)
    for para in paras:
        for i in range(0, len(para), per_line):
            if y < 72 or (on_page >= per_page and page < pages):
                c.showPage()
                c.setFont("STSong-Light", size)
                y, on_page, page = height - 72, 0, page + 1
            c.drawString(72, y, para[i : i + per_line])
            y -= size * 1.5
            on_page += per_line
        y -= size * 1.2
    c.showPage()
    c.save()
    if page != pages:
        raise SystemExit(f"the texts filled {page} pages, not {pages}")
    return buf.getvalue()


class StandIn:
    """The loaded encoder's identity with ``HashVectors``' vectors (setup only)."""

    def __init__(self, real: Any) -> None:
        from bench_index_update import HashVectors

        self.model_id, self.dim, self.passage_dtype = real.model_id, real.dim, real.passage_dtype
        self._vectors = HashVectors()
        self._vectors.dim = real.dim

    def encode(self, texts: list[str], **kw: Any) -> Any:
        return self._vectors.encode(texts, **kw)


def setup(work: Path, paragraphs: int) -> tuple[Path, dict[str, str]]:
    """The collection (sources and index) and the server's environment."""
    from bench_index_update import synthetic_corpus

    from rag.config import Settings
    from rag.embedding import get_encoder
    from rag.index.build import build_index

    cache = work / f"upload-cache-{paragraphs}"
    cache.mkdir(parents=True, exist_ok=True)
    user_models = Settings(_env_file=None).cache_dir / "models"
    if not (cache / "models").exists():
        (cache / "models").symlink_to(user_models, target_is_directory=True)
    cols = work / f"upload-collections-{paragraphs}"
    sources = cols / COLLECTION / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    for shard in sorted(synthetic_corpus(paragraphs, work).glob("shard-*.jsonl")):
        if not (sources / shard.name).exists():
            shutil.copy2(shard, sources / shard.name)
    (sources / PDF_NAME).unlink(missing_ok=True)
    env = {"RAG_CACHE_DIR": str(cache), "RAG_COLLECTIONS_DIR": str(cols), "RAG_ADMIN_KEYS": KEY,
           "RAG_INDEX_DIR": str(work / "upload-default-index"), "RAG_LLM": "off",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    settings = Settings(_env_file=None, cache_dir=cache, collections_dir=cols, admin_keys=KEY,
                        index_dir=work / "upload-default-index")
    t0 = time.perf_counter()
    summary = build_index([sources], cols / COLLECTION / "index", settings, encoder=StandIn(get_encoder(settings)))
    print(f"setup: {summary.lines()[0]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return cols, env


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cites_pdf(client: Any, base: str, query: str) -> tuple[bool, list[str]]:
    r = client.post(base + "/api/search", json={"query": query, "collection": COLLECTION, "k": 5})
    if r.status_code != 200:
        return False, []
    ids = [h["para_id"] for h in r.json()["hits"]]
    return any(i.startswith(Path(PDF_NAME).stem + "#") for i in ids), ids


def measure(work: Path, paragraphs: int, pages: int) -> dict[str, Any]:
    import httpx

    pdf = press_pdf(pages)
    cols, env = setup(work, paragraphs)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(work / "upload-server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, stdout=log, stderr=log)
    try:
        with httpx.Client(timeout=300) as client:
            deadline = time.monotonic() + 600
            while True:  # the collection open and the model loaded: one search answered
                try:
                    if client.get(base + "/readyz", params={"collection": COLLECTION}).status_code == 200:
                        found, _ = cites_pdf(client, base, QUESTION)
                        assert not found
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start; see {work / 'upload-server.log'}")
                time.sleep(0.5)
            load_start = os.getloadavg()[0]
            cpu0, t0 = server_cpu(server.pid), time.perf_counter()
            r = client.post(f"{base}/api/collections/{COLLECTION}/documents", headers={"X-API-Key": KEY},
                            files=[("files", (PDF_NAME, pdf, "application/pdf"))])
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            stages: dict[str, float] = {}
            while True:
                job = client.get(f"{base}/api/jobs/{job_id}", headers={"X-API-Key": KEY}).json()
                stages.setdefault(job["stage"], round(time.perf_counter() - t0, 2))
                if job["status"] in ("done", "failed"):
                    break
                time.sleep(0.2)
            if job["status"] != "done":
                raise SystemExit(f"the upload failed: {job['error']}")
            done_s = time.perf_counter() - t0
            while True:
                found, ids = cites_pdf(client, base, QUESTION)
                if found or time.perf_counter() - t0 > 600:
                    break
                time.sleep(0.2)
            visible_s = time.perf_counter() - t0
            cpu = server_cpu(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    return {"paragraphs": paragraphs, "pages": pages, "pdf_bytes": len(pdf), "job": job["result"],
            "progress": job["progress"], "stages_s": stages, "job_done_s": round(done_s, 2),
            "visible_s": round(visible_s, 2), "found": found, "hits": ids, "server_cpu_s": round(cpu, 2),
            "load_average_1min": [round(load_start, 1), round(os.getloadavg()[0], 1)], "cores": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paragraphs", type=int, default=10000)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("/tmp/rag-bench"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    result = measure(args.work.resolve(), args.paragraphs, args.pages)
    job = result["job"]
    print(f"| upload of one {args.pages}-page PDF ({job['paragraphs'] - args.paragraphs} paragraphs, "
          f"{result['progress']['encoded']} texts encoded) visible to questions at {args.paragraphs:,} paragraphs "
          f"| {result['visible_s']:.1f} | {result['server_cpu_s']:.1f} | stages (s from the POST): {result['stages_s']} |")
    print(f"load average (1 min): {result['load_average_1min'][0]} at start, {result['load_average_1min'][1]} at end; "
          f"found: {result['found']} {result['hits']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
