"""`rag serve` start-up: seconds from launch until /healthz answers and until /readyz says ready.

    .venv/bin/python benchmarks/bench_serve_start.py --index DIR [--repeat 3] [--checkout PATH]

Each run is a fresh process (``python -m rag.cli serve``) on a free port; ``--checkout`` times
another working tree with the same Python (e.g. a checkout of an older commit).
"""

from __future__ import annotations

import argparse
import json
import os
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


def one_run(checkout: Path, index: Path, timeout_s: float) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(checkout), "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--index", str(index), "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True, help="a built index (rag index --index DIR)")
    ap.add_argument("--checkout", type=Path, default=ROOT, help="working tree to run (default: this one)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    runs = [one_run(args.checkout.resolve(), args.index.resolve(), args.timeout) for _ in range(args.repeat)]
    result = {
        "checkout": str(args.checkout),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
        "healthz_s_median": round(statistics.median(r["healthz_s"] for r in runs), 2),
        "readyz_s_median": round(statistics.median(r["readyz_s"] for r in runs), 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }
    print(f"| checkout | /healthz (s, median) | /readyz (s, median) | runs |\n|---|---|---|---|\n"
          f"| {args.checkout} | {result['healthz_s_median']} | {result['readyz_s_median']} | {args.repeat} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
