"""The example CI files of docs/ci.md stay runnable: they parse, their JUnit file is the one the CI
service reads, and every `rag` command in them (and in scripts/test.sh) is accepted by the CLI as
written (a renamed option fails here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rag import cli

yaml = pytest.importorskip("yaml", reason="pyyaml is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def rag_commands(script: str) -> list[list[str]]:
    """The arguments of each `rag` (or `.venv/bin/rag`) command in a shell script."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value before the command
            words = words[1:]
        if words and Path(words[0]).name == "rag":
            commands.append(words[1:])
    return commands


def _option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from rag {' '.join(args)}"
    return args[args.index(name) + 1]


def _covered(path: str, uploaded: str) -> bool:
    """``path`` is ``uploaded`` or lies in the folder ``uploaded``."""
    return path == uploaded or path.startswith(uploaded.rstrip("/") + "/")


def _github() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    flow = _load(GITHUB)
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers and "pull_request" in triggers
    (job,) = flow["jobs"].values()
    return job, job["steps"]


def _gitlab() -> dict[str, Any]:
    (job,) = [v for k, v in _load(GITLAB).items() if isinstance(v, dict) and "script" in v]
    return job


def _eval_args(scripts: list[str]) -> list[str]:
    found = [args for s in scripts for args in rag_commands(s) if args and args[0] == "eval"]
    assert len(found) == 1, found
    return found[0]


def test_the_github_workflow_sets_up_runs_the_gate_and_uploads_its_reports():
    job, steps = _github()
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert uses[:2] == ["actions/checkout", "actions/setup-python"]
    assert steps[1]["with"]["python-version"] == "3.11"
    runs = [s["run"] for s in steps if "run" in s]
    assert any("bash scripts/setup.sh" in r for r in runs)
    args = _eval_args(runs)
    junit = _option(args, "--junit")
    assert _option(args, "--summary") == "$GITHUB_STEP_SUMMARY"
    assert _covered(junit, _option(args, "--report"))
    upload = steps[uses.index("actions/upload-artifact")]
    publish = steps[uses.index("mikepenz/action-junit-report")]
    assert _covered(junit, upload["with"]["path"]) and publish["with"]["report_paths"] == junit
    # the gate fails the step: what follows must still run to show why
    evaluate = next(i for i, s in enumerate(steps) if "rag eval" in s.get("run", ""))
    assert all(s.get("if") == "always()" for s in steps[evaluate + 1:])
    assert job["runs-on"] and _load(GITHUB)["permissions"]["checks"] == "write"


def test_the_gitlab_job_sets_up_runs_the_gate_and_reports_its_junit_file():
    job = _gitlab()
    assert job["image"].startswith("python:3.11")
    assert any("bash scripts/setup.sh" in line for line in job["script"])
    args = _eval_args(job["script"])
    junit, summary = _option(args, "--junit"), _option(args, "--summary")
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always" and artifacts["reports"]["junit"] == junit
    assert any(_covered(junit, p) for p in artifacts["paths"]) and any(_covered(summary, p) for p in artifacts["paths"])
    # the cache folder GitLab keeps is the one rag uses
    assert job["variables"]["RAG_CACHE_DIR"].endswith("/" + job["cache"]["paths"][0])


def _every_command() -> list[list[str]]:
    _, steps = _github()
    scripts = [s["run"] for s in steps if "run" in s] + list(_gitlab()["script"])
    scripts.append((ROOT / "scripts" / "test.sh").read_text(encoding="utf-8"))  # the project's own CI
    return [args for s in scripts for args in rag_commands(s)]


def test_every_rag_command_is_found():
    assert sum(args[0] == "eval" for args in _every_command()) == 5  # 1 + 1 + the 3 of scripts/test.sh


@pytest.mark.parametrize("args", _every_command(), ids=lambda a: " ".join(a[:1]))
def test_each_rag_command_of_the_examples_parses(args):
    """`--help` after the command's own arguments: click parses them all first, so an option
    that no longer exists fails with exit code 2 before the help is printed."""
    out = CliRunner().invoke(cli.main, [*args, "--help"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"Usage: main {args[0]}") or out.output.startswith(f"Usage: rag {args[0]}")
    renamed = CliRunner().invoke(cli.main, [*args, "--no-such-option", "--help"])
    assert renamed.exit_code == 2 and "No such option" in renamed.output


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_the_ci_page_shows_each_example_as_it_is(path):
    page = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```$", page, flags=re.S | re.M)
    assert path.read_text(encoding="utf-8") in blocks, f"docs/ci.md must show {path.name} verbatim"
    assert f"examples/{path.name}" in page
