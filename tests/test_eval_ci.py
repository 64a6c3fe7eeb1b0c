"""What CI reads from `rag eval`: JUnit XML (read back by junitparser), the Markdown job summary
(also through $GITHUB_STEP_SUMMARY) and the exit codes; on the fake service and sets of
tests/test_eval_runner.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import cli
from rag.config import get_settings
from rag.evaluation import ci, runner
from rag.evaluation.runner import run_eval
from tests import test_eval_runner

world = test_eval_runner.world  # the fixture: a fake index, gold set and external set, fake services

junitparser = pytest.importorskip("junitparser", reason="junitparser is in the test extra: pip install -e '.[test]'")

DEMOTED = [f"external question {n}?" for n in range(0, 300, 10)]  # 30 of 400 drop from rank 1 to 2
DEMOTED_IDS = {f"q{n}" for n in range(0, 300, 10)}
RULES = """
[[rule]]
set = "xquad/zh-dev"
group = "overall"
metric = "recall@1"
min = 0.99

[[rule]]
set = "xquad/zh-dev"
group = "overall"
metric = "recall@5"
min = 0.9

[[rule]]
set = "gold"
group = "overall"
metric = "latency_p50_ms"
max = 0.0
enforce = false
why = "a target"

[[rule]]
set = "drcd/dev"
group = "overall"
metric = "recall@1"
min = 0.9

