"""How often the regression gate fails a change that has no real effect (its false-alarm rate).

Two ``rag eval`` results files of two configurations (``results.json`` of the report folder, or a
stored baseline) give, per question, the outcomes of A and of B. A change with no real effect
makes each question's difference as likely in one direction as in the other, so a "neutral"
B' is made by swapping A's and B's outcomes question by question with a coin toss (the same toss
for every metric of one question). The gate (``rag.evaluation.regression``) is run on A vs B'
for ``--rounds`` tosses; the share of rounds with at least one failing (set, group, metric) is
the family-wise false-alarm rate for a change of that much churn. Unchanged code gives the same
outcomes for every question (retrieval is deterministic), so it never fails: A against A is
checked too.

    python benchmarks/gate_false_alarms.py A/results.json B/results.json [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

from rag.evaluation.regression import ALPHA, compare_runs


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def neutral(a: dict, b: dict, rng: random.Random) -> dict:
    """B with each question's outcome replaced by A's or B's by a coin toss."""
    sets = {}
    for name, data in b["sets"].items():
        base = {o["id"]: o for o in a["sets"].get(name, {}).get("outcomes", [])}
        mixed = [base[o["id"]] if o["id"] in base and rng.random() < 0.5 else o for o in data.get("outcomes", [])]
        sets[name] = {"outcomes": mixed}
    return {"sets": sets}


def failing(changes) -> list[str]:
    return [f"{c.set} [{c.group}] {c.metric}" for c in changes if c.regressed]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    a, b = load(args.a), load(args.b)
    a = {"sets": {n: {"outcomes": d.get("outcomes", [])} for n, d in a["sets"].items()}}
    b = {"sets": {n: {"outcomes": d.get("outcomes", []), "sampled": d.get("sampled")} for n, d in b["sets"].items()
                  if n in a["sets"]}}

    same, _ = compare_runs(a, a)
    print(f"A against A: {len(same)} metrics compared, {len(failing(same))} failing")
    real, _ = compare_runs(b, a)
    print(f"B against A: {len(failing(real))} failing: {', '.join(failing(real)) or 'none'}")
    print()
    print("| set | questions | changed (any metric) |")
    print("|---|---:|---:|")
    for name, data in b["sets"].items():
        base = {o["id"]: o["values"] for o in a["sets"][name]["outcomes"]}
        changed = sum(1 for o in data["outcomes"] if o["id"] in base and base[o["id"]] != o["values"])
        print(f"| {name} | {len(data['outcomes'])} | {changed} |")

    rng = random.Random(args.seed)
    rounds_failing = 0
    which: Counter[str] = Counter()
    for _ in range(args.rounds):
        changes, _ = compare_runs(neutral(a, b, rng), a)
        fails = failing(changes)
        rounds_failing += bool(fails)
        which.update(fails)
    rate = rounds_failing / args.rounds
    # a 95% Wilson interval for the rate
    z, n = 1.96, args.rounds
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((rate * (1 - rate) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    print()
    print(f"alpha {ALPHA} per metric; {len(real)} metrics per run")
    print(f"neutral versions of B failing the gate: {rounds_failing} of {args.rounds} = {rate:.3f} "
          f"(95% interval {max(0.0, centre - half):.3f}-{min(1.0, centre + half):.3f})")
    for key, count in which.most_common(8):
        print(f"  {count:4d}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
