"""Paired bootstrap of the change between two `rag eval` runs, per set and language group.

    python benchmarks/compare_eval.py BEFORE/results.json AFTER/results.json [--metrics recall@1,recall@5,mrr@10]

Questions are matched by id (a question in only one run is left out and counted); for each
set/group and metric it prints the mean before and after, the mean per-question change and its
95% percentile interval over 10,000 resamples of the questions (seed 0). Unanswerable gold
questions have no retrieval metric and are skipped; gold follow-ups count in their language and
in "followup", as `rag eval` groups them. Both files need the per-question ``outcomes`` that
``rag eval`` writes for every set (and ``evals/baseline/results.json`` holds). Where
``rag eval`` tests whether a drop is significant, this prints how large the change is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BOOT = 10_000


def rows_by_group(results: dict) -> dict[tuple[str, str], dict[str, dict]]:
    """(set, group) -> question id -> gated values, from the per-question ``outcomes``."""
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for name, s in results.get("sets", {}).items():
        for o in s.get("outcomes", []):
            if not o.get("answerable"):
                continue
            groups = ["all"]
            if s.get("kind") == "gold":
                groups = [o.get("lang", "?")] + (["followup"] if o.get("followup") else [])
            for g in groups:
                out.setdefault((name, g), {})[o["id"]] = o["values"]
    return out


def interval(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(BOOT, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--metrics", default="recall@1,recall@5,mrr@10")
    args = ap.parse_args()
    a = rows_by_group(json.loads(args.before.read_text()))
    b = rows_by_group(json.loads(args.after.read_text()))
    metrics = args.metrics.split(",")
    print("| set / group | n | " + " | ".join(f"{m} before → after, Δ [95% CI]" for m in metrics) + " |")
    print("|---|---:|" + "---|" * len(metrics))
    for key in sorted(set(a) & set(b)):
        ids = sorted(set(a[key]) & set(b[key]))
        if not ids:
            continue
        cells = []
        for m in metrics:
            x = np.array([a[key][i].get(m, 0.0) for i in ids])
            y = np.array([b[key][i].get(m, 0.0) for i in ids])
            lo, hi = interval(y - x)
            cells.append(f"{x.mean():.3f} → {y.mean():.3f}, {y.mean() - x.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]")
        left = len(set(a[key]) ^ set(b[key]))
        print(f"| {key[0]} {key[1]} | {len(ids)}{f' ({left} unmatched)' if left else ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
