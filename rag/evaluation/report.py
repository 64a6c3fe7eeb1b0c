"""Thresholds, baseline comparison and the report folder (results.json, report.md, PNG)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError

if TYPE_CHECKING:
    from rag.evaluation.runner import EvalResult

# metric -> True when higher is better
KEY_METRICS: dict[str, bool] = {
    "recall@1": True, "recall@5": True, "recall@10": True, "hit@5": True, "mrr@10": True,
    "ndcg@10": True, "answer_in_citations": True, "citation_precision": True,
    "abstention_precision": True, "abstention_recall": True, "false_abstention_rate": False,
    "latency_p50_ms": False, "latency_p95_ms": False,
}
TABLE_METRICS = ("n", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_in_citations",
                 "citation_precision", "abstention_precision", "abstention_recall",
                 "false_abstention_rate", "latency_p50_ms", "latency_p95_ms")
EXTERNAL_TABLE = ("n", "recall@1", "recall@5", "recall@10", "recall@20", "mrr@10", "ndcg@10", "latency_p50_ms")
RATE_EPS = 0.005  # smaller moves of a rate are noise, not "better" or "worse"
LATENCY_REL = 0.25  # latency on a shared CPU box is noisy
MAX_FAILURES_LISTED = 40


# ------------------------------------------------------------------------------- thresholds


def load_thresholds(path: Path | str) -> list[dict[str, Any]]:
    """The ``[[rule]]`` list of a thresholds TOML file, each checked for shape."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"thresholds file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML ({e})") from e
    rules = data.get("rule", [])
    for i, r in enumerate(rules, start=1):
        if not {"set", "group", "metric"} <= r.keys() or not ({"min", "max"} & r.keys()):
            raise InputError(f"{path}: rule {i} needs set, group, metric and min or max; got {r}")
    return rules


# ------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Change:
    set: str
    group: str
    metric: str
    old: float
    new: float

    @property
    def verdict(self) -> str:
        higher_better = KEY_METRICS.get(self.metric, True)
        if self.metric.startswith("latency"):
            moved = abs(self.new - self.old) > LATENCY_REL * max(self.old, 1e-9)
        else:
            moved = abs(self.new - self.old) > RATE_EPS
        if not moved:
            return "same"
        return "better" if (self.new > self.old) == higher_better else "worse"

    def line(self) -> str:
        fmt = "{:.1f}" if self.metric.startswith("latency") else "{:.3f}"
        return (f"{self.verdict:>6}: {self.set} [{self.group}] {self.metric} "
                f"{fmt.format(self.old)} -> {fmt.format(self.new)}")


def compare(results: dict[str, Any], baseline: dict[str, Any]) -> list[Change]:
    """Key metrics present in both runs, for every set and group they share."""
    out: list[Change] = []
    for name, data in results.get("sets", {}).items():
        base = baseline.get("sets", {}).get(name)
        if not base:
            continue
        for group, metrics in data.get("groups", {}).items():
            old_m = base.get("groups", {}).get(group, {})
            for metric in KEY_METRICS:
                old, new = old_m.get(metric), metrics.get(metric)
                if isinstance(old, int | float) and isinstance(new, int | float):
                    out.append(Change(name, group, metric, float(old), float(new)))
    return out


# ------------------------------------------------------------------------------- report files


def _fmt(v: Any, metric: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, int) or metric == "n":
        return str(v)
    return f"{v:.1f}" if metric.startswith("latency") else f"{v:.3f}"


