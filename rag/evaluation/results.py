"""What a run of ``rag eval`` gives back: shared by the runner that makes it and the report that
writes it (neither imports the other for it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rag.evaluation.regression import PairedChange

# --answers: the answers block's metrics in the printed summary (reported, not gated)
ANSWER_SUMMARY = ("answer_in_text", "answer_in_text_or_value", "answer_by_meaning", "exact_match", "f1", "best_sentence_f1",
                  "answer_in_citations", "false_abstention_rate", "near_miss_abstention_recall")

RuleStatus = Literal["passed", "failed", "not met", "not checked", "other mode"]


@dataclass(frozen=True)
class RuleCheck:
    """One ``[[rule]]`` of the thresholds file against a run.

    ``status``: ``passed``; ``failed`` (an enforced bound broken: the gate fails); ``not met`` (a
    bound of an ``enforce = false`` rule broken: reported, never failing); ``not checked`` (its
    set not run, its groups empty, or a ``full_set_only`` rule on a sample); ``other mode`` (a
    rule of another mode than the run's)."""

    rule: Mapping[str, Any]
    status: RuleStatus
    failures: tuple[str, ...] = ()  # the gate's failure lines (enforced bounds broken)
    notes: tuple[str, ...] = ()  # what was not checked, and targets not met

    @property
    def name(self) -> str:
        """The rule in a few words: ``[each_lang] recall@5 >= 0.95`` (its set said apart)."""
        r = self.rule
        bounds = ([f">= {r['min']}"] if "min" in r else []) + ([f"<= {r['max']}"] if "max" in r else [])
        modes = r.get("mode")
        shown = f" (mode {modes if isinstance(modes, str) else ', '.join(modes)})" if modes else ""
        return f"[{r['group']}] {r['metric']} {' and '.join(bounds)}{shown}"


@dataclass
class EvalResult:
    results: dict[str, Any]
    gate_failures: list[str]
    changes: list[PairedChange] = field(default_factory=list)
    report_dir: Path | None = None
    baseline: dict[str, Any] | None = None
    rule_failures: list[str] = field(default_factory=list)  # thresholds.toml and the gold set's validity
    rule_checks: list[RuleCheck] = field(default_factory=list)  # each rule of thresholds.toml, in file order
    answer_changes: list[PairedChange] = field(default_factory=list)  # --answers vs the baseline: reported, not gated

    @property
    def passed(self) -> bool:
        return not self.gate_failures

    def summary_lines(self) -> list[str]:
        """What ``rag eval`` prints (:func:`summary_lines`)."""
        return summary_lines(self)


def format_metric(v: Any, metric: str = "") -> str:
    """A metric's value as the report and the summary show it."""
    if v is None:
        return "–"
    if isinstance(v, int) or metric == "n":
        return str(v)
    if metric.endswith("_sentences"):
        return f"{v:g}"
    if metric.startswith("answer_chars"):
        return f"{v:.0f}"
    return f"{v:.1f}" if metric.startswith(("latency", "judge", "generate_")) else f"{v:.3f}"


def summary_lines(result: EvalResult) -> list[str]:
    """What ``rag eval`` prints: headline metrics per set and group, changes, gate verdict."""
    res = result.results
    lines = []
    for name, data in res.get("sets", {}).items():
        for g, m in data["groups"].items():
            keys = (("recall@1", "recall@5", "mrr@10", "answer_in_citations", "answer_in_text",
                     "answer_in_text_or_value", "answer_by_meaning", "abstention_precision", "abstention_recall", "false_abstention_rate", "latency_p95_ms",
                     "judge_p50_ms", "generated_share", "english_answers_in_english", "removed_sentences",
                     "generate_p50_ms")
                    if data.get("kind") == "gold" else ("recall@1", "recall@5", "mrr@10"))
            cells = "  ".join(f"{k}={format_metric(m.get(k), k)}" for k in keys if k in m)
            lines.append(f"{name:<16} {g:<9} n={m['n']:<5} {cells}")
        for g, m in (data.get("answers") or {}).get("groups", {}).items():
            cells = "  ".join(f"{k}={format_metric(m.get(k), k)}" for k in ANSWER_SUMMARY if k in m)
            lines.append(f"{name:<16} {g:<9} answers n={m['n']:<4} {cells}")
        if "seconds" in data:
            lines.append(f"{name:<16} ran in {data['seconds']} s")
    for name, why in res.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    if res.get("baseline"):
        moved = [c for c in result.changes if c.worse or c.better]
        regressed = [c for c in moved if c.regressed]
        lines.append(f"vs baseline {res['baseline']}: {len(moved)} of {len(result.changes)} metrics moved, "
                     f"{len(regressed)} significantly worse")
        lines += [f"  {c.verdict:>12}: {c.line()}" for c in moved]
    lines += [n for n in res.get("gate", {}).get("not_checked", []) if n.startswith(("TARGET", "baseline"))]
    lines += [f"FAIL {f}" for f in result.gate_failures]
    lines.append(f"gate {'passed' if result.passed else 'FAILED'}; report in {result.report_dir}")
    return lines
