"""The `rag` command driven in process (CliRunner) and, once, as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rag.cli import main


def test_help_lists_commands():
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("index", "verify", "search", "ask", "serve", "eval"):
        assert cmd in out


@pytest.mark.parametrize("command", [["search", "香港"], ["serve"], ["verify"]])
def test_a_bad_setting_is_one_clean_line(command):
    env = {**os.environ, "RAG_EMBED_QUERY_DTYPE": "half", "RAG_HNSW_EF_SEARCH": "0"}
    proc = subprocess.run([sys.executable, "-m", "rag.cli", *command], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert "RAG_EMBED_QUERY_DTYPE='half'" in lines[0] and "'bfloat16'" in lines[0]
    assert "RAG_HNSW_EF_SEARCH='0'" in lines[0]


def test_missing_index_is_one_clean_line(tmp_path):
    result = CliRunner().invoke(main, ["search", "工業化", "--index", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "rag index" in result.output and "Traceback" not in result.output


def test_index_of_missing_path_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["index", str(tmp_path / "nope"), "--index", str(tmp_path / "ix")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


@pytest.mark.model
def test_ask_json_cites_the_chairman(corpus_service, corpus_settings):
    """`rag ask --json` prints the /api/ask body; the answer cites the paragraph naming 陳祖恒."""
    env = {**os.environ, "RAG_INDEX_DIR": str(corpus_settings.index_dir), "RAG_CACHE_DIR": str(corpus_settings.cache_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "--json", "生產力局主席是誰？"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert set(body) >= {"answer", "abstained", "citations", "timings_ms"}
    assert not body["abstained"]
    assert any("陳祖恒" in c["text"] for c in body["citations"])
    assert all(f"[{c['n']}]" in body["answer"] for c in body["citations"])


@pytest.mark.model
def test_search_json_shape(corpus_service, corpus_settings):
    result = CliRunner().invoke(main, ["search", "--json", "-k", "3", "新型工业化发展中心", "--index", str(corpus_settings.index_dir)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert len(body["hits"]) == 3
    assert {"n", "doc_id", "para_id", "title", "source", "text", "score", "highlights"} <= set(body["hits"][0])


@pytest.mark.slow
@pytest.mark.model
def test_ask_prints_warnings_and_the_abstention_reason(tmp_path_factory, encoder, monkeypatch):
    from rag.config import get_settings
    from tests.server_utils import tiny_index

    _, index_dir = tiny_index(tmp_path_factory.mktemp("cli-ask"), encoder)
    result = CliRunner().invoke(main, ["ask", "How many goals did Messi score in 2012?",
                                       "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "No source found" in result.output
    assert "(no source cited: no paragraph reached the relevance floor" in result.output

    # A generator that cannot be reached: the extractive answer, and the warning saying so.
    monkeypatch.setenv("RAG_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("RAG_LLM_TIMEOUT_S", "2")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["ask", "香港如何推動新型工業化？", "--index", str(index_dir)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "warning: generator unavailable:" in result.output and "showing extractive answer" in result.output
    assert "[1]" in result.output


@pytest.mark.slow
@pytest.mark.model
def test_ask_prints_a_written_answer_as_it_is_checked(tmp_path_factory, encoder, monkeypatch):
    from rag.config import get_settings
    from tests.llm_stub import LLMStub
    from tests.server_utils import tiny_index

    _, index_dir = tiny_index(tmp_path_factory.mktemp("cli-stream"), encoder)
    with LLMStub() as stub:
        stub.reply = "香港正積極推動新型工業化。[1] 政府已投入九百億元興建月球工廠。[1]"
        monkeypatch.setenv("RAG_LLM_BASE_URL", stub.base_url)
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(main, ["ask", "香港如何推動新型工業化？", "--index", str(index_dir)])
        finally:
            get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert stub.requests and stub.requests[-1]["stream"] is True
    first = result.output.splitlines()[0]
    assert first == "香港正積極推動新型工業化。[1]"  # the checked sentence, once; the unsupported one never
    assert "月球" not in first and "citation check: removed" in result.output
