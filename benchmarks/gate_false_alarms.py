"""How often the regression gate fails a change that has no real effect (its false-alarm rate).

Two ``rag eval`` results files of two configurations (``results.json`` of the report folder, or a
stored baseline) give, per question, the outcomes of A and of B. A change with no real effect
makes each question's difference as likely in one direction as in the other, so a "neutral"
pair is made by putting each question's two outcomes in a random order (a coin toss per question,
the same for every metric of it): baseline A' and run B' then differ by B's churn, with no real
effect. The gate (``rag.evaluation.regression``) is run on B' against A' for ``--rounds`` tosses; the share of rounds with at least one failing (set, group, metric) is
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


def neutral(a: dict, b: dict, rng: random.Random) -> tuple[dict, dict]:
    """A baseline and a run with each question's pair of outcomes (A's, B's) in a random order.

    Every question keeps the size of its change; only its direction becomes a coin toss (the
    same toss for every metric of one question), so the pair has B's churn and no real effect.
    """
    base_sets, run_sets = {}, {}
    for name, data in b["sets"].items():
        before = {o["id"]: o for o in a["sets"].get(name, {}).get("outcomes", [])}
        xs, ys = [], []
        for o in data.get("outcomes", []):
            x = before.get(o["id"])
            if x is None:
                continue
            if rng.random() < 0.5:
                x, o = o, x
            xs.append(x)
            ys.append(o)
        base_sets[name], run_sets[name] = {"outcomes": xs}, {"outcomes": ys}
    return {"sets": base_sets}, {"sets": run_sets}


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
        base, run = neutral(a, b, rng)
        changes, _ = compare_runs(run, base)
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
