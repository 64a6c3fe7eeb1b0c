"""Bounded load test of `rag serve` on loopback: N concurrent clients for S seconds, twice.

Starts ``rag serve --index DIR`` on a free 127.0.0.1 port, waits for /readyz, then runs two
consecutive rounds of ``--clients`` concurrent clients (threads, one keep-alive httpx client
each) for ``--seconds`` over a fixed list of Traditional / Simplified / English questions,
alternating ``POST /api/ask`` and ``POST /api/search``. Reports status counts, requests/s,
p50/p95/p99 latency per round, and the server's RSS (``/proc/<pid>/status``) before the load,
after round 1 and after round 2; memory is "stable" when round 2 grows RSS by less than
``--max-growth-mb`` over round 1. Exit status 1 on any 5xx / transport error or unstable memory.

    python benchmarks/load_test.py --index index --seconds 60 --clients 16 --json reports/load.json

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


def start_server(index: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "RAG_API_KEYS": "", "RAG_INDEX_DIR": str(index)}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--index", str(index)]
    log = open(log_path, "w")  # noqa: SIM115 - closed when the process ends
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
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


def run_round(base: str, clients: int, seconds: float, k: int) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    by_endpoint: dict[str, list[float]] = {"/api/ask": [], "/api/search": []}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        local: list[tuple[str, str, float]] = []
        with httpx.Client(base_url=base, timeout=120) as c:
            i = n
            while time.monotonic() < stop_at:
                q = QUESTIONS[i % len(QUESTIONS)]
                path = "/api/ask" if i % 2 == 0 else "/api/search"
                body = {"question": q, "k": k} if path == "/api/ask" else {"query": q, "k": k}
                t0 = time.perf_counter()
                try:
                    r = c.post(path, json=body)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = f"error:{type(exc).__name__}"
                local.append((path, status, time.perf_counter() - t0))
                i += 1
        with lock:
            for path, status, dt in local:
                statuses[status] += 1
                latencies.append(dt)
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
        "requests": len(lat),
        "wall_s": round(wall, 1),
        "rps": round(len(lat) / wall, 2) if wall else 0.0,
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(v for s, v in statuses.items() if s.startswith("5") or s.startswith("error")),
        "p50_ms": ms(percentile(lat, 50)),
        "p95_ms": ms(percentile(lat, 95)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(lat[-1]) if lat else None,
        "p95_ms_by_endpoint": {p: ms(percentile(sorted(v), 95)) for p, v in by_endpoint.items()},
        "mean_ms": ms(statistics.fmean(lat)) if lat else None,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [
        "| round | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | statuses | 5xx+errors | RSS after (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        rows.append(
            f"| {r['round']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['max_ms']} | {statuses} | {r['server_errors']} | {r['rss_after_mb']} |"
        )
    m = result["memory"]
    rows.append("")
    rows.append(
        f"RSS before load {m['before_mb']} MiB, after round 1 {m['after_1_mb']} MiB, after round 2 "
        f"{m['after_2_mb']} MiB: growth in round 2 {m['growth_round_2_mb']} MiB "
        f"({'stable' if m['stable'] else 'NOT stable'}, limit {m['limit_mb']} MiB)."
    )
    rows.append(
        f"{result['clients']} clients x {result['seconds']} s per round, k={result['k']}, "
        f"index {result['index']} ({result['ready'].get('paragraphs')} paragraphs), loopback."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index", type=Path, default=Path(os.environ.get("RAG_INDEX_DIR", "index")))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--startup-timeout", type=float, default=600.0)
    ap.add_argument("--max-growth-mb", type=float, default=50.0,
                    help="RSS growth allowed in round 2 over round 1 (round 1 includes warm-up)")
    ap.add_argument("--json", type=Path, default=None, help="Also write the result as JSON here")
    ap.add_argument("--server-log", type=Path, default=Path("/tmp/rag-load-test-server.log"))
    args = ap.parse_args(argv)
    if not (args.index / "manifest.json").exists():
        print(f"no index in {args.index}: build one with `rag index --index {args.index}`", file=sys.stderr)
        return 2
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        print("--clients, --seconds and --rounds must be positive", file=sys.stderr)
        return 2

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(args.index, port, args.server_log)
    try:
        t0 = time.perf_counter()
        ready = wait_ready(base, proc, args.startup_timeout)
        startup = time.perf_counter() - t0
        # One warm-up request per endpoint so lazy imports are not counted as growth.
        httpx.post(base + "/api/ask", json={"question": QUESTIONS[0]}, timeout=120)
        httpx.post(base + "/api/search", json={"query": QUESTIONS[0]}, timeout=120)
        before = rss_mb(proc.pid)
        rounds = []
        for n in range(1, args.rounds + 1):
            r = run_round(base, args.clients, args.seconds, args.k)
            r["round"] = n
            r["rss_after_mb"] = round(rss_mb(proc.pid) or float("nan"), 1)
            rounds.append(r)
            print(f"round {n}: {r['requests']} requests, {r['rps']} req/s, p95 {r['p95_ms']} ms, "
                  f"statuses {r['statuses']}, RSS {r['rss_after_mb']} MiB", file=sys.stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    after = [r["rss_after_mb"] for r in rounds]
    growth = round(after[-1] - after[-2], 1) if len(after) > 1 else None
    result = {
        "index": str(args.index),
        "clients": args.clients,
        "seconds": args.seconds,
        "k": args.k,
        "startup_s": round(startup, 1),
        "ready": ready,
        "rounds": rounds,
        "memory": {
            "before_mb": round(before or float("nan"), 1),
            "after_1_mb": after[0],
            "after_2_mb": after[1] if len(after) > 1 else None,
            "growth_round_2_mb": growth,
            "limit_mb": args.max_growth_mb,
            "stable": growth is None or growth < args.max_growth_mb,
        },
    }
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    ok = all(r["server_errors"] == 0 for r in rounds) and result["memory"]["stable"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
