"""Thresholds, baseline comparison and the report folder (results.json, report.md, PNG)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.evaluation.answers import for_json as answers_for_json
from rag.evaluation.results import EvalResult
from rag.evaluation.results import format_metric as _fmt

TABLE_METRICS = ("n", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_in_citations",
                 "answer_in_text", "answer_in_text_or_value", "answer_by_meaning", "citation_precision", "abstention_precision", "abstention_recall",
                 "false_abstention_rate", "latency_p50_ms", "latency_p95_ms", "judge_p50_ms", "judge_p95_ms",
                 "generated_share", "english_answers_in_english", "removed_sentences", "repaired_sentences",
                 "answer_in_own_words", "generate_p50_ms", "generate_p95_ms", "first_token_p50_ms",
                 "first_token_p95_ms", "first_shown_p50_ms", "first_shown_p95_ms", "generated_answer_p50_ms",
                 "generated_answer_p95_ms")
EXTERNAL_TABLE = ("n", "recall@1", "recall@5", "recall@10", "recall@20", "mrr@10", "ndcg@10", "latency_p50_ms")
# --answers: the answers block of an external set (rag/evaluation/answers.py); 95% intervals beside
ANSWER_TABLE = ("n", "answer_in_text", "answer_in_text_or_value", "answer_by_meaning", "answer_in_citations", "exact_match", "f1",
                "best_sentence_f1", "best_sentence_containment", "false_abstention_rate", "n_near_miss",
                "near_miss_abstention_recall", "near_miss_answer_elsewhere", "answer_chars_p50", "latency_p50_ms")
MAX_FAILURES_LISTED = 40
MAX_MOVES_LISTED = 30  # per set and direction in report.md


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


# ------------------------------------------------------------------------------- report files


def _table(groups: dict[str, dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    cols = [c for c in columns if any(c in m for m in groups.values())]
    lines = ["| group | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for g, m in groups.items():
        lines.append(f"| {g} | " + " | ".join(_fmt(m.get(c), c) for c in cols) + " |")
    return lines


def _with_interval(m: dict[str, Any], metric: str) -> str:
    shown = _fmt(m.get(metric), metric)
    ci = (m.get("intervals") or {}).get(metric)
    return f"{shown} ({ci[0]:.2f}–{ci[1]:.2f})" if ci and m.get(metric) is not None else shown


def answer_table(groups: dict[str, dict[str, Any]]) -> list[str]:
    """The answers block's metrics per group, rates and means with their 95% intervals."""
    cols = [c for c in ANSWER_TABLE if any(c in m for m in groups.values())]
    lines = ["| group | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for g, m in groups.items():
        lines.append(f"| {g} | " + " | ".join(_with_interval(m, c) for c in cols) + " |")
    return lines


def _answers_section(data: dict[str, Any]) -> list[str]:
    block = data.get("answers")
    if not block:
        return []
    lines = ["### Answers (measured, not gated)", "",
             f"A fixed-seed sample of {block['n_sample']} questions asked through `ask` against the set's index, "
             "then as near-miss unanswerables against an index without their gold paragraphs "
             f"({len(block.get('near_miss_indexes', []))} index(es)). 95% intervals: Wilson (rates), bootstrap "
             "(F1). EM and F1 are CMRC 2018's, of the whole answer text: an extractive answer quotes whole "
             "sentences, so they are low by construction; `best_sentence_*` score its best sentence.", "",
             *answer_table(block["groups"]), ""]
    misses = block.get("misses", block.get("rows", []))
    misses = [r for r in misses if not r.get("answer_in_text_or_value")]
    if misses:
        lines += [f"Answers without a gold answer in their text ({len(misses)}, first 10):", ""]
        for r in misses[:10]:
            answer = (r.get("answer") or "").replace("\n", " ")
            lines.append(f"- `{r['id']}` {r['question']} — gold {' / '.join(r.get('answers', []))}; "
                         f"{'abstained' if r.get('abstained') else 'answered'}: {answer[:120]!r}")
        lines.append("")
    return lines


def _answer_changes_section(result: EvalResult) -> list[str]:
    moved = [c for c in result.answer_changes if c.worse or c.better]
    if not result.answer_changes:
        return []
    lines = ["### Answers against the baseline (reported, not gated)", ""]
    if moved:
        lines += ["| set | group | metric | baseline | this run | worse | better | n | p (drop) | verdict |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for c in sorted(moved, key=lambda c: (c.set, c.group, c.metric)):
            lines.append(f"| {c.set} | {c.group} | {c.metric} | {c.before:.3f} | {c.after:.3f} | {c.worse} "
                         f"| {c.better} | {c.n} | {c.p:.3g} | {c.verdict} |")
        lines.append("")
    lines += [f"{len(result.answer_changes) - len(moved)} of {len(result.answer_changes)} compared answer "
              "metrics are identical question by question.", ""]
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


def _changes_section(result: EvalResult) -> list[str]:
    """What changed against the baseline: gated metrics, latency, then the questions that moved."""
    from rag.evaluation.regression import ALPHA, question_moves

    res, base = result.results, result.baseline
    lines = ["## What changed against the baseline", ""]
    if base is None:
        return lines + ["No baseline run to compare with.", ""]
    lines.append(f"Baseline: `{res['baseline']}` (run {base.get('created', '?')}). Each question is paired "
                 f"with itself in the baseline; a metric fails when it dropped with a one-sided paired "
                 f"sign-flip p < {ALPHA} (`rag/evaluation/regression.py`).")
    lines.append("")
    moved = [c for c in result.changes if c.worse or c.better]
    same = len(result.changes) - len(moved)
    if moved:
        lines += ["| set | group | metric | baseline | this run | worse | better | n | p (drop) | verdict |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for c in sorted(moved, key=lambda c: (not c.regressed, c.set, c.group, c.metric)):
            verdict = f"**{c.verdict}**" if c.regressed else c.verdict
            lines.append(f"| {c.set} | {c.group} | {c.metric} | {c.before:.3f} | {c.after:.3f} | {c.worse} "
                         f"| {c.better} | {c.n} | {c.p:.3g} | {verdict} |")
        lines.append("")
    lines += [f"{same} of {len(result.changes)} compared metrics are identical question by question.", ""]
    lat = []
    for name, data in res.get("sets", {}).items():
        old = base.get("sets", {}).get(name, {}).get("groups", {}).get("overall", {}).get("latency_p50_ms")
        new = data.get("groups", {}).get("overall", {}).get("latency_p50_ms")
        if isinstance(old, int | float) and isinstance(new, int | float):
            lat.append(f"{name} {old:.1f} -> {new:.1f} ms")
    if lat:
        lines += ["Latency p50 (reported, not gated: timings on a shared machine are noise): "
                  + "; ".join(lat) + ".", ""]
    moves = question_moves(res, base)
    for title, chosen in (("Questions that got worse", [m for m in moves if m.worse]),
                          ("Questions that got better", [m for m in moves if not m.worse])):
        lines += [f"### {title} ({len(chosen)})", ""]
        by_set: dict[str, list[Any]] = {}
        for m in chosen:
            by_set.setdefault(m.set, []).append(m)
        for name, ms in by_set.items():
            more = f" (first {MAX_MOVES_LISTED} of {len(ms)})" if len(ms) > MAX_MOVES_LISTED else ""
            lines.append(f"- **{name}**{more}:")
            lines += [f"  - {m.line()}" for m in ms[:MAX_MOVES_LISTED]]
        lines.append("" if chosen else "None.\n")
    return lines


def render_markdown(result: EvalResult) -> str:
    res = result.results
    gate = res.get("gate", {})
    seconds = ", ".join(f"{n} {d['seconds']} s" for n, d in res.get("sets", {}).items() if "seconds" in d)
    lines = ["# Evaluation report", "",
             f"Run {res.get('created')} with model `{res['settings']['embed_model']}`, "
             f"{res.get('seconds', 0)} s" + (f" ({seconds})" if seconds else "") + ".", "",
             f"**Gate: {'PASSED' if result.passed else 'FAILED'}** "
             f"(thresholds: `{gate.get('thresholds')}`; baseline: `{res.get('baseline')}`)", ""]
    lines += [f"- FAIL {f}" for f in result.gate_failures]
    lines.append("")
    lines += _changes_section(result)
    lines += _answer_changes_section(result)
    lines += ["## Gate notes", ""]
    notes = gate.get("not_checked", [])
    lines += [f"- {n}" if n.startswith(("TARGET", "baseline")) else f"- not checked: {n}" for n in notes]
    for name, why in res.get("skipped", {}).items():
        lines.append(f"- skipped set `{name}`: {why}")
    if not notes and not res.get("skipped"):
        lines.append("None.")
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
            lines += _answers_section(data)
        lines += ["### Failures", "", *_failure_lines(data.get("rows", data.get("failures", []))), ""]
    if (Path(result.report_dir or ".") / "comparison.png").is_file():
        lines += ["![this run vs baseline, per set and language](comparison.png)", ""]
    return "\n".join(lines) + "\n"


PLOT_METRICS = ("recall@1", "recall@5", "mrr@10", "answer_in_text")


def _plot_groups(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, set, group): each set per language (gold: each language and the follow-ups)."""
    out = []
    for name, data in results.get("sets", {}).items():
        groups = [g for g in data.get("groups", {}) if g != "overall"]
        if data.get("kind") != "gold" and len(groups) <= 1:
            groups = ["overall"]
        out += [(f"{name}\n{g}" if g != "overall" else name, name, g) for g in groups]
    return out


def write_plot(results: dict[str, Any], baseline: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _plot_groups(results)
    fig, axes = plt.subplots(2, 2, figsize=(max(8.0, 0.9 * len(groups) + 3), 7.5), sharey=True)
    width = 0.4

    def value(run: dict[str, Any] | None, s: str, g: str, m: str) -> float | None:
        v = (run or {}).get("sets", {}).get(s, {}).get("groups", {}).get(g, {}).get(m)
        return float(v) if isinstance(v, int | float) else None

    for ax, metric in zip(axes.flat, PLOT_METRICS, strict=True):
        shown = [(label, s, g) for label, s, g in groups if value(results, s, g, metric) is not None]
        xs = list(range(len(shown)))
        now = [value(results, s, g, metric) or 0.0 for _, s, g in shown]
        old = [value(baseline, s, g, metric) for _, s, g in shown]
        ax.bar([x - width / 2 for x in xs], [o or 0.0 for o in old], width, color="#bbbbbb",
               label="baseline" if baseline else "baseline (none)")
        ax.bar([x + width / 2 for x in xs], now, width, color="#3b75af", label="this run")
        for x, o, n in zip(xs, old, now, strict=True):
            if o is not None and abs(n - o) >= 0.0005:
                ax.annotate(f"{n - o:+.3f}", (x + width / 2, n), ha="center", va="bottom", fontsize=6,
                            color="#b22222" if n < o else "#2e7d32")
        ax.set_xticks(xs, [label for label, _, _ in shown], rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.08)
        ax.set_title(metric, fontsize=9)
    axes.flat[0].legend(loc="lower left", fontsize=7)
    fig.suptitle("rag eval: this run vs baseline, per set and language", fontsize=10)
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
        if data.get("answers"):
            data["answers"] = answers_for_json(data["answers"])
        out["sets"][name] = data
    return out


def _dump_lines(data: dict[str, Any]) -> str:
    """JSON with each per-question outcome on one line (readable diffs, a small file)."""
    sets = {name: dict(d) for name, d in data.get("sets", {}).items()}
    bodies = {}
    for i, d in enumerate(sets.values()):
        if "outcomes" in d:
            bodies[f"@@outcomes-{i}@@"] = "[\n" + ",\n".join(
                "    " + json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in d["outcomes"]) + "\n   ]"
            d["outcomes"] = f"@@outcomes-{i}@@"
        if isinstance(d.get("answers"), dict) and "outcomes" in d["answers"]:
            d["answers"] = dict(d["answers"])
            bodies[f"@@answers-{i}@@"] = "[\n" + ",\n".join(
                "     " + json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                for r in d["answers"]["outcomes"]) + "\n    ]"
            d["answers"]["outcomes"] = f"@@answers-{i}@@"
    text = json.dumps({**data, "sets": sets}, ensure_ascii=False, indent=1)
    for key, body in bodies.items():
        text = text.replace(json.dumps(key), body, 1)
    return text + "\n"


def write_report(result: EvalResult, baseline: dict[str, Any] | None) -> None:
    folder = result.report_dir or Path("reports/eval")
    folder.mkdir(parents=True, exist_ok=True)
    data = _for_json(result.results)
    data["changes"] = [c.__dict__ | {"verdict": c.verdict} for c in result.changes]
    if result.answer_changes:  # --answers against the baseline: reported, not gated
        data["answer_changes"] = [c.__dict__ | {"verdict": c.verdict} for c in result.answer_changes]
    (folder / "results.json").write_text(_dump_lines(data), encoding="utf-8")
    write_plot(result.results, baseline, folder / "comparison.png")
    (folder / "report.md").write_text(render_markdown(result), encoding="utf-8")


def write_baseline(result: EvalResult, path: Path) -> None:
    """This run as the new baseline: metrics and per-question outcomes, no answers or rows."""
    res = result.results
    keep = ("kind", "counts", "n_queries_total", "sampled", "corpus_sha256", "groups", "outcomes")
    data = {"created": res.get("created"), "mode": res.get("mode", "off"), "settings": res.get("settings"),
            "max_queries": res.get("max_queries"),
            "seconds": res.get("seconds"),
            "sets": {name: {k: d[k] for k in keep if k in d} for name, d in res.get("sets", {}).items()}}
    for name, d in res.get("sets", {}).items():  # --answers: metrics and per-question outcomes
        if d.get("answers"):
            data["sets"][name]["answers"] = {k: d["answers"][k] for k in ("n_sample", "groups", "outcomes")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(_dump_lines(data), encoding="utf-8")
    tmp.replace(path)
