"""Many users at once: the bounded queue in front of the local model (RAG_LLM_QUEUE), and the
answer mode chosen per request (answer_mode: written | extractive).

No real model: the tiny corpus under the hashing encoder, a stand-in judge that blocks on an
Event (the model busy for as long as the test wants), and the scripted OpenAI-compatible stub
(tests/llm_stub.py) for written answers. The overload runs through a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.config import Settings
from rag.errors import InputError, ModelBusyError
from rag.llm.admission import DEFAULT_RETRY_S, ModelQueue
from rag.llm.judge import Verdict
from rag.service import RagService, check_answer_mode
from rag.types import FALLBACK_NO_WRITER
from tests.server_utils import serve_app, tiny_hashing

QUESTION = "香港如何推動新型工業化？"
# Sentences of the corpus itself, so the citation check passes them whatever the encoder.
WRITTEN = ("香港正積極推動新型工業化，從人才、技術、財政支援、推動科研和基礎建設五大方面入手。[1] "
           "創新科技及工業局成立新型工業化辦公室。[2]")


# -- the queue itself ---------------------------------------------------------------------------


def test_the_queue_admits_one_served_plus_its_size_and_refuses_the_rest():
    q = ModelQueue(2)
    assert [q.try_enter() for _ in range(4)] == [True, True, True, False]
    assert q.in_flight == 3 and q.waiting == 2 and q.stats() == {"queue": 2, "in_flight": 3, "admitted": 3,
                                                                 "rejected": 1}
    err = q.refusal()
    assert isinstance(err, ModelBusyError) and err.http_status == 503 and err.code == "model_busy"
    assert err.retry_after_s == DEFAULT_RETRY_S and "RAG_LLM_QUEUE=2" in str(err) and "2 questions" in str(err)
    q.leave(held_s=12.2)
    assert q.try_enter() and q.retry_after_s() == 13  # about one question's time on the model
    for _ in range(3):
        q.leave()
    assert q.in_flight == 0 and q.try_enter(only_if_idle=True) and not q.try_enter(only_if_idle=True)
    with pytest.raises(ValueError, match="RAG_LLM_QUEUE"):
        ModelQueue(-1)


def test_a_place_is_given_back_whatever_happens_in_the_block():
    q = ModelQueue(0)
    with pytest.raises(RuntimeError), q.place():
        raise RuntimeError("boom")
    with q.place(), pytest.raises(ModelBusyError), q.place():
        pass
    assert q.in_flight == 0


def test_answer_mode_is_checked_at_the_boundary():
    assert [check_answer_mode(m) for m in (None, "written", "generated", "extractive")] == [
        None, "written", "written", "extractive"]
    with pytest.raises(InputError, match="answer_mode must be one of extractive, written"):
        check_answer_mode("poem")


# -- a service over the tiny corpus, a judge that blocks -----------------------------------------


class _StandInModel:
    path = Path("stand-in.gguf")


class BlockingJudge:
    """The judge's seam (``rag.llm.judge.Judge``) over a stand-in model: each call waits on
    ``release``, as a question waits while the model reads; every paragraph passes."""

    floor = 0.5
    top_k = 3
    kind = "local"

    def __init__(self) -> None:
        self.model = _StandInModel()
        self.release = threading.Event()
        self.calls = 0

    def describe(self) -> dict[str, object]:
        return {"mode": "local", "model": self.model.path.name, "judge_floor": self.floor, "judge_top_k": self.top_k}

    def judge(self, question: str, hits: Any) -> list[Verdict]:
        self.calls += 1
        assert self.release.wait(60), "the test never released the model"
        return [Verdict(h.para_id, 0.9, 0.0) for h in hits]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Settings, RagService]:
    """(settings, service) of the tiny corpus under the hashing encoder; every hit above the floor."""
    return tiny_hashing(tmp_path_factory.mktemp("queue"), llm_queue=2)


def judged(tiny: tuple[Settings, RagService], judge: BlockingJudge, **update: Any) -> RagService:
    settings, plain = tiny
    return RagService(plain.index, plain.encoder, settings.model_copy(update=update), judge=judge,
                      on_request_thread=None)


@pytest.fixture
def blocking(tiny) -> Iterator[tuple[RagService, BlockingJudge]]:
    judge = BlockingJudge()
    yield judged(tiny, judge), judge
    judge.release.set()


def test_a_full_queue_refuses_before_any_work_and_search_never_waits(blocking):
    svc, judge = blocking
    assert svc.model_queue is not None and svc.model_queue.size == 2
    pool = ThreadPoolExecutor(3)
    admitted = [pool.submit(svc.ask, QUESTION, 3) for _ in range(3)]
    _wait(lambda: judge.calls == 3)
    with pytest.raises(ModelBusyError):
        next(svc.ask_steps(QUESTION, 3))  # refused at the first step: nothing retrieved
    assert judge.calls == 3
    with pytest.raises(InputError):  # a bad question is still the caller's mistake, not a 503
        next(svc.ask_steps("   ", 3))
    assert svc.search(QUESTION, 3)  # while the model is busy
    # A follow-up search would use the model to rewrite itself: with the model busy it prepends instead.
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "香港正積極推動新型工業化。"}]
    assert svc.question("他們成立了甚麼辦公室？", history).rewritten is None
    judge.release.set()
    assert all(not f.result(timeout=30).abstained for f in admitted)
    assert svc.model_queue.in_flight == 0 and svc.model_queue.rejected == 1
    pool.shutdown()


def test_the_http_api_answers_503_with_retry_after_past_the_queue(blocking, tiny):
    """N+k concurrent questions through a real server: N answered, k refused at once with 503,
    Retry-After and the API's error shape, never a timeout or a 500; meanwhile search, the
    documents and the probes answer, and /v1 and MCP refuse the same way."""
    from rag.api.app import create_app

    svc, judge = blocking
    settings = tiny[0]
    n = 1 + svc.model_queue.size
    with serve_app(create_app(settings, service=svc, ui=False)) as srv, ThreadPoolExecutor(n + 3) as pool:
        def ask() -> httpx.Response:
            return httpx.post(srv.base_url + "/api/ask", json={"question": QUESTION, "k": 3}, timeout=60)

        futures = [pool.submit(ask) for _ in range(n + 3)]
        # The refusals come at admission; the admitted questions reach the judge after their
        # retrieval, which a loaded machine can make slow: wait for both.
        _wait(lambda: sum(f.done() for f in futures) == 3 and judge.calls == n)
        refused = [f.result() for f in futures if f.done()]
        assert judge.calls == n
        for r in refused:
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "model_busy" and "RAG_LLM_QUEUE" in r.json()["error"]["message"]
            assert int(r.headers["Retry-After"]) >= 1
        with srv.client() as c:
            t0 = time.monotonic()
            assert c.post("/api/search", json={"query": QUESTION, "k": 3}).status_code == 200
            assert c.get("/api/documents").status_code == 200
            ready = c.get("/readyz").json()
            assert time.monotonic() - t0 < 10  # none of them waited for the model
            assert ready["llm"]["queue"]["in_flight"] == n and ready["answers"] == {"default": "extractive",
                                                                                    "written": True}
            chat = {"messages": [{"role": "user", "content": QUESTION}]}
            for body in (chat, {**chat, "stream": True}):
                r = c.post("/v1/chat/completions", json=body)
                assert r.status_code == 503 and r.headers["Retry-After"], r.text
                assert r.json()["error"]["code"] == "model_busy"
        mcp = asyncio.run(_mcp_ask(svc, {"question": QUESTION}))
        assert mcp.is_error and "language model is busy" in _text(mcp)
        judge.release.set()
        answered = [f.result(timeout=60) for f in futures if f.result() not in refused]
    assert [r.status_code for r in answered] == [200] * n
    assert svc.model_queue.in_flight == 0


class SlowJudge(BlockingJudge):
    """A model's pace: one call at a time (the engine's lock), ``seconds`` each."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._lock = threading.Lock()

    def judge(self, question: str, hits: Any) -> list[Verdict]:
        with self._lock:
            time.sleep(self.seconds)
            return [Verdict(h.para_id, 0.9, self.seconds) for h in hits]


