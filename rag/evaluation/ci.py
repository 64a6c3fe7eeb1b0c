"""What CI reads from a run of ``rag eval``: a JUnit XML file and a Markdown job summary.

JUnit (written with the standard library's ``xml.etree``): one test suite per set, one test case
per gated metric of the regression gate (per set and group) and one per rule of the thresholds
file; a set that was not run is a skipped case, a rule not checked or not enforced a skipped case,
and whatever else failed the gate (a missing baseline or set under CI) the case ``gate checks``.
A failure's message names what failed and the questions that got worse, as the regression module
paired them with the baseline. The summary is the same verdict for a person: a headline, a table
of sets and key metrics with their change, failures and worsened questions (capped).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rag.evaluation.regression import (
    PairedChange,
    QuestionMove,
    question_moves,
    regression_failures,
)
from rag.evaluation.results import EvalResult, RuleCheck, format_metric

SUITES = "rag eval"
GATE_SUITE = "gate"
GATE_CASE = "gate checks"  # what failed the gate besides metrics and rules (baseline, sets under CI)
MAX_IDS_IN_MESSAGE = 20  # worsened question ids in a failure's one-line message
MAX_QUESTIONS_LISTED = 50  # worsened questions in a failure's text (JUnit) ...
SUMMARY_QUESTIONS = 20  # ... and in the job summary
SUMMARY_FAILURES = 20
SUMMARY_METRICS = ("recall@1", "recall@5", "mrr@10", "answer_in_citations", "answer_in_text")
SUMMARY_HEADERS = {"recall@1": "R@1", "recall@5": "R@5", "mrr@10": "MRR@10",
                   "answer_in_citations": "answer in citations", "answer_in_text": "answer in text"}
ANSWERS_CASE = "answers (reported, not gated)"  # --answers: a passing case carrying the metrics
ANSWER_METRICS = ("answer_in_text", "answer_in_text_or_value", "answer_by_meaning", "answer_in_citations", "exact_match", "f1",
                  "best_sentence_f1", "best_sentence_containment", "false_abstention_rate",
                  "near_miss_abstention_recall")
ANSWER_HEADERS = {"answer_in_text": "in text", "answer_in_text_or_value": "in text or by value",
                  "answer_by_meaning": "in text, by value or by meaning",
                  "answer_in_citations": "in citations", "exact_match": "EM", "f1": "F1",
                  "best_sentence_f1": "best-sentence F1", "best_sentence_containment": "best sentence holds it",
                  "false_abstention_rate": "false abstention", "near_miss_abstention_recall": "near-miss abstention"}
# a threshold rule's metric (results.json's group metrics) -> the gated per-question metric
_GATED_AS = {"false_abstention_rate": "false_abstention"}


def _capped(items: Sequence[str], limit: int, sep: str = ", ") -> str:
    more = f"{sep}… and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


class _Cases:
    """The test cases of one run, grouped into suites (sets first, in run order)."""

    def __init__(self) -> None:
        self.suites: dict[str, list[ET.Element]] = {}

    def add(self, suite: str, name: str, *, failure: tuple[str, str, str] | None = None,
            skipped: str | None = None, error: tuple[str, str] | None = None,
            properties: dict[str, str] | None = None, output: str | None = None) -> None:
        case = ET.Element("testcase", {"classname": f"{SUITES}.{suite}", "name": name, "time": "0"})
        if properties:
            props = ET.SubElement(case, "properties")
            for key, value in properties.items():
                ET.SubElement(props, "property", {"name": key, "value": value})
        if failure is not None:
            message, kind, text = failure
            ET.SubElement(case, "failure", {"message": message, "type": kind}).text = text
        elif error is not None:
            ET.SubElement(case, "error", {"message": error[0], "type": "error"}).text = error[1]
        elif skipped is not None:
            ET.SubElement(case, "skipped", {"message": skipped})
        if output:
            ET.SubElement(case, "system-out").text = output
        self.suites.setdefault(suite, []).append(case)

    def xml(self, *, times: dict[str, float], timestamp: str | None) -> bytes:
        root = ET.Element("testsuites", {"name": SUITES})
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for name, cases in self.suites.items():
            counts = {"tests": len(cases),
                      "failures": sum(c.find("failure") is not None for c in cases),
                      "errors": sum(c.find("error") is not None for c in cases),
                      "skipped": sum(c.find("skipped") is not None for c in cases)}
            attrs = {"name": name, **{k: str(v) for k, v in counts.items()}, "time": f"{times.get(name, 0.0):g}"}
            if timestamp:
                attrs["timestamp"] = timestamp
            suite = ET.SubElement(root, "testsuite", attrs)
            suite.extend(cases)
            totals = {k: totals[k] + counts[k] for k in totals}
        root.attrib.update({k: str(v) for k, v in totals.items()})
        root.set("time", f"{sum(times.values()):g}")
        ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _moves_by_id(result: EvalResult) -> dict[tuple[str, str], QuestionMove]:
    if result.baseline is None:
        return {}
    return {(m.set, m.id): m for m in question_moves(result.results, result.baseline)}


def _worse_text(set_name: str, ids: Sequence[str], moves: dict[tuple[str, str], QuestionMove]) -> list[str]:
    lines = [f"questions that got worse ({len(ids)}):"]
    for qid in ids[:MAX_QUESTIONS_LISTED]:
        move = moves.get((set_name, qid))
        lines.append(f"- {move.line() if move else qid}")
    if len(ids) > MAX_QUESTIONS_LISTED:
        lines.append(f"… and {len(ids) - MAX_QUESTIONS_LISTED} more (report.md lists them)")
    return lines


def _regression_case(cases: _Cases, c: PairedChange, moves: dict[tuple[str, str], QuestionMove]) -> None:
    name = f"[{c.group}] {c.metric} vs baseline"
    if not c.regressed:
        cases.add(c.set, name)
        return
    message = f"regression: {c.line()}; worse: {_capped(list(c.worse_ids), MAX_IDS_IN_MESSAGE)}"
    text = "\n".join([c.line(), *_worse_text(c.set, c.worse_ids, moves)])
    cases.add(c.set, name, failure=(message, "regression", text))


def _rule_worse_ids(check: RuleCheck, changes: Iterable[PairedChange]) -> list[str]:
    """The questions of a rule's set, groups and metric that got worse against the baseline."""
    rule = check.rule
    metric = _GATED_AS.get(rule["metric"], rule["metric"])
    groups = {"zh-Hant", "zh-Hans", "en"} if rule["group"] == "each_lang" else {rule["group"]}
    ids: list[str] = []
    for c in changes:
        if c.set == rule["set"] and c.group in groups and c.metric == metric:
            ids += [i for i in c.worse_ids if i not in ids]
    return ids


