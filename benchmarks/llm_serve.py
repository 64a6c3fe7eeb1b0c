"""`rag serve` with and without the language model: time to ready, RSS, one question's latency.

    .venv/bin/python benchmarks/llm_serve.py            # needs an index (rag index) and setup.sh --llm

Starts the real server twice (RAG_LLM=off, then local) on a free loopback port, polls /readyz,
asks the same questions through POST /api/ask, and reads the server's RSS from /proc.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

QUESTIONS = ["生產力局主席是誰？", "新型工业化发展中心由谁管理？", "Who is the chairman of the Productivity Council?",
             "香港微電子研發院的院長是誰？", "What is the budget for Mars exploration?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run(mode: str) -> dict:
    port = free_port()
    env = {**os.environ, "RAG_LLM": mode, "RAG_PORT": str(port)}
    rag = Path(sys.executable).with_name("rag")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(rag), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                r = httpx.get(f"{base}/readyz", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > 180:
                raise SystemExit(f"{mode}: server did not become ready")
            time.sleep(0.1)
        ready = time.perf_counter() - t0
        rss_ready = rss_mb(proc.pid)
        first, later, judge = [], [], []
        for round_ in range(2):
            for q in QUESTIONS:
                t = time.perf_counter()
                body = httpx.post(f"{base}/api/ask", json={"question": q}, timeout=120).json()
                (first if round_ == 0 else later).append(time.perf_counter() - t)
                if "judge" in body.get("timings_ms", {}):
                    judge.append(body["timings_ms"]["judge"] / 1000)
        return {"mode": mode, "ready_s": ready, "rss_ready": rss_ready, "rss_after": rss_mb(proc.pid),
                "first_p50": statistics.median(first), "later_p50": statistics.median(later),
                "judge_p50": statistics.median(judge) if judge else None}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    rows = [run("off"), run("local")]
    print("| RAG_LLM | ready (s) | RSS at ready (MB) | RSS after 10 questions (MB) | ask p50, first time (s) | ask p50, asked before (s) | judge p50 (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        j = "–" if r["judge_p50"] is None else f"{r['judge_p50']:.2f}"
        print(f"| {r['mode']} | {r['ready_s']:.1f} | {r['rss_ready']:.0f} | {r['rss_after']:.0f} | "
              f"{r['first_p50']:.2f} | {r['later_p50']:.2f} | {j} |")
    print(f"\nadded RSS with the model: {rows[1]['rss_after'] - rows[0]['rss_after']:.0f} MB after the questions")


if __name__ == "__main__":
    main()
