"""RAG_LLM=local where the model cannot be had (not built, too little memory, a corrupt GGUF):
the product starts in the lean mode and says so, on /readyz, in the chat's status line and on
`rag ask`'s standard error; `rag eval` and the library refuse instead. A failing loader stands in
for each cause (no real model), except the corrupt file, which llama.cpp itself reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.errors import ModelError
from rag.service import RagService
from tests.fakes import HashingEncoder
from tests.server_utils import tiny_hashing

WHY = "llama.cpp could not load /models/broken.gguf: failed to load model"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Settings, RagService]:
    return tiny_hashing(tmp_path_factory.mktemp("lean"))


@pytest.fixture
def failing_model(monkeypatch):
    """The engine's loader fails as llama.cpp does on a corrupt file; the encoder is the hashing one."""
    calls = []

    def failing(path: Path, **kw: object) -> None:
        calls.append(path)
        raise ModelError(WHY)

    monkeypatch.setattr("rag.llm.engine.get_local_model", failing)
    monkeypatch.setattr("rag.embedding.get_encoder", lambda settings, **kw: HashingEncoder())
    return calls


def local(settings: Settings, tmp_path: Path, **update: object) -> Settings:
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    return settings.model_copy(update={"llm": "local", "llm_model_path": gguf, **update})


def test_the_service_runs_lean_and_keeps_the_reason(tiny, tmp_path, failing_model):
    settings = local(tiny[0], tmp_path, llm_answers="generated")
    with pytest.raises(ModelError, match="could not load"):  # the library's default: the error
        RagService.open(settings.index_dir, settings)
    svc = RagService.open(settings.index_dir, settings, lean_fallback=True)
    assert failing_model, "the loader was tried"
    assert svc.judge is None and svc.llm_error == WHY
    assert svc.model_queue is None and svc.writer is None
    assert svc.default_answer_mode == "extractive"  # RAG_LLM_ANSWERS=generated, but nothing can write
    ans = svc.ask("香港如何推動新型工業化？", 3)
    assert not ans.abstained and ans.citations and not ans.warnings
    assert all(c.judge is None for c in ans.citations)


def test_any_loader_failure_falls_back(tiny, tmp_path, monkeypatch):
    def out_of_memory(path: Path, **kw: object) -> None:
        raise MemoryError("cannot allocate 1.8 GB")

    monkeypatch.setattr("rag.llm.engine.get_local_model", out_of_memory)
    settings = local(tiny[0], tmp_path)
    svc = RagService.open(settings.index_dir, settings, encoder=HashingEncoder(), lean_fallback=True)
    assert svc.judge is None and svc.llm_error == "MemoryError: cannot allocate 1.8 GB"


def test_too_little_memory_is_refused_before_loading(tmp_path):
    from rag.llm.engine import check_memory

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"\0" * 4096)
    check_memory(gguf, available=2 << 30)
    with pytest.raises(ModelError, match=r"too little memory for the language model.*RAG_LLM=off"):
        check_memory(gguf, available=100 << 20)


def test_readyz_and_the_chat_say_the_model_is_off(tiny, tmp_path, failing_model):
    from rag.ui.chat import ChatUI

    from rag.api.app import create_app
    from rag.api.state import ServiceHolder

    settings = local(tiny[0], tmp_path)
    holder = ServiceHolder(settings)
    holder.load()  # as `rag serve` loads it
    assert holder.service is not None and holder.error is None
    with TestClient(create_app(settings, holder=holder, ui=False)) as client:
        r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["llm"] == {"mode": "off", "lean": True, "requested": "local", "error": WHY}
    line = ChatUI(holder).status()
    assert line.startswith("就緒 Ready") and "lean mode" in line and "broken.gguf" in line


def test_rag_ask_answers_with_one_line_on_stderr(tiny, tmp_path, failing_model, monkeypatch):
    from rag.cli import main
    from rag.config import get_settings

    settings = local(tiny[0], tmp_path)
    for name, value in {"RAG_LLM": "local", "RAG_LLM_MODEL_PATH": str(settings.llm_model_path),
                        "RAG_EMBED_MODEL": settings.embed_model, "RAG_MIN_SCORE": "0",
                        "RAG_CACHE_DIR": str(settings.cache_dir)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["ask", "香港如何推動新型工業化？", "--index", str(settings.index_dir)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"warning: the language model is off, answering in the lean mode: {WHY}"]
    assert "[1]" in result.stdout


def test_rag_eval_refuses_to_measure_the_lean_mode_as_the_models(tiny, tmp_path, failing_model, monkeypatch):
    from rag.cli import EvalExit, main
    from rag.config import get_settings

    settings = local(tiny[0], tmp_path)
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "q1", "question": "香港如何推動新型工業化？", "lang": "zh-Hant", '
                    '"answers": ["新型工業化"], "gold": ["industrialisation#p2"]}\n', encoding="utf-8")
    for name, value in {"RAG_LLM": "local", "RAG_LLM_MODEL_PATH": str(settings.llm_model_path),
                        "RAG_EMBED_MODEL": settings.embed_model, "RAG_CACHE_DIR": str(settings.cache_dir)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["eval", str(gold), "--index", str(settings.index_dir),
                                           "--report", str(tmp_path / "report")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == EvalExit.COULD_NOT_RUN, result.output
    assert "could not load" in result.output


@pytest.mark.model
def test_a_corrupt_gguf_is_a_model_error_not_a_crash(tmp_path):
    """llama.cpp itself reads a corrupt file: a ModelError naming it (the service then runs lean)."""
    pytest.importorskip("llama_cpp")
    from rag.llm.engine import LocalModel

    gguf = tmp_path / "corrupt.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 4096)
    with pytest.raises(ModelError, match="corrupt.gguf"):
        LocalModel(gguf, threads=1)