def test_the_load_test_reports_refusals_apart_from_errors(tiny, capsys):
    """benchmarks/load_test.py against a server whose stand-in model takes 50 ms a question: one
    client is never refused; eight overrun a queue of one and get 503s, which are not errors."""
    import importlib.util

    from rag.api.app import create_app
    from tests.server_utils import ROOT

    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    assert spec and spec.loader
    load_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_test)
    svc = judged(tiny, SlowJudge(0.05), llm_queue=1)
    with serve_app(create_app(svc.settings, service=svc, ui=False)) as srv:
        code = load_test.main(["--url", srv.base_url, "--clients", "1", "8", "--seconds", "1.5", "--rounds", "1",
                               "--ask-only", "-k", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 8 |")]
    one, eight = ([c.strip() for c in row.split("|")[1:-1]] for row in rows)
    assert one[9] == "0" and int(eight[9]) > 0 and one[10] == eight[10] == "0", out  # 503 busy, other errors
    print(out)


# -- the answer mode, per request ---------------------------------------------------------------


@pytest.fixture(scope="module")
def stub() -> Iterator[Any]:
    from tests.llm_stub import LLMStub

    with LLMStub() as s:
        s.reply = WRITTEN
        yield s


@pytest.fixture(scope="module")
def writer_server(tiny, stub) -> Iterator[Any]:
    """A server whose answers the stub writes by default (RAG_LLM_BASE_URL)."""
    from rag.api.app import create_app

    settings, plain = tiny
    settings = settings.model_copy(update={"llm_base_url": stub.base_url})
    svc = RagService(plain.index, plain.encoder, settings, on_request_thread=None)
    with serve_app(create_app(settings, service=svc, ui=False)) as srv:
        yield srv


def test_answer_mode_picks_the_answer_per_request(writer_server, stub):
    with writer_server.client() as c:
        asked = len(stub.requests)
        default = c.post("/api/ask", json={"question": QUESTION, "k": 3}).json()
        assert default["mode"] == "generated" and len(stub.requests) == asked + 1
        quoted = c.post("/api/ask", json={"question": QUESTION, "k": 3, "answer_mode": "extractive"}).json()
        assert quoted["mode"] == "extractive" and not quoted["warnings"] and len(stub.requests) == asked + 1
        for mode in ("written", "generated"):
            assert c.post("/api/ask", json={"question": QUESTION, "k": 3, "answer_mode": mode}).json()["mode"] == "generated"
        r = c.post("/api/ask", json={"question": QUESTION, "answer_mode": "poem"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input" and "answer_mode" in r.text


def test_v1_takes_the_answer_mode_from_metadata(writer_server):
    chat = {"messages": [{"role": "user", "content": QUESTION}], "k": 3}
    with writer_server.client() as c:
        assert c.post("/v1/chat/completions", json=chat).json()["mode"] == "generated"
        plain = c.post("/v1/chat/completions", json={**chat, "metadata": {"answer_mode": "extractive"}}).json()
        assert plain["mode"] == "extractive"
        with c.stream("POST", "/v1/chat/completions", json={**chat, "stream": True,
                                                           "metadata": {"answer_mode": "extractive", "x": "y"}}) as r:
            last = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data: {")][-1]
        assert last["mode"] == "extractive"
        r = c.post("/v1/chat/completions", json={**chat, "metadata": {"answer_mode": "poem"}})
        assert r.status_code == 422 and "answer_mode" in r.json()["error"]["message"]


def test_the_mcp_ask_tool_takes_an_answer_mode(tiny, stub):
    settings, plain = tiny
    svc = RagService(plain.index, plain.encoder, settings.model_copy(update={"llm_base_url": stub.base_url}),
                     on_request_thread=None)
    quoted = asyncio.run(_mcp_ask(svc, {"question": QUESTION, "k": 3, "answer_mode": "extractive"}))
    written = asyncio.run(_mcp_ask(svc, {"question": QUESTION, "k": 3, "answer_mode": "written"}))
    assert not quoted.is_error and quoted.structured_content["mode"] == "extractive"
    assert not written.is_error and written.structured_content["mode"] == "generated"
    assert "[1]" in written.structured_content["answer"]


def test_written_without_a_model_is_extractive_with_a_notice(tiny):
    _, plain = tiny
    assert plain.writer is None and plain.default_answer_mode == "extractive"
    answer = plain.ask(QUESTION, 3, answer_mode="written")
    assert answer.mode == "extractive" and not answer.abstained
    assert [w.code for w in answer.warnings] == [FALLBACK_NO_WRITER]
    assert plain.ask(QUESTION, 3).warnings == ()


def test_the_local_model_writes_on_request_though_extractive_is_the_default(tiny):
    """RAG_LLM=local, RAG_LLM_ANSWERS=extractive: the service keeps the local writer built once,
    and only a request for a written answer uses it."""
    from rag.llm.generate import LocalGenerator

    judge = BlockingJudge()
    judge.release.set()
    svc = judged(tiny, judge, llm="local")
    assert svc.generator is None and isinstance(svc.writer, LocalGenerator) and svc.writer.model is judge.model
    written = judged(tiny, judge, llm="local", llm_answers="generated")
    assert written.default_answer_mode == "written" and written.generator is written.writer


# -- helpers --------------------------------------------------------------------------------------


def _wait(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def _mcp_ask(svc: RagService, args: dict[str, Any]) -> Any:
    from mcp import Client

    from rag.mcp_server import build_server

    async with Client(build_server(lambda _collection: svc)) as client:
        return await client.call_tool("ask", args)


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_the_chat_says_the_model_is_busy_and_shows_the_toggle_only_with_a_writer(blocking, tiny):
    from rag.ui.chat import ChatUI

    class Holder:
        loading = False

        def __init__(self, service: Any) -> None:
            self.service = service

        def get(self) -> Any:
            return self.service

    svc, judge = blocking
    svc.model_queue.size = 0
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(svc.ask, QUESTION, 3)
        _wait(lambda: judge.calls == 1)
        *_, (_, chat, _, state) = ChatUI(Holder(svc)).respond(QUESTION, [], None, "original", 3, "extractive")
        judge.release.set()
        held.result(timeout=30)
    bubble = chat[-1]["content"]
    assert "busy-msg" in bubble and "語言模型正忙" in bubble and "The language model is busy" in bubble
    assert f"about {DEFAULT_RETRY_S} s" in bubble  # no question timed yet when it was refused
    assert state["turn"] == 0  # nothing was answered: the conversation is as it was
    assert ChatUI(Holder(svc)).mode_toggle().visible is True  # the local model writes on request
    assert ChatUI(Holder(tiny[1])).mode_toggle().visible is False  # no model: no toggle