def _rule_case(cases: _Cases, check: RuleCheck, result: EvalResult,
               moves: dict[tuple[str, str], QuestionMove]) -> None:
    suite, name = check.rule["set"], f"rule {check.name}"
    if check.status == "failed":
        worse = _rule_worse_ids(check, result.changes)
        message = "; ".join(check.failures)
        if worse:
            message += f"; worse than the baseline: {_capped(worse, MAX_IDS_IN_MESSAGE)}"
        text = "\n".join([*check.failures, *(_worse_text(suite, worse, moves) if worse else [])])
        cases.add(suite, name, failure=(message, "threshold", text))
    elif check.status == "passed":
        cases.add(suite, name)
    else:  # not met (not enforced), not checked, a rule of another mode
        cases.add(suite, name, skipped="; ".join(check.notes) or check.status)


def _answers_case(cases: _Cases, name: str, block: dict[str, Any], changes: Sequence[PairedChange]) -> None:
    """The ``--answers`` block of a set as a passing case that carries its metrics (per group, as
    properties ``<group>.<metric>``) and the paired changes against the baseline: reported, not gated."""
    props: dict[str, str] = {}
    lines = []
    for group, metrics in block.get("groups", {}).items():
        cells = []
        for m in ANSWER_METRICS:
            if metrics.get(m) is not None:
                props[f"{group}.{m}"] = f"{metrics[m]:.4f}"
                cells.append(f"{m}={format_metric(metrics[m], m)}")
        lines.append(f"[{group}] n={metrics.get('n')} near misses={metrics.get('n_near_miss')} " + " ".join(cells))
    moved = [c for c in changes if c.set == name and (c.worse or c.better)]
    lines += [f"vs baseline ({c.verdict}, not gated): {c.line()}" for c in moved]
    cases.add(name, ANSWERS_CASE, properties=props, output="\n".join(lines))


