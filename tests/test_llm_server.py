"""The HTTP generator path (RAG_LLM_BASE_URL) against a real OpenAI-compatible server.

llama-cpp-python's own server (`python -m llama_cpp.server`) runs the default model in a child
process; the answer path sends it the numbered paragraphs and checks what comes back.
"""

from __future__ import annotations

import re

import pytest

from rag.answer.compose import answer_from_hits

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def llama_server(local_model_path):
    from tests.server_utils import llama_cpp_server

    with llama_cpp_server(local_model_path) as base:
        yield base


def test_a_generated_answer_from_a_real_server_cites_its_sources(llama_server, corpus_service):
    question = "生產力局主席是誰？"
    hits = corpus_service.search(question, k=2)
    assert hits[0].para_id == "2024-03-11-hkpc-welcomes-two-sessions#p2"
    settings = corpus_service.settings.model_copy(update={"llm_base_url": llama_server, "llm_timeout_s": 180.0})
    ans = answer_from_hits(corpus_service.question(question), hits, settings)
    assert "generate" in ans.timings_ms, ans.warnings  # written by the model, not the extractive fallback
    assert not ans.abstained and ans.citations
    assert "陳祖恒" in ans.answer
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", ans.answer)}
    assert markers and markers <= {c.n for c in ans.citations}
    assert "2024-03-11-hkpc-welcomes-two-sessions#p2" in [c.para_id for c in ans.citations]
