"""The MCP server through the SDK's own client, over streamable HTTP (/mcp on the real app, behind
the API keys) and over stdio (`rag mcp` as a subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import httpx
import pytest

from tests.server_utils import ROOT, serve_app, tiny_index

pytestmark = [pytest.mark.slow, pytest.mark.model]
KEY = "mcp-test-key"
TOOLS = {"search", "ask", "get_paragraph", "list_documents", "list_collections"}
CITED = {"para_id", "title", "date", "source", "text"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoder):
    return tiny_index(tmp_path_factory.mktemp("mcp"), encoder)


@pytest.fixture(scope="module")
def service(tiny, encoder):
    from rag.service import RagService

    settings, index_dir = tiny
    return RagService.open(index_dir, settings, encoder=encoder)


@pytest.fixture(scope="module")
def server(tiny, service):
    from rag.api.app import create_app

    settings = tiny[0].model_copy(update={"api_keys": KEY})
    with serve_app(create_app(settings, service=service)) as srv:
        yield srv


def check_citations(citations: list[dict[str, Any]], service: Any) -> None:
    assert citations
    for c in citations:
        assert CITED <= set(c), c
        para = service.paragraph(c["para_id"])
        doc = service.document(para.doc_id)
        assert (c["text"], c["title"], c["date"], c["source"]) == (para.text, doc.title, doc.date, doc.source)


async def exercise(client: Any, service: Any) -> None:
    """The same checks over any transport."""
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == TOOLS
    assert all(t.output_schema for t in tools.tools)  # structured results, with a schema

    res = await client.call_tool("ask", {"question": "香港如何推動新型工業化？"})
    assert not res.is_error, res.content
    body = res.structured_content
    assert not body["abstained"] and body["warnings"] == []
    check_citations(body["citations"], service)
    assert all(f"[{c['n']}]" in body["answer"] for c in body["citations"])
    direct = service.ask("香港如何推動新型工業化？", 5)
    assert body["answer"] == direct.answer
    assert [c["para_id"] for c in body["citations"]] == [c.para_id for c in direct.citations]

    res = await client.call_tool("ask", {"question": "How many goals did Messi score in 2012?"})
    assert res.structured_content["abstained"] and res.structured_content["citations"] == []
    assert "relevance floor" in res.structured_content["abstain_reason"]

    res = await client.call_tool("search", {"query": "新質生產力", "k": 3})
    hits = res.structured_content["hits"]
    assert [h["para_id"] for h in hits] == [h.para_id for h in service.search("新質生產力", 3)]
    check_citations(hits, service)

    para_id = hits[0]["para_id"]
    res = await client.call_tool("get_paragraph", {"para_id": para_id, "script": "hans"})
    from rag.text.normalise import convert_script

    assert res.structured_content["text"] == convert_script(service.paragraph(para_id).text, "t2s")

    res = await client.call_tool("list_documents", {})
    docs = res.structured_content
    assert docs["count"] == len(service.documents()) == 4
    assert {d["doc_id"] for d in docs["documents"]} == {d.doc_id for d in service.documents()}

    # A caller's mistakes come back as tool errors with a clear message, never a traceback.
    for name, args, mentions in (
        ("get_paragraph", {"para_id": "nope#p1"}, "no paragraph with para_id 'nope#p1'"),
        ("search", {"query": "工業", "k": 0}, "greater than or equal to 1"),
        ("ask", {"question": "   "}, "question is empty"),
        ("ask", {"question": "香港", "script": "klingon"}, "script"),
    ):
        res = await client.call_tool(name, args)
        assert res.is_error, (name, args)
        text = " ".join(getattr(c, "text", "") for c in res.content)
        assert mentions in text and "Traceback" not in text, text


def test_streamable_http_behind_the_api_keys(server, service):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    url = server.base_url + "/mcp"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(url, json=init, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(url, json=init, headers={**headers, "X-API-Key": "wrong"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"

    async def run() -> None:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                await exercise(client, service)

    asyncio.run(run())


def test_stdio_rag_mcp(tiny, service):
    from mcp import Client, StdioServerParameters

    _, index_dir = tiny
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "rag.cli", "mcp", "--index", str(index_dir)], cwd=str(ROOT),
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )

    async def run() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            await exercise(client, service)

    asyncio.run(run())


def test_stdio_without_index_is_one_clean_line(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "rag.cli", "mcp", "--index", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "rag index" in proc.stderr and "Traceback" not in proc.stderr
