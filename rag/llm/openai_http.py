"""The HTTP client of an OpenAI-compatible server (llama.cpp's server, vLLM, Ollama, hosted):
the one place that checks ``RAG_LLM_BASE_URL`` and ``RAG_LLM_TIMEOUT_S`` and builds the client,
for the written answers (``rag.answer.written.client``) and the judge on a server
(``rag.llm.server_judge``)."""

from __future__ import annotations

import httpx


def chat_client(
    base_url: str, *, api_key: str | None, timeout_s: float, transport: httpx.BaseTransport | None = None,
) -> tuple[str, httpx.Client]:
    """(the ``/chat/completions`` URL, a client with the key and the timeout); ValueError on a
    base URL that is not http(s) or a timeout that is not positive."""
    if not base_url or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"llm base_url must start with http:// or https://, got {base_url!r} (RAG_LLM_BASE_URL)")
    if timeout_s <= 0:
        raise ValueError(f"llm timeout must be > 0 seconds, got {timeout_s} (RAG_LLM_TIMEOUT_S)")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport)
    return base_url.rstrip("/") + "/chat/completions", client
