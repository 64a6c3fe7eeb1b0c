"""The README's settings table holds every setting the code defines, and names none it does not."""

from __future__ import annotations

import re
from pathlib import Path

from rag.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
# read from the environment outside Settings: the eval's data folder, setup's browser switch
NOT_SETTINGS = {"RAG_EXTERNAL_DIR", "RAG_SETUP_BROWSER", "RAG_SETUP_LLM", "RAG_BENCH_DIR", "RAG_PEER_PYTHON"}


def test_every_setting_is_documented():
    missing = [f"RAG_{name.upper()}" for name in Settings.model_fields if f"`RAG_{name.upper()}`" not in README]
    assert not missing, f"settings missing from README.md: {missing}"


def test_the_readme_names_no_setting_that_does_not_exist():
    named = set(re.findall(r"RAG_[A-Z0-9_]*[A-Z0-9]", README))
    unknown = sorted(v for v in named - NOT_SETTINGS if v[4:].lower() not in Settings.model_fields)
    assert not unknown, f"README.md names settings the code does not define: {unknown}"


def _table_rows() -> list[tuple[list[str], list[str], str]]:
    """(setting names, default cells, meaning) of each row of the settings table."""
    section = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`RAG_"):
            names = re.findall(r"`(RAG_[A-Z0-9_]+)`", cells[0])
            defaults = [d.strip().strip("`") for d in cells[1].split(" / ")] if " / " in cells[1] else [cells[1].strip("`")]
            rows.append((names, defaults if len(defaults) == len(names) else [cells[1]] * len(names), cells[2]))
    return rows


def _matches(default: object, shown: str) -> bool:
    if shown.startswith("see "):
        return True  # described in its own section
    if shown in ("unset", "calibrated"):
        return default in (None, "")
    if isinstance(default, bool):
        return shown == str(default).lower()
    if isinstance(default, (int, float)):
        try:
            return float(shown) == default
        except ValueError:
            return False
    if isinstance(default, Path):
        return Path(shown).expanduser() == default.expanduser()
    return shown == str(default)


def test_the_table_shows_each_settings_default(monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # the table shows the cache folder's plain default
    rows = _table_rows()
    assert len({n for names, _, _ in rows for n in names}) >= 30  # the table was found and read
    wrong = []
    for names, defaults, _ in rows:
        for name, shown in zip(names, defaults, strict=True):
            field = Settings.model_fields[name[4:].lower()]
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            if not _matches(default, shown):
                wrong.append(f"{name}: README says {shown!r}, the code's default is {default!r}")
    assert not wrong, wrong


def test_the_relevance_floor_is_described_as_what_it_compares():
    """RAG_MIN_SCORE is compared with each hit's calibrated relevance, not with the fused ranking score."""
    (meaning,) = [m for names, _, m in _table_rows() if "RAG_MIN_SCORE" in names]
    assert "relevance" in meaning and "fused" not in meaning, meaning
    assert "fused" not in (Settings.model_fields["min_score"].description or "")
