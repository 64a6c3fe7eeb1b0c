"""Bounded load test of `rag serve` on loopback: N concurrent clients for S seconds, per level.

Starts ``rag serve --index DIR`` on a free 127.0.0.1 port (or talks to ``--url``), waits for
/readyz, then for each number of ``--clients`` (``--clients 1 4 8``: three levels) runs
``--rounds`` consecutive rounds of that many concurrent clients (threads, one keep-alive httpx
client each) for ``--seconds`` over a fixed list of Traditional / Simplified / English
questions, alternating ``POST /api/ask`` and ``POST /api/search`` (``--ask-only``: asks only).
Reports status counts, requests/s, p50/p95/p99 latency (also per endpoint, of the answered
requests), the 503 refusals of a full language-model queue (``model_busy``, with
``Retry-After``) apart from real errors, and the server's RSS (``/proc/<pid>/status``) before
the load and after each round; memory is "stable" when the last round grows RSS by less than
``--max-growth-mb`` over the one before.
Exit status 1 on any other 5xx / transport error, a refusal without ``Retry-After``, or
unstable memory.

    python benchmarks/load_test.py --index index --seconds 60 --clients 16 --json reports/load.json
    # the judge on (RAG_LLM=local), 1, 4 and 8 clients, a queue of 8:
    python benchmarks/load_test.py --index index --llm local --llm-queue 8 --clients 1 4 8 --seconds 60

Nothing leaves the machine: the server binds 127.0.0.1 and the script only talks to it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

QUESTIONS = [
    # Traditional Chinese
    "生產力局主席是誰？",
    "香港如何推動新型工業化？",
    "數碼港人工智能超算中心提供甚麼服務？",
    "新質生產力是甚麼意思？",
    "新型工業化資助計劃資助甚麼？",
    # Simplified Chinese
    "新型工业化发展中心由谁管理？",
    "香港发展新质生产力有什么优势？",
    "政府推出多少亿元人工智能资助计划？",
    "河套深港科技创新合作区什么时候落成？",
    # English
    "What is the New Industrialisation Development Centre?",
    "Who chairs the Hong Kong Productivity Council?",
    "How does Hong Kong support advanced manufacturing?",
    "What does new quality productive forces mean?",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` (and, for a wrapper, it is the server itself) in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def start_server(index: Path, port: int, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "RAG_API_KEYS": "", "RAG_INDEX_DIR": str(index),
           **(env or {})}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--index", str(index)]
    log = open(log_path, "w")  # noqa: SIM115 - closed when the process ends
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen | None, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"rag serve exited with {proc.returncode}")
        try:
            r = httpx.get(base + "/readyz", timeout=5)
            if r.status_code == 200:
                return r.json()
            last = r.text[:200]
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"/readyz not ready within {timeout}s (last: {last})")


BUSY = "503 model_busy"  # the model's queue was full: a refusal by design, not an error


def run_round(base: str, clients: int, seconds: float, k: int, *, ask_only: bool = False,
              answer_mode: str | None = None) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    by_endpoint: dict[str, list[float]] = {"/api/ask": [], "/api/search": []}
    no_retry_after = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        nonlocal no_retry_after
        local: list[tuple[str, str, float]] = []
        missing = 0
        with httpx.Client(base_url=base, timeout=120) as c:
            i = n
            while time.monotonic() < stop_at:
                q = QUESTIONS[i % len(QUESTIONS)]
                path = "/api/ask" if ask_only or i % 2 == 0 else "/api/search"
                body: dict[str, Any] = {"question": q, "k": k} if path == "/api/ask" else {"query": q, "k": k}
                if answer_mode and path == "/api/ask":
                    body["answer_mode"] = answer_mode
                t0 = time.perf_counter()
                try:
                    r = c.post(path, json=body)
                    status = str(r.status_code)
                    if r.status_code == 503:
                        status = f"503 {_error_code(r)}"
                        missing += status == BUSY and not r.headers.get("Retry-After")
                except httpx.HTTPError as exc:
                    status = f"error:{type(exc).__name__}"
                local.append((path, status, time.perf_counter() - t0))
                i += 1
        with lock:
            no_retry_after += missing
            for path, status, dt in local:
                statuses[status] += 1
                latencies.append(dt)
                if status == "200":  # per endpoint: the answered requests (a refusal takes ~1 ms)
                    by_endpoint[path].append(dt)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)
    ms = lambda v: round(v * 1000, 1)  # noqa: E731
    return {
        "clients": clients,
        "requests": len(lat),
        "wall_s": round(wall, 1),
        "rps": round(len(lat) / wall, 2) if wall else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "rejected_503": statuses[BUSY],
        "rejected_without_retry_after": no_retry_after,
        "server_errors": sum(v for s, v in statuses.items()
                             if s != BUSY and (s.startswith("5") or s.startswith("error"))),
        "p50_ms": ms(percentile(lat, 50)),
        "p95_ms": ms(percentile(lat, 95)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(lat[-1]) if lat else None,
        "p50_ms_by_endpoint": {p: ms(percentile(sorted(v), 50)) for p, v in by_endpoint.items() if v},
        "p95_ms_by_endpoint": {p: ms(percentile(sorted(v), 95)) for p, v in by_endpoint.items() if v},
        "mean_ms": ms(statistics.fmean(lat)) if lat else None,
    }


def _error_code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def markdown(result: dict[str, Any]) -> str:
    rows = [
        "| clients | round | requests | req/s | p50 ms | p95 ms | p99 ms | answered ask p50 / p95 ms | search p50 / p95 ms "
        "| 503 busy | other 5xx+errors | statuses | RSS after (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        ends = [" / ".join(str(r[f"p{q}_ms_by_endpoint"].get(p, "-")) for q in (50, 95))
                for p in ("/api/ask", "/api/search")]
        rows.append(
            f"| {r['clients']} | {r['round']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {ends[0]} | {ends[1]} | {r['rejected_503']} | {r['server_errors']} | {statuses} | "
            f"{r['rss_after_mb']} |"
        )
    m = result["memory"]
    rows.append("")
    if m["before_mb"] is not None:
        rows.append(
            f"RSS before load {m['before_mb']} MiB, after the last rounds {m['after_mb']} MiB: growth in the last "
            f"round {m['growth_last_round_mb']} MiB ({'stable' if m['stable'] else 'NOT stable'}, "
            f"limit {m['limit_mb']} MiB)."
        )
    llm = result["ready"].get("llm") or {}
    model = f"language model {llm.get('model')}, queue {llm.get('queue', {}).get('queue')}" \
        if llm.get("mode") == "local" else "no local language model"
    rows.append(
        f"{'/'.join(str(c) for c in result['clients'])} clients x {result['rounds_per_level']} rounds x "
        f"{result['seconds']} s, k={result['k']}, {'asks only' if result['ask_only'] else 'ask/search alternating'}"
        f"{', answer_mode ' + result['answer_mode'] if result['answer_mode'] else ''}; {model}; "
        f"index {result['index']} ({result['ready'].get('paragraphs')} paragraphs), loopback."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=Path(os.environ.get("RAG_INDEX_DIR", "index")))
    ap.add_argument("--url", default=None, help="Load a server already running here instead of starting one "
                    "(no RSS figures)")
    ap.add_argument("--clients", type=int, nargs="+", default=[16], help="Concurrent clients; several: one level each")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2, help="Rounds per level of --clients")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--llm", choices=["off", "local"], default=None,
                    help="RAG_LLM of the started server (local: the judge reads every answer); default: the environment's")
    ap.add_argument("--llm-queue", type=int, default=None, help="RAG_LLM_QUEUE of the started server")
    ap.add_argument("--answer-mode", choices=["extractive", "written"], default=None,
                    help="answer_mode of every /api/ask (default: the server's)")
    ap.add_argument("--ask-only", action="store_true", help="Only POST /api/ask (every request uses the model)")
    ap.add_argument("--startup-timeout", type=float, default=600.0)
    ap.add_argument("--max-growth-mb", type=float, default=50.0,
                    help="RSS growth allowed in the last round over the one before (round 1 includes warm-up)")
    ap.add_argument("--json", type=Path, default=None, help="Also write the result as JSON here")
    ap.add_argument("--server-log", type=Path, default=Path("/tmp/rag-load-test-server.log"))
    args = ap.parse_args(argv)
    if args.url is None and not (args.index / "manifest.json").exists():
        print(f"no index in {args.index}: build one with `rag index --index {args.index}`", file=sys.stderr)
        return 2
    if min(args.clients) < 1 or args.seconds <= 0 or args.rounds < 1:
        print("--clients, --seconds and --rounds must be positive", file=sys.stderr)
        return 2

    env = {}
    if args.llm is not None:
        env["RAG_LLM"] = args.llm
    if args.llm_queue is not None:
        env["RAG_LLM_QUEUE"] = str(args.llm_queue)
    proc = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(args.index, port, args.server_log, env)
    rss = (lambda: rss_mb(proc.pid)) if proc is not None else (lambda: None)
    try:
        t0 = time.perf_counter()
        ready = wait_ready(base, proc, args.startup_timeout)
        startup = time.perf_counter() - t0
        # One warm-up request per endpoint so lazy imports are not counted as growth.
        httpx.post(base + "/api/ask", json={"question": QUESTIONS[0]}, timeout=120)
        httpx.post(base + "/api/search", json={"query": QUESTIONS[0]}, timeout=120)
        before = rss()
        rounds = []
        for clients in args.clients:
            for n in range(1, args.rounds + 1):
                r = run_round(base, clients, args.seconds, args.k, ask_only=args.ask_only,
                              answer_mode=args.answer_mode)
                r["round"] = n
                after_mb = rss()
                r["rss_after_mb"] = round(after_mb, 1) if after_mb is not None else None
                rounds.append(r)
                print(f"{clients} clients, round {n}: {r['requests']} requests, {r['rps']} req/s, "
                      f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, 503 busy {r['rejected_503']}, "
                      f"statuses {r['statuses']}, RSS {r['rss_after_mb']} MiB", file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    after = [r["rss_after_mb"] for r in rounds if r["rss_after_mb"] is not None]
    growth = round(after[-1] - after[-2], 1) if len(after) > 1 else None
    result = {
        "index": str(args.index) if args.url is None else args.url,
        "clients": args.clients,
        "rounds_per_level": args.rounds,
        "seconds": args.seconds,
        "k": args.k,
        "ask_only": args.ask_only,
        "answer_mode": args.answer_mode,
        "startup_s": round(startup, 1),
        "ready": ready,
        "rounds": rounds,
        "memory": {
            "before_mb": round(before, 1) if before is not None else None,
            "after_mb": after,
            "growth_last_round_mb": growth,
            "limit_mb": args.max_growth_mb,
            "stable": growth is None or growth < args.max_growth_mb,
        },
    }
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    ok = (all(r["server_errors"] == 0 and r["rejected_without_retry_after"] == 0 for r in rounds)
          and result["memory"]["stable"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
