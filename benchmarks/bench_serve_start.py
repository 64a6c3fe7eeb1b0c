"""`rag serve` start-up: seconds from launch until /healthz answers and until /readyz says ready.

    .venv/bin/python benchmarks/bench_serve_start.py --index DIR [--repeat 3] [--checkout PATH]
    .venv/bin/python benchmarks/bench_serve_start.py --run-sh [--repeat 3] [--checkout PATH]

Each run is a fresh process (``python -m rag.cli serve``) on a free port; ``--checkout`` times
another working tree with the same Python (e.g. a checkout of an older commit). ``--run-sh``
times ``bash scripts/run.sh`` of the checkout instead (setup check, ``rag index`` of its
corpus/ into its index/, then ``rag serve``), as a user starts the product; run it once before
so that index/ is built.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def one_run(checkout: Path, index: Path | None, timeout_s: float) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(checkout), "GRADIO_ANALYTICS_ENABLED": "False", "RAG_PORT": str(port)}
    if index is None:
        cmd = ["bash", "scripts/run.sh"]
    else:
        cmd = [sys.executable, "-m", "rag.cli", "serve", "--index", str(index), "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    healthy = None
    try:
        while time.perf_counter() - t0 < timeout_s:
            if proc.poll() is not None:
                raise SystemExit(f"rag serve exited with {proc.returncode}: {proc.stderr.read().decode()[-500:]}")
            if healthy is None and status(base + "/healthz") == 200:
                healthy = time.perf_counter() - t0
            if healthy is not None and status(base + "/readyz") == 200:
                return {"healthz_s": healthy, "readyz_s": time.perf_counter() - t0}
            time.sleep(0.05)
        raise SystemExit(f"not ready after {timeout_s} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # run.sh execs rag serve; the group is that server
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, default=None, help="a built index (rag index --index DIR)")
    ap.add_argument("--run-sh", action="store_true", help="time scripts/run.sh of the checkout instead")
    ap.add_argument("--checkout", type=Path, default=ROOT, help="working tree to run (default: this one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if (args.index is None) == (not args.run_sh):
        ap.error("give --index DIR or --run-sh")
    index = None if args.run_sh else args.index.resolve()
    runs = [one_run(args.checkout.resolve(), index, args.timeout) for _ in range(args.repeat)]
    result = {
        "checkout": str(args.checkout),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
        "healthz_s_median": round(statistics.median(r["healthz_s"] for r in runs), 2),
        "readyz_s_median": round(statistics.median(r["readyz_s"] for r in runs), 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    what = "scripts/run.sh" if args.run_sh else "rag serve"
    print(f"| checkout | command | /healthz (s, median) | /readyz (s, median) | runs | load |\n|---|---|---|---|---|---|\n"
          f"| {args.checkout} | {what} | {result['healthz_s_median']} | {result['readyz_s_median']} | {args.repeat} "
          f"| {result['load_average_1min']} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
