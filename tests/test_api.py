"""The HTTP API through a real uvicorn server on a free port, over a tiny real index."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.api.app import create_app
from rag.api.auth import key_matches, parse_keys
from rag.api.routers.openai import sources_text, split_messages
from rag.service import RagService
from tests.server_utils import (
    XSS_PARA_ID,
    rag_serve,
    serve_app,
    tiny_index,
    tiny_writer,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.model]

QUESTION = "香港如何推動新型工業化？"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoder):
    return tiny_index(tmp_path_factory.mktemp("api"), encoder)


@pytest.fixture(scope="module")
def service(tiny, encoder):
    settings, index_dir = tiny
    return RagService.open(index_dir, settings, encoder=encoder)


@pytest.fixture(scope="module")
def server(tiny, service):
    settings, _ = tiny
    with serve_app(create_app(settings, service=service)) as srv:
        yield srv


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) >= {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]


# -- probes, docs, UI mount ---------------------------------------------------------------------


def test_health_and_ready(client, service):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["documents"] == len(service.documents()) == 4
    assert body["paragraphs"] == len(service.index.paragraphs)
    assert body["model"]["id"] == service.encoder.model_id


def test_docs_and_ui_share_the_app(client):
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in ("/api/ask", "/api/search", "/api/briefing", "/api/documents", "/api/documents/{doc_id}",
              "/api/paragraphs/{para_id}", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz"):
        assert p in paths, p
    # The streaming chat completion is declared as server-sent events, beside the JSON reply.
    content = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}
    assert "text/markdown" in paths["/api/briefing"]["post"]["responses"]["200"]["content"]
    # The chat UI is mounted at / but the API routes registered before it still win.
    # Docs pages load their scripts and styles from this server, never from a CDN.
    for page in ("/docs", "/redoc"):
        html_ = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html_)
        assert assets and all(a.startswith("/") for a in assets), assets
        assert "cdn." not in html_ and "fonts.googleapis" not in html_
        for a in assets:
            r = client.get(a)
            assert r.status_code == 200 and len(r.content) > 100, a
    ui = client.get("/")
    assert ui.status_code == 200 and "<html" in ui.text.lower()
    assert client.get("/healthz").headers["content-type"].startswith("application/json")


# -- /api/ask and /api/search --------------------------------------------------------------------


def test_ask_returns_cited_answer(client, service):
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"answer", "abstained", "citations", "timings_ms"}
    assert not body["abstained"] and body["answer"]
    assert body["citations"][0]["para_id"].startswith("industrialisation#p")
    for i, c in enumerate(body["citations"], start=1):
        assert c["n"] == i
        assert c["para_id"] in service.index.paragraphs
        assert {"doc_id", "title", "source", "text", "score", "highlights"} <= set(c)
        for start, end in c["highlights"]:
            assert 0 <= start < end <= len(c["text"])
    assert "[1]" in body["answer"]
    assert body == {**service.ask(QUESTION, 5).to_dict(), "timings_ms": body["timings_ms"]}


def test_ask_in_simplified_script_and_with_history(client):
    r = client.post("/api/ask", json={"question": QUESTION, "k": 3, "script": "hans",
                                      "history": [{"role": "user", "content": "新質生產力是甚麼？"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    cited = " ".join(c["text"] for c in body["citations"])
    assert "工业化" in cited and "工業化" not in cited
    assert len(body["citations"]) <= 3


def test_search_ranks_paragraphs(client):
    r = client.post("/api/search", json={"query": "人工智能超算中心", "k": 2})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert 1 <= len(hits) <= 2
    assert hits[0]["doc_id"] == "ai-centre"
    assert [h["n"] for h in hits] == list(range(1, len(hits) + 1))


# -- documents and paragraphs -------------------------------------------------------------------


def test_documents_list_and_detail(client):
    docs = client.get("/api/documents").json()
    assert docs["count"] == 4
    by_id = {d["doc_id"]: d for d in docs["documents"]}
    assert by_id["industrialisation"]["title"] == "香港推動新型工業化"
    detail = client.get("/api/documents/industrialisation").json()
    assert [p["para_id"] for p in detail["paragraphs"]] == ["industrialisation#p1", "industrialisation#p2"]
    assert detail["date"] == "2024-03-01"
    assert isinstance(detail["removed"], list) and isinstance(detail["flags"], list)  # the cleaning audit


def test_paragraph_with_encoded_hash(client):
    r = client.get("/api/paragraphs/industrialisation%232")
    assert_error(r, 404, "not_found")
    r = client.get("/api/paragraphs/industrialisation%23p2")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["para_id"] == "industrialisation#p2" and body["n"] == 2
    assert body["title"] == "香港推動新型工業化"
    assert "新型工業化辦公室" in body["text"]
    # A .jsonl paragraph keeps its own id (and its text verbatim).
    xss = client.get("/api/paragraphs/" + XSS_PARA_ID.replace("#", "%23")).json()
    assert "<script>alert(1)</script>" in xss["text"]


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "mentions"),
    [
        ({"question": ""}, 422, "invalid_input", "question"),
        ({"question": "   \n\t "}, 422, "invalid_input", "empty"),
        ({"question": "問" * 10_000}, 422, "invalid_input", "2000"),
        ({"question": QUESTION, "k": 0}, 422, "invalid_input", "k"),
        ({"question": QUESTION, "k": 101}, 422, "invalid_input", "k"),
        ({"question": QUESTION, "k": "5"}, 422, "invalid_input", "k"),
        ({"question": QUESTION, "k": 2.5}, 422, "invalid_input", "k"),
        ({"question": 123}, 422, "invalid_input", "question"),
        ({"question": QUESTION, "script": "klingon"}, 422, "invalid_input", "script"),
        ({"question": QUESTION, "history": "not a list"}, 422, "invalid_input", "history"),
        ({"question": QUESTION, "history": [{"role": "user", "content": "x" * 9000}]}, 422, "invalid_input", "history"),
        ({"question": QUESTION, "extra": 1}, 422, "invalid_input", "extra"),
        ({}, 422, "invalid_input", "question"),
        ([QUESTION], 422, "invalid_input", "body"),
    ],
)
def test_ask_rejects_bad_input(client, body, status, code, mentions):
    err = assert_error(client.post("/api/ask", json=body), status, code)
    assert mentions in err["message"]
    assert "問問問問問問" not in err["message"]  # inputs are not echoed back


def test_search_rejects_bad_input(client):
    assert_error(client.post("/api/search", json={"query": ""}), 422, "invalid_input")
    assert_error(client.post("/api/search", json={"query": "工業", "k": 0}), 422, "invalid_input")
    assert_error(client.post("/api/search", json={"query": "x" * 10_000}), 422, "invalid_input")


def test_invalid_json_and_wrong_content(client):
    r = client.post("/api/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_json")
    r = client.post("/api/ask", content=b"question=hi", headers={"content-type": "application/x-www-form-urlencoded"})
    assert_error(r, 422, "invalid_input")
    r = client.post("/v1/chat/completions", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)
    assert_error(r, r.status_code)


@pytest.mark.parametrize(
    "path",
    [
        "/api/paragraphs/nope%23p1",
        "/api/paragraphs/industrialisation%23p99",
        "/api/documents/no-such-doc",
        "/api/documents/..%2F..%2Fetc%2Fpasswd",
        "/api/documents/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/paragraphs/..%2F..%2Fetc%2Fpasswd%23p1",
        "/api/documents/..%5C..%5Cwindows%5Cwin.ini",
        "/api/no-such-endpoint",
        "/v1/no-such-endpoint",
    ],
)
def test_unknown_ids_and_traversal_are_json_404(client, path):
    err = assert_error(client.get(path), 404, "not_found")
    assert "root:" not in err["message"]


def test_over_long_id_is_rejected(client):
    assert_error(client.get("/api/documents/" + "a" * 2000), 422, "invalid_input")


def test_wrong_method_is_json_405(client):
    r = client.get("/api/ask")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


def test_internal_errors_hide_details(tiny, service):
    class Broken:
        def __getattr__(self, name):
            return getattr(service, name)

        def ask(self, *a, **kw):
            raise RuntimeError("secret-internal-detail /srv/index")

    settings, _ = tiny
    with serve_app(create_app(settings, service=Broken(), ui=False)) as srv, srv.client() as c:
        for r in (c.post("/api/ask", json={"question": QUESTION}),
                  c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]})):
            err = assert_error(r, 500, "internal_error")
            assert "secret" not in r.text and "/srv" not in r.text and "RuntimeError" not in r.text
            assert err["message"]


# -- OpenAI-compatible /v1 ------------------------------------------------------------------------


def chat(client: httpx.Client, content: Any, **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": "rag-bilingual", "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "新質生產力是甚麼？"},
        {"role": "assistant", "content": "新質生產力是先進生產力。[1]"},
        {"role": "user", "content": content},
    ], **extra})


def test_models(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and body["data"][0]["id"] == "rag-bilingual"


def test_chat_completion_plain(client):
    r = chat(client, QUESTION)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and body["choices"][0]["finish_reason"] == "stop"
    citations = body["citations"]
    assert any(c["doc_id"] == "industrialisation" for c in citations)
    assert "Sources:" in msg["content"]
    for c in citations:  # the sources are in the message text too
        assert f"[{c['n']}] {c['title']}" in msg["content"] and c["para_id"] in msg["content"]
    assert body["usage"]["total_tokens"] >= body["usage"]["prompt_tokens"] > 0
    assert body["mode"] == "extractive" and body["warnings"] == [] and "Checks:" not in msg["content"]


def test_chat_completion_text_shows_the_citation_checks():
    from rag.api.routers.openai import checks_text

    shown = checks_text(["citation check: removed, not supported by its cited source: 天文台預測明日天晴"])
    assert shown.startswith("\n\nChecks:\n- citation check: removed") and "天文台" in shown
    assert checks_text([]) == ""


def test_chat_completion_content_parts(client):
    r = chat(client, [{"type": "text", "text": "數碼港人工智能超算中心"}])
    assert r.status_code == 200, r.text
    assert r.json()["citations"][0]["doc_id"] == "ai-centre"


def parse_sse(text: str) -> tuple[list[dict[str, Any]], bool]:
    events = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    done = events[-1] == "[DONE]"
    return [json.loads(e) for e in events if e != "[DONE]"], done


def test_chat_completion_stream(client):
    plain = chat(client, QUESTION).json()
    with client.stream("POST", "/v1/chat/completions", json={
        "stream": True, "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "新質生產力是甚麼？"},
            {"role": "assistant", "content": "新質生產力是先進生產力。[1]"},
            {"role": "user", "content": QUESTION}]}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    chunks, done = parse_sse(text)
    assert done, "the stream must end with data: [DONE]"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == plain["choices"][0]["message"]["content"]
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) > 2  # really in pieces
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["citations"] == plain["citations"] == chunks[0]["citations"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"messages": []}, 422, "invalid_input"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, 422, "invalid_input"),
        ({"messages": [{"role": "user", "content": ""}]}, 422, "invalid_input"),
        ({"messages": [{"role": "user", "content": "字" * 10_000}], "stream": True}, 422, "invalid_input"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 422, "invalid_input"),
        ({"messages": "hi"}, 422, "invalid_input"),
        ({"messages": [{"role": "user", "content": QUESTION}], "k": 0}, 422, "invalid_input"),
    ],
)
def test_chat_completion_errors_are_json(client, body, status, code):
    assert_error(client.post("/v1/chat/completions", json=body), status, code)


def test_split_messages_takes_last_user_turn():
    class M:
        def __init__(self, role, content):
            self.role, self.content = role, content

    q, history = split_messages([M("system", "s"), M("user", "a"), M("assistant", "b"), M("user", "c"),
                                 M("assistant", "d")], 100)
    assert q == "c"
    assert history == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert sources_text([]) == ""
    assert sources_text([{"n": 1, "title": "T", "date": None, "source": "s.txt", "para_id": "d#p1"}]).endswith(
        "[1] T s.txt — d#p1")


# -- API keys and CORS -----------------------------------------------------------------------------


def test_key_matching_is_exact():
    keys = parse_keys(" alpha-key , beta-key,,")
    assert keys == ["alpha-key", "beta-key"]
    assert key_matches("beta-key", keys) and not key_matches("beta-ke", keys) and not key_matches("", keys)


def test_api_keys_guard_api_and_v1_but_not_health(tiny, service):
    settings, _ = tiny
    keyed = settings.model_copy(update={"api_keys": "alpha-key,beta-key"})
    with serve_app(create_app(keyed, service=service)) as srv, srv.client() as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        for method, path, body in [("POST", "/api/ask", {"question": QUESTION}), ("POST", "/api/search", {"query": "工業"}),
                                   ("GET", "/api/documents", None), ("GET", "/api/paragraphs/industrialisation%23p1", None),
                                   ("GET", "/v1/models", None),
                                   ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]})]:
            r = c.request(method, path, json=body)
            assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
            assert_error(c.request(method, path, json=body, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
            assert_error(c.request(method, path, json=body, headers={"X-API-Key": "alpha-key-but-longer"}), 401)
            assert c.request(method, path, json=body, headers={"Authorization": "Bearer beta-key"}).status_code == 200
            assert c.request(method, path, json=body, headers={"X-API-Key": "alpha-key"}).status_code == 200
        # The chat UI asks for a login (any user name, an API key as the password).
        assert c.get("/config").status_code == 401


def test_cors_is_off_by_default(client):
    r = client.get("/api/documents", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/api/ask", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_configured_origins(tiny, service):
    settings, _ = tiny
    cors = settings.model_copy(update={"cors_origins": "https://briefing.example.hk"})
    with serve_app(create_app(cors, service=service, ui=False)) as srv, srv.client() as c:
        ok = c.options("/api/ask", headers={"Origin": "https://briefing.example.hk", "Access-Control-Request-Method": "POST"})
        assert ok.headers["access-control-allow-origin"] == "https://briefing.example.hk"
        other = c.get("/api/documents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


# -- `rag serve`: the real command, index loaded in the lifespan -------------------------------------


def test_rag_serve_without_index_starts_and_says_503(tmp_path: Path):
    with rag_serve(tmp_path / "missing") as srv, srv.client() as c:
        assert c.get("/healthz").status_code == 200
        deadline = time.monotonic() + 60
        while "loading" in (r := c.get("/readyz")).text and time.monotonic() < deadline:
            time.sleep(0.1)  # 503 "loading" first, then 503 with the reason
        err = assert_error(r, 503, "index_not_loaded")
        assert "rag index" in err["message"] and "no index" in err["message"]
        for r in (c.post("/api/ask", json={"question": QUESTION}),
                  c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}),
                  c.get("/api/documents")):
            err = assert_error(r, 503, "index_not_loaded")
            assert err["message"].startswith("index not loaded: run `rag index`")
        assert "<html" in c.get("/").text.lower()


def test_rag_serve_loads_the_index_once(tiny):
    settings, index_dir = tiny
    with rag_serve(index_dir) as srv, srv.client() as c:
        ready = wait_until(srv.base_url + "/readyz", status=200, timeout=300).json()
        assert ready["documents"] == 4
        r = c.post("/api/ask", json={"question": QUESTION})
        assert r.status_code == 200 and r.json()["citations"]



# -- property-based: no generated request may produce a 500 or break the documented shapes -----------


def test_fuzzed_requests_never_fail_the_server(server):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(timeout=60)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)
            if response.status_code >= 400:
                assert set(response.json()["error"]) == {"code", "message"}

        check()


def test_chat_completion_streams_a_written_answer_sentence_by_sentence(tmp_path_factory, encoder):
    """With a generator: checked sentences as they are written, then the sources and the checks,
    citations and mode on the last chunk; the unsupported sentence is never sent."""
    from tests.llm_stub import LLMStub

    with LLMStub() as stub:
        stub.reply = "香港正積極推動新型工業化。[1] 政府已投入九百億元興建月球工廠。[1] 創新科技及工業局成立新型工業化辦公室。[2]"
        stub.piece_delay_s = 0.01
        settings, service = tiny_writer(tmp_path_factory.mktemp("v1-stream"), encoder, stub.base_url)
        with serve_app(create_app(settings, service=service)) as srv, srv.client() as client:
            plain = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}).json()
            with client.stream("POST", "/v1/chat/completions", json={
                    "stream": True, "messages": [{"role": "user", "content": QUESTION}]}) as r:
                assert r.status_code == 200
                text = "".join(r.iter_text())
    chunks, done = parse_sse(text)
    assert done and plain["mode"] == "generated" and chunks[-1]["mode"] == "generated"
    deltas = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    content = "".join(deltas)
    assert content == plain["choices"][0]["message"]["content"]  # the same reply as without streaming
    assert "月球" not in content.split("Checks:")[0] and "月球" in content.split("Checks:")[1]
    sentences = [d for d in deltas if "。[" in d]
    assert len(sentences) == 2  # each checked sentence sent once it passed
    assert "citations" not in chunks[0] and chunks[-1]["citations"] == plain["citations"]
    assert chunks[-1]["warnings"] and chunks[-1]["choices"][0]["finish_reason"] == "stop"
