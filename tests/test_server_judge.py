"""The answerability judge on a shared model server (RAG_LLM=local with RAG_LLM_BASE_URL): the
request it sends, P(yes) from the first token's logprobs computed as the local judge computes it
from its logits, the start-up check of a server without logprobs, and the service around it.

No real model: the scripted OpenAI-compatible stub (tests/llm_stub.py) and a stand-in tokenizer
for the local judge's side of the comparison. tests/test_server_judge_real.py compares the two
judges on the real model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.answer.written.factory import judge_from_settings, judge_placement
from rag.config import Settings
from rag.errors import ModelError
from rag.llm.judge import SYSTEM, Judge, messages
from rag.llm.server_judge import ServerJudge, first_token_logprobs, probability
from rag.service import RagService
from rag.types import JUDGE_UNAVAILABLE
from tests.fakes import HashingEncoder
from tests.llm_stub import LLMStub
from tests.server_utils import tiny_hashing

QUESTION = "香港如何推動新型工業化？"


class ChatMLModel:
    """A stand-in for ``LocalModel``: Qwen's ChatML template, and a tokenizer where each of the
    yes/no words is one token (ids 1..6) and everything else a token per character."""

    path = Path("stand-in.gguf")
    WORDS = {"yes": 1, "Yes": 2, "YES": 3, "no": 4, "No": 5, "NO": 6}

    def format_chat(self, msgs: list[dict[str, str]]) -> str:
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + "<|im_start|>assistant\n"

    def tokenize(self, text: str) -> list[int]:
        return [self.WORDS[text]] if text in self.WORDS else [100 + ord(c) % 1000 for c in text]


def test_the_server_is_sent_the_prompt_the_local_judge_reads():
    local = Judge(ChatMLModel())  # type: ignore[arg-type]
    msgs = messages("  Who chairs it? ", "生產力局", "主席陳祖恒表示……")
    assert msgs[0] == {"role": "system", "content": SYSTEM}
    assert msgs[1]["content"].index("主席陳祖恒") < msgs[1]["content"].index("Who chairs it?")
    # the local judge renders it in two parts (paragraph, then question): the same text
    rendered = local._head + "生產力局\n主席陳祖恒表示……" + local._between + "Who chairs it?" + local._tail
    assert ChatMLModel().format_chat(msgs) == rendered


def test_the_request_asks_for_one_token_and_its_logprobs():
    with LLMStub() as stub:
        stub.logprobs = {"yes": math.log(0.7), "no": math.log(0.2), "The": math.log(0.05)}
        judge = ServerJudge(stub.base_url, "qwen", api_key="k-1", floor=0.45, top_k=2)
        p = judge.p_yes(QUESTION, "標題", "段落")
        body, headers = stub.requests[-1], stub.headers[-1]
    assert body == {"model": "qwen", "messages": messages(QUESTION, "標題", "段落"), "max_tokens": 1,
                    "temperature": 0.0, "logprobs": True, "top_logprobs": 20, "stream": False}
    assert headers["Authorization"] == "Bearer k-1"
    assert p == pytest.approx(0.7 / 0.9)


def test_p_yes_from_logprobs_is_the_local_judges_p_yes_from_logits():
    """Log-probabilities are logits less one constant: the same P(yes), whichever is given."""
    local = Judge(ChatMLModel())  # type: ignore[arg-type]
    rng = np.random.default_rng(7)
    for _ in range(20):
        logits = rng.normal(0, 3, 1200).astype(np.float32)
        logprobs = logits - (np.log(np.sum(np.exp(logits - logits.max()))) + logits.max())
        words = {w: float(logprobs[i]) for w, i in ChatMLModel.WORDS.items()}
        candidates = {**words, "The": float(logprobs[200]), " yes": float(logprobs[201])}  # " yes" is not "yes"
        assert probability(candidates) == pytest.approx(local.probability(logits), abs=1e-5)


def test_a_side_missing_from_the_candidates_is_bounded_by_the_smallest_returned():
    assert probability({"Yes": -0.01, "Sure": -5.0}) == pytest.approx(1 / (1 + math.exp(-5.0 + 0.01)))
    assert probability({"No": -0.02, "Maybe": -6.0}) == pytest.approx(1 / (1 + math.exp(-0.02 + 6.0)))
    assert probability({"Maybe": -0.1}) == 0.5


def test_the_legacy_completions_shape_is_read_too():
    data = {"choices": [{"logprobs": {"tokens": ["yes"], "token_logprobs": [-0.1],
                                      "top_logprobs": [{"yes": -0.1, "no": -2.0}]}}]}
    assert first_token_logprobs(data) == {"yes": -0.1, "no": -2.0}


def test_a_server_without_logprobs_is_refused_at_start_up_with_a_clear_error():
    with LLMStub() as stub:  # answers chat completions, but without logprobs
        judge = ServerJudge(stub.base_url)
        with pytest.raises(ModelError, match=r"returned no logprobs.*top_logprobs.*RAG_LLM_JUDGE=off"):
            judge.check()
        assert len(stub.requests) == 1  # one probe, not a retry loop
        stub.logprobs = {"The": -0.1, "Sky": -1.0}  # logprobs, but a model that does not answer yes/no
        with pytest.raises(ModelError, match="neither 'yes' nor 'no'"):
            judge.check()
        stub.logprobs = {"Yes": -0.05, "No": -3.0}
        judge.check()


def test_an_unreachable_server_is_refused_after_the_timeout():
    judge = ServerJudge("http://127.0.0.1:9/v1", timeout_s=1.5)
    with pytest.raises(ModelError, match="cannot reach"):
        judge.check()


def test_where_the_judge_runs():
    s = Settings(_env_file=None)
    url = "http://127.0.0.1:8000/v1"
    assert judge_placement(s) == "off"  # RAG_LLM=off: no model at all
    assert judge_placement(s.model_copy(update={"llm_base_url": url})) == "off"  # a server writes, no judge
    assert judge_placement(s.model_copy(update={"llm": "local"})) == "local"
    assert judge_placement(s.model_copy(update={"llm": "local", "llm_base_url": url})) == "server"
    assert judge_placement(s.model_copy(update={"llm": "local", "llm_base_url": url, "llm_judge": "local"})) == "local"
    assert judge_placement(s.model_copy(update={"llm": "local", "llm_base_url": url, "llm_judge": "off"})) == "off"
    with pytest.raises(ModelError, match="RAG_LLM_JUDGE=server needs RAG_LLM_BASE_URL"):
        judge_from_settings(s.model_copy(update={"llm": "local", "llm_judge": "server"}))


def _verdicts(body: dict[str, Any]) -> dict[str, float]:
    """The stub's model: a paragraph about the new industrialisation office answers; others do not."""
    user = body["messages"][-1]["content"]
    if "The sky is blue." in user:
        return {"yes": -0.05, "no": -3.0}
    return {"yes": -0.1, "no": -2.4} if "辦公室" in user else {"yes": -3.0, "no": -0.05}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_hashing(tmp_path_factory.mktemp("server-judge"))


