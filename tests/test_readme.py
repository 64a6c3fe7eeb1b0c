"""The README and docs/ stay true to the code: every setting documented with its default, no
setting named that does not exist, a short README whose links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").rglob("*.md"))}
CONFIGURATION = DOCS["docs/configuration.md"]
# read from the environment outside Settings: the eval's data folder, setup's switches, benchmarks
NOT_SETTINGS = {"RAG_EXTERNAL_DIR", "RAG_SETUP_BROWSER", "RAG_SETUP_LLM", "RAG_BENCH_DIR", "RAG_PEER_PYTHON"}
README_MAX_LINES = 200
# (an underscore-prefixed _RAG_TEST_* name is an internal hook of the tests, not a setting)
_NAME = re.compile(r"(?<![A-Za-z0-9_])RAG_[A-Z0-9_]*[A-Z0-9]")


def _code_text() -> str:
    """Every Python and shell file of the product, its scripts and benchmarks."""
    files = [*ROOT.glob("rag/**/*.py"), *ROOT.glob("ui/**/*.py"), *ROOT.glob("scripts/*.sh"),
             *ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/*.sh")]
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def test_every_setting_is_documented():
    missing = [f"RAG_{name.upper()}" for name in Settings.model_fields if f"`RAG_{name.upper()}`" not in CONFIGURATION]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_the_readme_names_every_setting():
    missing = [f"RAG_{name.upper()}" for name in Settings.model_fields if f"`RAG_{name.upper()}`" not in README]
    assert not missing, f"settings missing from the README's Settings table: {missing}"


def test_every_variable_read_outside_the_settings_is_documented():
    read = set(_NAME.findall(_code_text())) - {f"RAG_{n.upper()}" for n in Settings.model_fields}
    assert read <= NOT_SETTINGS, f"read by the code but neither a setting nor in NOT_SETTINGS: {sorted(read - NOT_SETTINGS)}"
    assert NOT_SETTINGS <= read, f"NOT_SETTINGS names variables nothing reads: {sorted(NOT_SETTINGS - read)}"
    missing = sorted(v for v in NOT_SETTINGS if f"`{v}`" not in CONFIGURATION)
    assert not missing, f"environment variables missing from docs/configuration.md: {missing}"


@pytest.mark.parametrize("name", ["README.md", *DOCS])
def test_no_setting_named_that_does_not_exist(name):
    text = README if name == "README.md" else DOCS[name]
    named = set(_NAME.findall(text))
    unknown = sorted(v for v in named - NOT_SETTINGS if v[4:].lower() not in Settings.model_fields)
    assert not unknown, f"{name} names settings the code does not define: {unknown}"


def _table_rows() -> list[tuple[list[str], list[str], str]]:
    """(setting names, default cells, meaning) of each row of the settings tables."""
    section = CONFIGURATION.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
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
    if shown in ("unset", "calibrated") or shown.startswith("the model's"):
        return default in (None, "")  # unset: the embedding model's tuned value (rag/profiles.py)
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
    shown = {n for names, _, _ in rows for n in names}
    assert shown == {f"RAG_{n.upper()}" for n in Settings.model_fields}, "each setting has one row"
    wrong = []
    for names, defaults, _ in rows:
        for name, cell in zip(names, defaults, strict=True):
            field = Settings.model_fields[name[4:].lower()]
            default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            if not _matches(default, cell):
                wrong.append(f"{name}: docs/configuration.md says {cell!r}, the code's default is {default!r}")
    assert not wrong, wrong


def test_the_relevance_floor_is_described_as_what_it_compares():
    """RAG_MIN_SCORE is compared with each hit's calibrated relevance, not with the fused ranking score."""
    (meaning,) = [m for names, _, m in _table_rows() if "RAG_MIN_SCORE" in names]
    assert "relevance" in meaning and "fused" not in meaning, meaning
    assert "fused" not in (Settings.model_fields["min_score"].description or "")


def test_the_readme_is_a_front_door():
    lines = README.count("\n") + (not README.endswith("\n"))
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the detail into docs/"
    for command in ("bash scripts/run.sh", "bash scripts/test.sh"):
        assert command in README, command


def _slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _anchors(markdown: str) -> set[str]:
    body = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", body, flags=re.M)}


def test_the_readmes_links_resolve():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in local), "the README points into docs/"
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        if not target.is_file():
            broken.append(link)
        elif anchor and anchor not in _anchors(target.read_text(encoding="utf-8")):
            broken.append(link)
    assert not broken, f"README.md links to what does not exist: {broken}"


def test_every_docs_page_is_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [name for name in DOCS if f" {name.removeprefix('docs/')}" not in nav]
    assert not missing, f"pages missing from the nav of mkdocs.yml: {missing}"
