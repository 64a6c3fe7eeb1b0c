"""scripts/setup.sh with the language model: --llm fails when the engine does not build (test.sh,
CI), --llm-optional (run.sh) goes on in the lean mode with a clear message and does not retry a
failed build on every run. A stand-in Python fails the build; nothing is installed or compiled."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../../calls.log"
case "$*" in
  *"import llama_cpp"*) exit 1 ;;
  *"pip install"*"llm"*) echo "CMake Error: the compiler ran out of memory"; exit 1 ;;
  *) exit 0 ;;
esac
"""
TOOLS = ("bash", "env", "grep", "sha256sum", "cut", "tail", "touch", "rm", "dirname", "id", "head", "ls")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(FAKE_PYTHON)
    (venv / "python").chmod(0o755)
    digest = subprocess.run(["sha256sum", "pyproject.toml"], cwd=tmp_path, capture_output=True, text=True,
                            check=True).stdout[:16]
    (tmp_path / ".venv" / f".installed-{digest}").touch()  # the product's dependencies: installed
    return tmp_path


def setup(project: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path or os.environ["PATH"], "HOME": str(project), "PYTHON": str(project / ".venv/bin/python")}
    return subprocess.run(["bash", "scripts/setup.sh", *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=60)


def test_optional_goes_on_lean_after_a_failed_build_and_does_not_retry_it(project):
    first = setup(project, "--llm-optional")
    assert first.returncode == 0, first.stderr
    assert "CMake Error" in first.stderr and "did not build" in first.stderr and ".venv/llm-setup.log" in first.stderr
    assert "runs in the lean mode" in first.stderr and "bash scripts/setup.sh --llm" in first.stderr
    assert list((project / ".venv").glob(".llm-failed-*"))
    calls = (project / "calls.log").read_text()
    assert "build_default_model" in calls  # the rest of the setup ran
    again = setup(project, "--llm-optional")
    assert again.returncode == 0 and "failed to build before" in again.stderr
    assert (project / "calls.log").read_text().count("pip install") == calls.count("pip install")  # not retried


def test_required_fails_the_setup(project):
    result = setup(project, "--llm")
    assert result.returncode == 1
    assert "the language model could not be set up" in result.stderr


def test_no_compiler_is_said_at_once(project, tmp_path_factory):
    bin_dir = tmp_path_factory.mktemp("bin")
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    result = setup(project, "--llm-optional", path=str(bin_dir))
    assert result.returncode == 0, result.stderr
    assert "no C++ compiler" in result.stderr and "build-essential" in result.stderr
    assert "pip install" not in (project / "calls.log").read_text()
