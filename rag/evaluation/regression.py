"""The regression gate: each question of this run paired with the same question of the baseline.

For every set, group (overall, each language, follow-ups) and gated metric, the per-question
differences ``after - before`` (signed so that positive is better) go through a one-sided paired
sign-flip permutation test: under "no change", each non-zero difference is as likely to have the
other sign. The p-value is the share of sign assignments whose sum is at most the observed sum
(exact enumeration up to ``EXACT_MAX`` non-zero differences, a fixed-seed Monte Carlo beyond).
For 0/1 metrics (R@1, answer found) this is the exact sign test on the questions that changed.

Why this rule and not a fixed tolerance: the tolerance follows the set's size and the spread of
the changes by itself (a drop of 0.02 is one question on a 41-question language group and noise,
and 70 questions on drcd/dev and not), and unchanged code produces identical per-question
results, so it never fails. A drop fails when ``p < ALPHA``; the false-alarm rate of this rule on
changes with no real effect is measured by ``benchmarks/gate_false_alarms.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.01
EXACT_MAX = 16  # non-zero differences enumerated exactly (2**16 sign patterns)
MONTE_CARLO_DRAWS = 20_000
SEED = 20241201

# metric -> higher is better (abstention_recall is defined on unanswerable questions, the rest on
# answerable ones; ``outcome`` records each where it is defined)
GATED_METRICS: dict[str, bool] = {
    "recall@1": True,
    "recall@5": True,
    "mrr@10": True,
    "answer_in_citations": True,
    "answer_in_text": True,
    "false_abstention": False,
    "abstention_recall": True,
}


# ------------------------------------------------------------------------- per-question outcomes


def outcome(row: Mapping[str, Any]) -> dict[str, Any]:
    """The compact per-question record stored in ``results.json`` and in the baseline."""
    out: dict[str, Any] = {"id": row["id"], "lang": row.get("lang", ""), "question": row.get("question", "")}
    if row.get("followup"):
        out["followup"] = True
    ranked = list(row.get("ranked") or [])
    gold = list(row.get("gold") or [])
    out["answerable"] = bool(row.get("answerable"))
    if gold:
        out["ranks"] = [ranked.index(g) + 1 if g in ranked else None for g in gold]
    values: dict[str, float] = {}
    retrieval = row.get("retrieval") or {}
    for m in ("recall@1", "recall@5", "mrr@10"):
        if m in retrieval:
            values[m] = round(float(retrieval[m]), 6)
    if row.get("abstained") is not None and not row.get("error"):
        if out["answerable"]:
            values["answer_in_citations"] = float(bool(row.get("answer_in_citations")))
            values["answer_in_text"] = float(bool(row.get("answer_in_text")))
            values["false_abstention"] = float(bool(row["abstained"]))
        else:
            values["abstention_recall"] = float(bool(row["abstained"]))
    elif row.get("error") and "answers" in row:  # a refused question counts as a miss everywhere
        if out["answerable"]:
            values.update(answer_in_citations=0.0, answer_in_text=0.0, false_abstention=1.0)
        else:
            values["abstention_recall"] = 0.0
    out["values"] = values
    return out


def first_rank(o: Mapping[str, Any]) -> int | None:
    ranks = [r for r in o.get("ranks") or [] if r is not None]
    return min(ranks) if ranks else None


# ------------------------------------------------------------------------- the test


def sign_flip_p(diffs: Sequence[float], *, seed: int = SEED) -> float:
    """One-sided p-value of ``sum(diffs)`` being this low if each difference's sign were a coin toss."""
    d = np.asarray([x for x in diffs if x != 0], dtype=np.float64)
    if d.size == 0:
        return 1.0
    observed = d.sum()
    mags = np.abs(d)
    tol = 1e-9 * max(1.0, float(mags.sum()))
    if d.size <= EXACT_MAX:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=d.size)))
        sums = signs @ mags
        return float(np.mean(sums <= observed + tol))
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < MONTE_CARLO_DRAWS:
        n = min(2000, MONTE_CARLO_DRAWS - done)
        signs = rng.integers(0, 2, size=(n, d.size), dtype=np.int8) * 2 - 1
        hits += int(np.sum(signs @ mags <= observed + tol))
        done += n
    # +1 keeps a Monte Carlo p-value valid (never 0 from a finite sample)
    return (hits + 1) / (MONTE_CARLO_DRAWS + 1)


@dataclass(frozen=True)
class PairedChange:
    """One (set, group, metric) of this run against the baseline, over the questions both have."""

    set: str
    group: str
    metric: str
    n: int  # paired questions the metric is defined on
    before: float
    after: float
    worse: int  # questions whose value got worse
    better: int
    p: float  # one-sided: the chance of a drop at least this large without a real change
    p_gain: float  # one-sided sign test of the questions that moved the other way (for "better")
    worse_ids: tuple[str, ...] = ()  # the questions counted in ``worse``, in run order

    @property
    def regressed(self) -> bool:
        # p < ALPHA already means the mean dropped (a sum at or above 0 has p >= 0.5)
        return self.worse > self.better and self.p < ALPHA

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "WORSE"
        if self.worse == self.better == 0:
            return "same"
        if self.better > self.worse and self.p_gain < ALPHA:
            return "better"
        return "within noise"

    def line(self) -> str:
        return (f"{self.set} [{self.group}] {self.metric} {self.before:.3f} -> {self.after:.3f} "
                f"({self.worse} worse, {self.better} better of {self.n}; p of a drop {self.p:.3g})")