def junit_xml(result: EvalResult) -> bytes:
    """The run as JUnit XML: one suite per set, cases for gated metrics, rules and skipped sets."""
    res = result.results
    cases = _Cases()
    moves = _moves_by_id(result)
    compared = {c.set for c in result.changes}
    for name, data in res.get("sets", {}).items():
        if data.get("kind") == "gold":
            problems = list(data.get("validation_problems", []))
            if problems:
                cases.add(name, "gold set valid", failure=(f"gold set invalid: {_capped(problems, 3, '; ')}",
                                                           "gold set", "\n".join(problems)))
            else:
                cases.add(name, "gold set valid")
        if name not in compared:
            why = "no baseline to compare with" if result.baseline is None else "not in the baseline"
            cases.add(name, "vs baseline", skipped=why)
    for c in result.changes:
        _regression_case(cases, c, moves)
    for name, data in res.get("sets", {}).items():
        if data.get("answers"):
            _answers_case(cases, name, data["answers"], result.answer_changes)
    for name, why in res.get("skipped", {}).items():
        cases.add(name, "run the set", skipped=f"set not run: {why}")
    for check in result.rule_checks:
        _rule_case(cases, check, result, moves)
    covered = set(result.rule_failures) | set(regression_failures(result.changes))
    rest = [f for f in result.gate_failures if f not in covered]
    if rest:
        cases.add(GATE_SUITE, GATE_CASE, failure=("; ".join(rest), "gate", "\n".join(rest)))
    else:
        cases.add(GATE_SUITE, GATE_CASE)
    times = {n: float(d["seconds"]) for n, d in res.get("sets", {}).items() if "seconds" in d}
    return cases.xml(times=times, timestamp=res.get("created"))


def junit_error(message: str) -> bytes:
    """JUnit XML of a run that could not complete: one case in error, saying why."""
    cases = _Cases()
    cases.add(GATE_SUITE, "rag eval ran", error=(message, message))
    return cases.xml(times={}, timestamp=None)