def test_the_service_judges_on_the_server_without_loading_a_model(tiny):
    settings, plain = tiny
    with LLMStub() as stub:
        stub.logprobs = _verdicts
        shared = settings.model_copy(update={"llm": "local", "llm_base_url": stub.base_url, "judge_top_k": 3})
        svc = RagService.open(shared.index_dir, shared, encoder=HashingEncoder(), on_request_thread=None)
        assert isinstance(svc.judge, ServerJudge) and svc.llm_error is None
        assert svc.model_queue is None and svc.rewriter is None  # nothing of a local model in this process
        from rag.api.state import ServiceHolder

        llm = ServiceHolder(shared, svc).info()["llm"]  # what /readyz shows: not the server's address
        assert llm["mode"] == "server" and llm["judge_floor"] == svc.judge.floor and "url" not in llm
        ans = svc.ask("新型工業化辦公室由哪個部門成立？", 3, answer_mode="extractive")
        assert not ans.abstained and ans.citations
        assert all(c.judge is not None and c.judge >= svc.judge.floor for c in ans.citations)
        assert all("辦公室" in c.text for c in ans.citations)
        assert "judge" in ans.timings_ms
        judged = [r for r in stub.requests if r.get("logprobs")]
        assert len(judged) == 1 + 3  # the start-up probe, then the top 3 paragraphs
        # No paragraph passes: the answer abstains with the judge's reason.
        stub.logprobs = lambda body: {"yes": -4.0, "no": -0.02}
        off = svc.ask("新型工業化辦公室的預算是多少？", 3, answer_mode="extractive")
        assert off.abstained and "語言模型核對後" in (off.abstain_reason or "")
        # The server fails after start-up: the answer is cited without the judge, and says so.
        stub.status = 500
        failed = svc.ask("新型工業化辦公室由哪個部門成立？", 3, answer_mode="extractive")
        assert not failed.abstained and failed.citations and all(c.judge is None for c in failed.citations)
        assert [w.code for w in failed.warnings] == [JUDGE_UNAVAILABLE]
        assert "HTTP 500" in failed.warnings[0].text


def test_a_service_whose_server_has_no_logprobs_runs_lean_and_says_why(tiny):
    settings, _ = tiny
    with LLMStub() as stub:  # no logprobs
        shared = settings.model_copy(update={"llm": "local", "llm_base_url": stub.base_url})
        with pytest.raises(ModelError, match="no logprobs"):  # the library's default: the error
            RagService.open(shared.index_dir, shared, encoder=HashingEncoder())
        svc = RagService.open(shared.index_dir, shared, encoder=HashingEncoder(), lean_fallback=True)
        assert svc.judge is None and "no logprobs" in (svc.llm_error or "")
        assert svc.writer is not None  # the server still writes answers: only the judge needs logprobs