def _table(groups: dict[str, dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    cols = [c for c in columns if any(c in m for m in groups.values())]
    lines = ["| group | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for g, m in groups.items():
        lines.append(f"| {g} | " + " | ".join(_fmt(m.get(c), c) for c in cols) + " |")
    return lines


def _is_failure(row: dict[str, Any]) -> bool:
    if row.get("error"):
        return True
    if not row.get("answerable"):
        return row.get("abstained") is False
    if row.get("retrieval", {}).get("hit@5", 1.0) < 1.0:
        return True
    if row.get("abstained") is not None:
        return bool(row["abstained"]) or not row.get("answer_in_citations")
    return False


def _failure_lines(rows: list[dict[str, Any]]) -> list[str]:
    fails = [r for r in rows if _is_failure(r)]
    lines = [f"{len(fails)} of {len(rows)} questions failed"
             + (f" (first {MAX_FAILURES_LISTED} listed)" if len(fails) > MAX_FAILURES_LISTED else "") + ":", ""]
    for r in fails[:MAX_FAILURES_LISTED]:
        if r.get("answerable"):
            expected = f"gold {', '.join(r['gold'])}; answers {' / '.join(r.get('answers', []))}"
        else:
            expected = "abstain (unanswerable)"
        got = f"top-5 {', '.join(r.get('ranked', [])[:5]) or '(none)'}"
        if r.get("abstained") is not None:
            answer = (r.get("answer") or "").replace("\n", " ")
            got += f"; {'abstained' if r['abstained'] else 'answered'}: {answer[:120]!r}"
            got += f"; cited {', '.join(r.get('cited', [])) or '(none)'}"
        if r.get("error"):
            got += f"; error: {r['error']}"
        lines.append(f"- `{r['id']}` ({r.get('lang', '')}): {r['question']}")
        lines.append(f"  - expected: {expected}")
        lines.append(f"  - got: {got}")
    return lines


def render_markdown(result: EvalResult) -> str:
    res = result.results
    gate = res.get("gate", {})
    lines = ["# Evaluation report", "",
             f"Run {res.get('created')} with model `{res['settings']['embed_model']}`, "
             f"{res.get('seconds', 0)} s.", "",
             f"**Gate: {'PASSED' if result.passed else 'FAILED'}** "
             f"(thresholds: `{gate.get('thresholds')}`)", ""]
    lines += [f"- FAIL {f}" for f in result.gate_failures]
    lines += [f"- {n}" if n.startswith("TARGET") else f"- not checked: {n}" for n in gate.get("not_checked", [])]
    for name, why in res.get("skipped", {}).items():
        lines.append(f"- skipped set `{name}`: {why}")
    lines.append("")
    for name, data in res.get("sets", {}).items():
        lines += [f"## {name}", ""]
        if data.get("kind") == "gold":
            c = data["counts"]
            lines.append(f"{c['total']} questions: " + ", ".join(f"{k} {c[k]}" for k in c if k != "total")
                         + f". Index: `{data.get('index_dir')}`.")
            for p in data.get("validation_problems", []):
                lines.append(f"- INVALID: {p}")
            lines += ["", *_table(data["groups"], TABLE_METRICS), ""]
        else:
            lines.append(f"{data['groups']['overall']['n']} of {data['n_queries_total']} queries"
                         + (" (fixed-seed sample)" if data.get("sampled") else "")
                         + f"; corpus sha256 {data['corpus_sha256']}.")
            lines += ["", *_table(data["groups"], EXTERNAL_TABLE), ""]
        lines += ["### Failures", "", *_failure_lines(data.get("rows", data.get("failures", []))), ""]
    lines += ["## Compared with the baseline", ""]
    if res.get("baseline") is None:
        lines.append("No baseline run to compare with.")
    else:
        moved = [c for c in result.changes if c.verdict != "same"]
        lines.append(f"Baseline: `{res['baseline']}`. {len(moved)} of {len(result.changes)} metrics moved.")
        lines += ["", *[f"- {c.line().strip()}" for c in moved]]
        if (Path(result.report_dir or ".") / "comparison.png").is_file():
            lines += ["", "![this run vs baseline](comparison.png)"]
    return "\n".join(lines) + "\n"


def _plot_points(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(label, set, group, metric) for the bars: the headline metrics of each set."""
    points = []
    for name, data in results.get("sets", {}).items():
        if data.get("kind") == "gold":
            wanted = [(g, "recall@5") for g in ("zh-Hant", "zh-Hans", "en", "followup")]
            wanted += [("overall", m) for m in ("mrr@10", "answer_in_citations", "abstention_recall")]
        else:
            wanted = [("overall", "recall@1"), ("overall", "recall@5")]
        for g, m in wanted:
            if data["groups"].get(g, {}).get(m) is not None:
                label = f"{name}\n{m}" if g == "overall" else f"{name} {g}\n{m}"
                points.append((label, name, g, m))
    return points


def write_plot(results: dict[str, Any], baseline: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _plot_points(results)
    now = [results["sets"][s]["groups"][g][m] for _, s, g, m in points]
    base = [((baseline or {}).get("sets", {}).get(s, {}).get("groups", {}).get(g, {}).get(m))
            for _, s, g, m in points]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(points) + 2), 4.5))
    xs = range(len(points))
    width = 0.4
    ax.bar([x - width / 2 for x in xs], [b or 0.0 for b in base], width,
           label="baseline" if baseline else "baseline (none)", color="#bbbbbb")
    ax.bar([x + width / 2 for x in xs], now, width, label="this run", color="#3b75af")
    ax.set_xticks(list(xs), [p[0] for p in points], rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (overall)")
    ax.set_title("rag eval: this run vs baseline")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _for_json(results: dict[str, Any]) -> dict[str, Any]:
    """External sets keep only their failing rows; the gold set keeps every row."""
    out = dict(results)
    out["sets"] = {}
    for name, data in results.get("sets", {}).items():
        data = dict(data)
        if data.get("kind") != "gold" and "rows" in data:
            data["failures"] = [r for r in data.pop("rows") if _is_failure(r)][:200]
        out["sets"][name] = data
    out["changes"] = []
    return out


def write_report(result: EvalResult, baseline: dict[str, Any] | None) -> None:
    folder = result.report_dir or Path("reports/eval")
    folder.mkdir(parents=True, exist_ok=True)
    data = _for_json(result.results)
    data["changes"] = [c.__dict__ | {"verdict": c.verdict} for c in result.changes]
    (folder / "results.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    write_plot(result.results, baseline, folder / "comparison.png")
    (folder / "report.md").write_text(render_markdown(result), encoding="utf-8")


def summary_lines(result: EvalResult) -> list[str]:
    """What ``rag eval`` prints: headline metrics per set and group, changes, gate verdict."""
    res = result.results
    lines = []
    for name, data in res.get("sets", {}).items():
        for g, m in data["groups"].items():
            keys = (("recall@1", "recall@5", "mrr@10", "answer_in_citations", "abstention_recall",
                     "false_abstention_rate", "latency_p95_ms") if data.get("kind") == "gold"
                    else ("recall@1", "recall@5", "mrr@10"))
            cells = "  ".join(f"{k}={_fmt(m.get(k), k)}" for k in keys if k in m)
            lines.append(f"{name:<16} {g:<9} n={m['n']:<5} {cells}")
    for name, why in res.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    moved = [c for c in result.changes if c.verdict != "same"]
    if res.get("baseline"):
        lines.append(f"vs baseline {res['baseline']}: "
                     f"{sum(c.verdict == 'better' for c in moved)} better, "
                     f"{sum(c.verdict == 'worse' for c in moved)} worse")
        lines += [c.line() for c in moved]
    lines += [n for n in res.get("gate", {}).get("not_checked", []) if n.startswith("TARGET")]
    lines += [f"FAIL {f}" for f in result.gate_failures]
    lines.append(f"gate {'passed' if result.passed else 'FAILED'}; report in {result.report_dir}")
    return lines