def write_junit(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# ------------------------------------------------------------------------------- job summary


def _cell(value: Any, metric: str, change: PairedChange | None) -> str:
    shown = format_metric(value, metric)
    if change is None:
        return shown
    delta = change.after - change.before
    if change.regressed:
        return f"**{shown} ({delta:+.3f}) ❌**"
    if change.worse == change.better == 0:
        return f"{shown} (=)"
    return f"{shown} ({delta:+.3f})"


def _metric_table(result: EvalResult) -> list[str]:
    by_key = {(c.set, c.group, c.metric): c for c in result.changes}
    sets = result.results.get("sets", {})
    cols = [m for m in SUMMARY_METRICS if any(m in g for d in sets.values() for g in d.get("groups", {}).values())]
    lines = ["| set | group | n | " + " | ".join(SUMMARY_HEADERS[m] for m in cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    for name, data in sets.items():
        groups = data.get("groups", {})
        langs = [g for g in groups if g not in ("overall", "followup")]
        for group, metrics in groups.items():
            if len(langs) == 1 and group == langs[0] and data.get("kind") != "gold":
                continue  # a one-language set: its language is its overall row
            cells = [_cell(metrics.get(m), m, by_key.get((name, group, m))) if m in metrics else ""
                     for m in cols]
            lines.append(f"| {name} | {group} | {metrics.get('n', '')} | " + " | ".join(cells) + " |")
    return lines


_PAIRED_AS = {"false_abstention_rate": "false_abstention", "near_miss_abstention_recall": "near_miss_abstention"}


def _answer_table(result: EvalResult) -> list[str]:
    """The ``--answers`` blocks: each set and group, with the change against the baseline."""
    by_key = {(c.set, c.group, c.metric): c for c in result.answer_changes}
    sets = {n: d["answers"] for n, d in result.results.get("sets", {}).items() if d.get("answers")}
    if not sets:
        return []
    shown_metrics = [m for m in ANSWER_METRICS  # by meaning: only where a local model checked it
                     if any(m in g for b in sets.values() for g in b.get("groups", {}).values())]
    lines = ["### Answers (measured, not gated)", "",
             "| set | group | n | " + " | ".join(ANSWER_HEADERS[m] for m in shown_metrics) + " |",
             "|---|---|---:|" + "---:|" * len(shown_metrics)]
    for name, block in sets.items():
        for group, metrics in block.get("groups", {}).items():
            cells = []
            for m in shown_metrics:
                change = by_key.get((name, group, _PAIRED_AS.get(m, m)))
                shown = format_metric(metrics.get(m), m)
                if change is not None and (change.worse or change.better):
                    shown += f" ({change.after - change.before:+.3f})"
                cells.append(shown)
            lines.append(f"| {name} | {group} | {metrics.get('n', '')} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def render_summary(result: EvalResult) -> str:
    """The run as a Markdown job summary (GitHub's ``$GITHUB_STEP_SUMMARY``, a merge request note)."""
    res = result.results
    failures = result.gate_failures
    head = ("## ✅ rag eval: gate passed" if result.passed
            else f"## ❌ rag eval: gate FAILED ({len(failures)} failure{'s' * (len(failures) != 1)})")
    sets = res.get("sets", {})
    base = f"baseline `{res['baseline']}`" if res.get("baseline") else "no baseline compared"
    lines = [head, "",
             f"Mode `{res.get('mode', 'off')}`, {len(sets)} set{'s' * (len(sets) != 1)} in "
             f"{res.get('seconds', 0)} s; {base}. Cells: this run (change against the baseline over the "
             "same questions; ❌ a significant drop).", ""]
    if sets:
        lines += [*_metric_table(result), ""]
    lines += _answer_table(result)
    if failures:
        lines += [f"### Failures ({len(failures)})", ""]
        lines += [f"- {f}" for f in failures[:SUMMARY_FAILURES]]
        if len(failures) > SUMMARY_FAILURES:
            lines.append(f"- … and {len(failures) - SUMMARY_FAILURES} more (report.md)")
        lines.append("")
    worse = [m for m in question_moves(res, result.baseline) if m.worse] if result.baseline is not None else []
    if worse:
        lines += [f"### Questions that got worse ({len(worse)})", ""]
        lines += [f"- **{m.set}** {m.line()}" for m in worse[:SUMMARY_QUESTIONS]]
        if len(worse) > SUMMARY_QUESTIONS:
            lines.append(f"- … and {len(worse) - SUMMARY_QUESTIONS} more (report.md lists them)")
        lines.append("")
    notes = [n for n in res.get("gate", {}).get("not_checked", []) if n.startswith("TARGET")]
    notes += [f"skipped set `{name}`: {why}" for name, why in res.get("skipped", {}).items()]
    if notes:
        lines += ["### Not checked, not met", "", *[f"- {n}" for n in notes], ""]
    if result.report_dir is not None:
        lines += [f"Full report: `{result.report_dir}/report.md`.", ""]
    return "\n".join(lines)


def summary_error(message: str) -> str:
    return f"## ❌ rag eval could not run\n\n{message}\n"


def write_summary(path: Path, text: str, *, append: bool) -> None:
    """Write (or append to, as GitHub's step summary file wants) ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