[[rule]]
set = "gold"
group = "overall"
metric = "recall@1"
min = 0.1
mode = "local"
"""


def _eval(world, report: str, *, demote=(), baseline: Path | None = None, strict: bool = False,
          sets=("gold", "xquad/zh-dev", "drcd/dev")):
    rules = world["tmp"] / "thresholds.toml"
    rules.write_text(RULES, encoding="utf-8")
    return run_eval([world["gold"]], index_dir=world["index"], report_dir=world["tmp"] / report, sets=list(sets),
                    baseline=baseline, thresholds=rules, settings=world["settings"], strict=strict,
                    target=world["target"](False, frozenset(demote)), external_dir=world["external"])


def _cases(path: Path) -> dict[tuple[str, str], object]:
    """(suite, case name) -> the case, as junitparser reads the file."""
    xml = junitparser.JUnitXml.fromfile(str(path))
    return {(suite.name, case.name): case for suite in xml for case in suite}


def _outcome(case) -> tuple[str, str]:
    """('passed' | 'failure' | 'skipped' | 'error', message) of a junitparser case."""
    for r in case.result:
        kind = {junitparser.Failure: "failure", junitparser.Skipped: "skipped", junitparser.Error: "error"}[type(r)]
        return kind, r.message or ""
    return "passed", ""


def test_junit_has_a_case_per_gated_metric_and_rule_and_names_the_worse_questions(world):
    _eval(world, "good")
    worse = _eval(world, "worse", demote=DEMOTED, baseline=world["tmp"] / "good/results.json")
    assert not worse.passed
    path = world["tmp"] / "junit.xml"
    ci.write_junit(path, ci.junit_xml(worse))
    cases = _cases(path)

    gated = {(c.set, f"[{c.group}] {c.metric} vs baseline") for c in worse.changes}
    assert gated <= set(cases) and len(gated) == len(worse.changes) > 20
    rules = [k for k in cases if k[1].startswith("rule ")]
    assert len(rules) == RULES.count("[[rule]]")

    kind, message = _outcome(cases[("xquad/zh-dev", "[overall] recall@1 vs baseline")])
    assert kind == "failure" and message.startswith("regression: xquad/zh-dev [overall] recall@1 1.000 -> 0.925")
    named = {part.strip() for part in message.split("worse: ", 1)[1].split(",")}
    assert {n for n in named if n.startswith("q")} <= DEMOTED_IDS
    assert len(named & DEMOTED_IDS) == ci.MAX_IDS_IN_MESSAGE and "… and 10 more" in message
    text = cases[("xquad/zh-dev", "[overall] recall@1 vs baseline")].result[0].text
    assert "`q10` external question 10? — gold x:10: rank 1 → 2" in text  # the question, not only its id
    assert _outcome(cases[("xquad/zh-dev", "[overall] recall@5 vs baseline")]) == ("passed", "")

    kind, message = _outcome(cases[("xquad/zh-dev", "rule [overall] recall@1 >= 0.99")])
    assert kind == "failure" and "xquad/zh-dev [overall] recall@1 = 0.925 < 0.99" in message and "q0" in message
    assert _outcome(cases[("xquad/zh-dev", "rule [overall] recall@5 >= 0.9")])[0] == "passed"
    kind, message = _outcome(cases[("gold", "rule [overall] latency_p50_ms <= 0.0")])
    assert kind == "skipped" and message.startswith("TARGET NOT MET (not enforced: a target)")
    assert _outcome(cases[("drcd/dev", "rule [overall] recall@1 >= 0.9")]) == (
        "skipped", "drcd/dev: not run, its rules not checked")
    assert _outcome(cases[("gold", "rule [overall] recall@1 >= 0.1 (mode local)")])[0] == "skipped"
    kind, message = _outcome(cases[("drcd/dev", "run the set")])
    assert kind == "skipped" and "not run" in message
    assert _outcome(cases[("gold", "gold set valid")]) == ("passed", "")
    assert _outcome(cases[(ci.GATE_SUITE, ci.GATE_CASE)]) == ("passed", "")

    # the counts of the file are those of its cases
    xml = junitparser.JUnitXml.fromfile(str(path))
    failed = [k for k, c in cases.items() if _outcome(c)[0] == "failure"]
    assert xml.failures == len(failed) == sum(s.failures for s in xml)
    assert xml.tests == len(cases) and xml.skipped == sum(_outcome(c)[0] == "skipped" for c in cases.values())


def test_every_gate_failure_shows_as_a_failing_case(world):
    passing = run_eval([world["gold"]], index_dir=world["index"], report_dir=world["tmp"] / "p", sets=["gold"],
                       baseline=None, thresholds=None, settings=world["settings"],
                       target=world["target"](False), external_dir=world["external"])
    assert passing.passed, passing.gate_failures
    cases = _cases(_written(world, passing, "passing.xml"))
    assert not [k for k, c in cases.items() if _outcome(c)[0] in ("failure", "error")]
    assert _outcome(cases[("gold", "vs baseline")]) == ("skipped", "no baseline to compare with")

    # under CI a missing baseline and an unrun set fail the gate: the case "gate checks" says so
    strict = _eval(world, "strict", baseline=world["tmp"] / "none.json", strict=True)
    assert not strict.passed
    kind, message = _outcome(_cases(_written(world, strict, "strict.xml"))[(ci.GATE_SUITE, ci.GATE_CASE)])
    assert kind == "failure" and "set drcd/dev not run under CI" in message and "none.json not found" in message


def _written(world, result, name: str) -> Path:
    path = world["tmp"] / name
    ci.write_junit(path, ci.junit_xml(result))
    return path


def test_the_summary_has_the_verdict_the_table_and_capped_worse_questions(world):
    _eval(world, "good")
    worse = _eval(world, "worse", demote=DEMOTED, baseline=world["tmp"] / "good/results.json")
    text = ci.render_summary(worse)
    assert text.startswith("## ❌ rag eval: gate FAILED")
    assert "| set | group | n | R@1 | R@5 | MRR@10 | answer in citations | answer in text |" in text
    assert "| xquad/zh-dev | overall | 400 | **0.925 (-0.075) ❌** | 1.000 (=) |" in text
    assert "| gold | en | 5 | 1.000 (=) |" in text
    assert "| xquad/zh-dev | zh-Hans |" not in text  # a one-language set: one row
    assert "- xquad/zh-dev [overall] recall@1 = 0.925 < 0.99" in text
    assert "### Questions that got worse (30)" in text
    listed = [line for line in text.splitlines() if line.startswith("- **xquad/zh-dev** `q")]
    assert len(listed) == ci.SUMMARY_QUESTIONS and "- … and 10 more (report.md lists them)" in text
    assert "skipped set `drcd/dev`" in text and "TARGET NOT MET" in text


@pytest.fixture
def cli_world(world, monkeypatch):
    """The CLI on the fake world: `rag eval` opens fake services and finds the fake external set."""
    monkeypatch.setattr(runner, "default_target", lambda: world["target"](False, frozenset(DEMOTED)))
    monkeypatch.setenv("RAG_EXTERNAL_DIR", str(world["external"]))
    monkeypatch.setenv("RAG_CACHE_DIR", str(world["tmp"] / "cache"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("RAG_CORPUS_DIR", str(world["tmp"] / "no-corpus"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    get_settings.cache_clear()  # the CLI reads the settings above
    _eval(world, "good", sets=("gold", "xquad/zh-dev"))  # the baseline: no question demoted
    (world["tmp"] / "rules.toml").write_text(RULES, encoding="utf-8")
    yield world
    get_settings.cache_clear()


def _cli(world, *extra: str):
    args = ["eval", str(world["gold"]), "--index", str(world["index"]), "--sets", "gold,xquad/zh-dev",
            "--baseline", str(world["tmp"] / "good/results.json"), "--thresholds", str(world["tmp"] / "rules.toml"),
            "--report", str(world["tmp"] / "cli"), *extra]
    return CliRunner().invoke(cli.main, args)


def test_the_cli_writes_junit_and_summary_and_exits_1_on_a_failed_gate(cli_world):
    junit, summary = cli_world["tmp"] / "out/junit.xml", cli_world["tmp"] / "out/summary.md"
    out = _cli(cli_world, "--junit", str(junit), "--summary", str(summary))
    assert out.exit_code == cli.EvalExit.GATE_FAILED == 1, out.output
    failing = [k for k, c in _cases(junit).items() if _outcome(c)[0] == "failure"]
    assert ("xquad/zh-dev", "[overall] recall@1 vs baseline") in failing
    assert summary.read_text(encoding="utf-8").startswith("## ❌ rag eval: gate FAILED")


def test_github_step_summary_is_appended_to_unless_summary_is_given(cli_world, monkeypatch):
    step = cli_world["tmp"] / "step_summary.md"
    step.write_text("## an earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    assert _cli(cli_world).exit_code == 1
    text = step.read_text(encoding="utf-8")
    assert text.startswith("## an earlier step\n## ❌ rag eval: gate FAILED") and "### Questions that got worse" in text
    own = cli_world["tmp"] / "own.md"
    assert _cli(cli_world, "--summary", str(own)).exit_code == 1
    assert step.read_text(encoding="utf-8") == text and own.read_text(encoding="utf-8").startswith("## ❌")


def test_exit_codes_are_distinct_and_the_ci_files_say_why_a_run_could_not_complete(cli_world, monkeypatch):
    junit, summary = cli_world["tmp"] / "err.xml", cli_world["tmp"] / "err.md"
    # 2: bad input (a thresholds file that does not exist), said in the JUnit file and the summary
    out = _cli(cli_world, "--thresholds", str(cli_world["tmp"] / "missing.toml"), "--junit", str(junit),
               "--summary", str(summary))
    assert out.exit_code == cli.EvalExit.BAD_INPUT == 2, out.output
    kind, message = _outcome(_cases(junit)[(ci.GATE_SUITE, "rag eval ran")])
    assert kind == "error" and "thresholds file not found" in message
    assert "thresholds file not found" in summary.read_text(encoding="utf-8")
    assert _cli(cli_world, "--max-queries", "0").exit_code == 2
    assert _cli(cli_world, "--no-such-option").exit_code == 2
    # 4: could not run (no index and no corpus to build one from)
    out = CliRunner().invoke(cli.main, ["eval", str(cli_world["gold"]), "--sets", "gold",
                                        "--index", str(cli_world["tmp"] / "no-index"), "--junit", str(junit)])
    assert out.exit_code == cli.EvalExit.COULD_NOT_RUN == 4, out.output
    assert "no index in" in out.output and "no index in" in _outcome(_cases(junit)[(ci.GATE_SUITE, "rag eval ran")])[1]
    # 0: the gate passes (no question demoted, rules it meets)
    monkeypatch.setattr(runner, "default_target", lambda: cli_world["target"](False))
    (cli_world["tmp"] / "rules.toml").write_text(RULES.split("[[rule]]\nset = \"gold\"")[0].replace("0.99", "0.9"),
                                                 encoding="utf-8")
    assert _cli(cli_world).exit_code == cli.EvalExit.PASSED == 0
    assert len({int(c) for c in cli.EvalExit}) == len(cli.EvalExit)


def test_each_exit_code_is_documented_in_the_help_and_the_docs():
    help_text = CliRunner().invoke(cli.main, ["eval", "--help"]).output
    root = Path(__file__).resolve().parents[1]
    evaluation = (root / "docs/evaluation.md").read_text(encoding="utf-8")
    commands = (root / "docs/cli.md").read_text(encoding="utf-8")
    for code in cli.EvalExit:
        assert re.search(rf"^ +{code.value} +\S", help_text, flags=re.M), code
        assert f"\n| {code.value} |" in evaluation and f"\n| {code.value} |" in commands, code
