"""The README's settings table holds every setting the code defines, and names none it does not."""

from __future__ import annotations

import re
from pathlib import Path

from rag.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
# read from the environment outside Settings: the eval's data folder, setup's browser switch
NOT_SETTINGS = {"RAG_EXTERNAL_DIR", "RAG_SETUP_BROWSER", "RAG_BENCH_DIR", "RAG_PEER_PYTHON"}


def test_every_setting_is_documented():
    missing = [f"RAG_{name.upper()}" for name in Settings.model_fields if f"`RAG_{name.upper()}`" not in README]
    assert not missing, f"settings missing from README.md: {missing}"


def test_the_readme_names_no_setting_that_does_not_exist():
    named = set(re.findall(r"RAG_[A-Z0-9_]*[A-Z0-9]", README))
    unknown = sorted(v for v in named - NOT_SETTINGS if v[4:].lower() not in Settings.model_fields)
    assert not unknown, f"README.md names settings the code does not define: {unknown}"