def _groups(o: Mapping[str, Any]) -> list[str]:
    out = ["overall"]
    if o.get("lang"):
        out.append(o["lang"])
    if o.get("followup"):
        out.append("followup")
    return out


def compare_set(name: str, now: Iterable[Mapping[str, Any]], base: Iterable[Mapping[str, Any]],
                metrics: Mapping[str, bool] = GATED_METRICS) -> list[PairedChange]:
    """Paired changes of one set; questions are paired by id (and question text, when both have it).
    ``metrics``: metric -> higher is better (the gated ones unless told)."""
    before = {o["id"]: o for o in base}
    pairs = []
    for o in now:
        b = before.get(o["id"])
        if b is None or (b.get("question") and o.get("question") and b["question"] != o["question"]):
            continue
        pairs.append((b, o))
    langs = {o.get("lang") for _, o in pairs}
    changes: list[PairedChange] = []
    groups: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for b, o in pairs:
        for g in _groups(o):
            if g == o.get("lang") and len(langs) == 1:
                continue  # a one-language set: its language group is the overall group
            groups.setdefault(g, []).append((b, o))
    for g, members in groups.items():
        for metric, higher_better in metrics.items():
            vals = [(o["id"], b["values"][metric], o["values"][metric]) for b, o in members
                    if metric in b.get("values", {}) and metric in o.get("values", {})]
            if not vals:
                continue
            sign = 1.0 if higher_better else -1.0
            diffs = [sign * (a - x) for _, x, a in vals]
            worse, better = sum(d < 0 for d in diffs), sum(d > 0 for d in diffs)
            changes.append(PairedChange(
                set=name, group=g, metric=metric, n=len(vals),
                before=sum(x for _, x, _ in vals) / len(vals), after=sum(a for _, _, a in vals) / len(vals),
                worse=worse, better=better, p=sign_flip_p(diffs),
                p_gain=sign_flip_p([-1.0] * better + [1.0] * worse) if better > worse else 1.0,
                worse_ids=tuple(qid for (qid, _, _), d in zip(vals, diffs, strict=True) if d < 0),
            ))
    return changes


def compare_runs(results: Mapping[str, Any], baseline: Mapping[str, Any]) -> tuple[list[PairedChange], list[str]]:
    """Paired changes of every set both runs have, and notes on what could not be paired."""
    changes: list[PairedChange] = []
    notes: list[str] = []
    base_sets = baseline.get("sets", {})
    for name, data in results.get("sets", {}).items():
        now = data.get("outcomes")
        base = base_sets.get(name, {}).get("outcomes")
        if not base:
            notes.append(f"{name}: not in the baseline (or the baseline has no per-question outcomes)")
            continue
        ids_now = {o["id"] for o in now or []}
        ids_base = {o["id"] for o in base}
        missing = len(ids_base - ids_now)
        if missing and not data.get("sampled"):
            notes.append(f"{name}: {missing} baseline questions not in this run")
        if ids_now - ids_base:
            notes.append(f"{name}: {len(ids_now - ids_base)} questions new since the baseline (not compared)")
        changes += compare_set(name, now or [], base)
    for name in base_sets:
        if name not in results.get("sets", {}):
            notes.append(f"{name}: in the baseline but not run")
    return changes, notes


@dataclass(frozen=True)
class QuestionMove:
    set: str
    id: str
    question: str
    gold: tuple[str, ...]
    before: int | None  # first gold rank (None: not in the top k)
    after: int | None
    gain: float  # sum of the gated metrics' changes, signed so that positive is better
    detail: str  # gated values that moved besides the ranking, e.g. "answer_in_text 1 -> 0"

    @property
    def worse(self) -> bool:
        return self.gain < 0

    def line(self) -> str:
        def r(x: int | None) -> str:
            return str(x) if x is not None else "—"

        gold = ", ".join(self.gold) or "(unanswerable)"
        return (f"`{self.id}` {self.question} — gold {gold}: rank {r(self.before)} → {r(self.after)}"
                + (f"; {self.detail}" if self.detail else ""))


def question_moves(results: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[QuestionMove]:
    """Every paired question whose gated values changed, losses first within each set."""
    moves: list[QuestionMove] = []
    for name, data in results.get("sets", {}).items():
        before = {o["id"]: o for o in baseline.get("sets", {}).get(name, {}).get("outcomes") or []}
        gold_of = {r["id"]: tuple(r.get("gold", ())) for r in data.get("rows", [])}
        found = []
        for o in data.get("outcomes") or []:
            b = before.get(o["id"])
            if b is None:
                continue
            bv, ov = b.get("values", {}), o.get("values", {})
            moved = [m for m in GATED_METRICS if m in bv and m in ov and bv[m] != ov[m]]
            if not moved:
                continue
            gain = sum((ov[m] - bv[m]) * (1 if GATED_METRICS[m] else -1) for m in moved)
            detail = "; ".join(f"{m} {bv[m]:g} -> {ov[m]:g}" for m in moved
                               if m not in ("recall@1", "recall@5", "mrr@10"))
            found.append(QuestionMove(name, o["id"], o.get("question", ""), gold_of.get(o["id"], ()),
                                      first_rank(b), first_rank(o), gain, detail))
        moves += sorted(found, key=lambda m: m.gain)
    return moves


def regression_failures(changes: Iterable[PairedChange]) -> list[str]:
    return [f"regression: {c.line()}" for c in changes if c.regressed]
