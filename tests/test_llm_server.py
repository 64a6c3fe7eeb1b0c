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


def test_drafting_through_a_real_server_keeps_answers_that_are_in_their_paragraphs(llama_server, tmp_path):
    """`rag gold draft` with RAG_LLM_BASE_URL: the server writes the drafts and self-checks them
    by its first token's logprobs."""
    import json
    from pathlib import Path

    from rag.config import Settings
    from rag.evaluation import drafting
    from rag.evaluation.goldset import paragraphs_from_golden
    from rag.text.normalise import Normaliser

    golden = paragraphs_from_golden(Path(__file__).parent / "golden")
    chosen = ["2024-03-11-hkpc-welcomes-two-sessions#p2", "2023-07-10-new-industrialisation-centre-established#p10"]
    corpus = drafting.CorpusText({p: golden[p] for p in chosen}, {p: "" for p in chosen}, {"d": chosen})
    model = drafting.draft_model(Settings(llm_base_url=llama_server, llm_model="default", llm_timeout_s=180.0))
    assert llama_server in model.name
    tasks = [drafting.Task("answerable", chosen[0], "zh-Hant"), drafting.Task("answerable", chosen[1], "en")]
    out = tmp_path / "drafts.jsonl"
    tally = drafting.write_drafts(drafting.Drafter(corpus, model, floor=0.45, normaliser=Normaliser("t2s")), tasks, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    assert sum(tally.kept.values()) + sum(tally.dropped.values()) == 2 and rows, tally
    for row in rows:
        assert all(a in golden[row["para_id"]] for a in row["answers"])  # verbatim, in the paragraph's script
        assert 0.0 <= row["self_check"] <= 1.0 and row["model"] == model.name
