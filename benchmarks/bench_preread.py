"""Judge-mode latency on a freshly started `rag serve`: without the KV store on disk, on the first
start (the pre-read running), and after a restart (the store filled).

    .venv/bin/python benchmarks/bench_preread.py                 # the default index, 30 gold questions
    .venv/bin/python benchmarks/bench_preread.py --written 10    # also time the first checked sentence

The index (``--index``, default ``index``) is copied to a temporary folder, so its own store
(``<index>/llm-kv``) is neither used nor changed. Each case is a new server process on a free
loopback port with ``RAG_LLM=local`` (extractive answers), asked the same questions (gold
questions, the three scripts in turn, each once), one at a time, as soon as ``/readyz`` answers:

- ``no store``: ``RAG_LLM_KV_DISK_MB=0`` (memory only, no pre-read; the behaviour before the store);
- ``first start``: an empty store, the pre-read starting with the server;
- ``restart``: a new process over the store the first start filled (the pre-read is let finish
  first; ``--no-wait`` asks while it still runs).

Reported per case: ``/api/ask`` p50 / p95 / max, the judge's p50 (``timings_ms.judge``), search
p50 (``/api/search``, asked between the questions: what the pre-read costs the model-free
routes), and the pre-read's state. ``--written N``: the first N questions again in written mode
through ``/v1/chat/completions`` (streamed), timing the first checked sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gold_questions(n: int) -> list[str]:
    """``n`` gold questions, the three scripts in turn (those the corpus does not answer included)."""
    rows = [json.loads(line) for line in (ROOT / "evals" / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
    by_lang: dict[str, list[str]] = {}
    for row in rows:
        by_lang.setdefault(row["lang"], []).append(row["question"])
    out: list[str] = []
    i = 0
    while len(out) < n and any(i < len(v) for v in by_lang.values()):
        for lang in sorted(by_lang):
            if i < len(by_lang[lang]) and len(out) < n:
                out.append(by_lang[lang][i])
        i += 1
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))] if values else float("nan")


class Server:
    def __init__(self, index: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, "RAG_LLM": "local", "RAG_INDEX_DIR": str(index), "RAG_PORT": str(self.port),
                "RAG_LLM_ANSWERS": "extractive", **env}
        self.log = tempfile.NamedTemporaryFile(prefix="bench-preread-", suffix=".log", delete=False)  # noqa: SIM115
        rag = Path(sys.executable).with_name("rag")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(rag), "serve"], env=full, stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_s = self._wait_ready()

    def _wait_ready(self) -> float:
        while True:
            try:
                r = httpx.get(f"{self.base}/readyz", timeout=2)
                if r.status_code == 200 and r.json().get("llm", {}).get("mode") == "local":
                    return time.perf_counter() - self.t0
                if r.status_code == 200:
                    raise SystemExit(f"the server runs without the model: {r.json().get('llm')}")
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - self.t0 > 300:
                raise SystemExit(f"the server did not become ready; see {self.log.name}")
            time.sleep(0.1)

    def llm(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/readyz", timeout=10).json().get("llm", {})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ask_all(srv: Server, questions: list[str]) -> dict[str, Any]:
    asks, judges, searches, abstained = [], [], [], 0
    with httpx.Client(base_url=srv.base, timeout=300) as c:
        for q in questions:
            t = time.perf_counter()
            r = c.post("/api/ask", json={"question": q})
            asks.append(time.perf_counter() - t)
            r.raise_for_status()
            body = r.json()
            abstained += bool(body.get("abstained"))
            if "judge" in body.get("timings_ms", {}):
                judges.append(body["timings_ms"]["judge"] / 1000)
            t = time.perf_counter()
            c.post("/api/search", json={"query": q, "k": 5}).raise_for_status()
            searches.append(time.perf_counter() - t)
    return {"p50": statistics.median(asks), "p95": pct(asks, 0.95), "max": max(asks),
            "judge_p50": statistics.median(judges) if judges else float("nan"),
            "search_p50_ms": 1000 * statistics.median(searches), "abstained": abstained, "n": len(asks)}


def first_sentences(srv: Server, questions: list[str]) -> dict[str, float]:
    """Seconds to the first checked sentence of a written answer (streamed /v1), per question."""
    firsts, totals = [], []
    with httpx.Client(base_url=srv.base, timeout=300) as c:
        for q in questions:
            t = time.perf_counter()
            first = None
            body = {"messages": [{"role": "user", "content": q}], "stream": True,
                    "metadata": {"answer_mode": "written"}}
            with c.stream("POST", "/v1/chat/completions", json=body) as r:
                r.raise_for_status()
                for line in r.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    if first is None and delta.get("content"):
                        first = time.perf_counter() - t
            totals.append(time.perf_counter() - t)
            firsts.append(first if first is not None else totals[-1])
    return {"first_p50": statistics.median(firsts), "first_p95": pct(firsts, 0.95),
            "total_p50": statistics.median(totals), "n_written": len(firsts)}


def wait_preread(srv: Server, limit_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        pre = srv.llm().get("preread", {})
        if pre.get("state") not in ("waiting", "running"):
            return pre
        time.sleep(1)
    return srv.llm().get("preread", {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=ROOT / "index")
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--written", type=int, default=0, help="also time N written answers' first checked sentence")
    ap.add_argument("--no-wait", action="store_true", help="restart while the first start's pre-read still runs")
    ap.add_argument("--preread-limit-s", type=float, default=1800)
    ap.add_argument("--cases", default="no store,first start,restart",
                    help="comma-separated cases to run, in this order (restart needs first start)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    known = {"no store": {"RAG_LLM_KV_DISK_MB": "0"}, "first start": {}, "restart": {}}
    if not cases or any(c not in known for c in cases) or ("restart" in cases and "first start" not in cases):
        ap.error(f"--cases: some of {', '.join(known)} (restart only after first start), comma-separated")
    if not (args.index / "manifest.json").exists():
        raise SystemExit(f"no index in {args.index}: run `rag index` first")
    questions = gold_questions(args.questions)
    work = Path(tempfile.mkdtemp(prefix="bench-preread-"))
    index = work / "index"
    shutil.copytree(args.index, index, ignore=shutil.ignore_patterns("llm-kv", ".lock"))
    rows: list[dict[str, Any]] = []
    try:
        for case, env in ((c, known[c]) for c in cases):
            srv = Server(index, env)
            try:
                row: dict[str, Any] = {"case": case, "ready_s": srv.ready_s, **ask_all(srv, questions)}
                if args.written:
                    row.update(first_sentences(srv, questions[: args.written]))
                pre = srv.llm().get("preread")
                row["preread_at_end"] = pre
                if case == "first start" and not args.no_wait and "restart" in cases:
                    row["preread_done"] = wait_preread(srv, args.preread_limit_s)
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
            finally:
                srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(questions)} gold questions asked once each per case, one at a time, from the moment "
          f"/readyz answered; RAG_LLM=local, extractive; index {args.index}.\n")
    head = "| case | ready s | ask p50 s | ask p95 s | ask max s | judge p50 s | search p50 ms | abstained |"
    if args.written:
        head += " written: first sentence p50 / p95 s |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['case']} | {r['ready_s']:.1f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['max']:.2f} | "
                f"{r['judge_p50']:.2f} | {r['search_p50_ms']:.0f} | {r['abstained']}/{r['n']} |")
        if args.written:
            line += f" {r['first_p50']:.2f} / {r['first_p95']:.2f} |"
        print(line)
    for r in rows:
        pre = r.get("preread_done") or r.get("preread_at_end")
        if pre:
            print(f"\n{r['case']}: pre-read {pre.get('state')}, {pre.get('read')} of {pre.get('of')} paragraphs "
                  f"({pre.get('saved')} saved, {pre.get('had')} had, gave way to a question {pre.get('gave_way')} times) "
                  f"in {pre.get('seconds')} s; store "
                  f"{pre.get('files')} files, {pre.get('files_mb')} MB")
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
