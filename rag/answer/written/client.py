"""The ``Generator`` protocol and its client for OpenAI-compatible chat servers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import httpx

from rag.errors import GeneratorError
from rag.llm.openai_http import chat_client
from rag.types import FALLBACK_GENERATOR_FAILED, Notice

THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


@runtime_checkable
class Generator(Protocol):
    """Chat messages in, the model's text out (whole, or in pieces as it is written); raises
    :class:`GeneratorError` on any failure."""

    def complete(self, messages: list[dict[str, str]]) -> str: ...

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]: ...


class OpenAIChatGenerator:
    """``POST {base_url}/chat/completions`` on an OpenAI-compatible server (llama.cpp, vLLM, Ollama, hosted)."""

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_tokens: int = 600,
        temperature: float = 0.1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self._client = chat_client(base_url, api_key=api_key, timeout_s=timeout_s, transport=transport)
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature

    def complete(self, messages: list[dict[str, str]]) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": False,
        }
        try:
            resp = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise GeneratorError(f"timeout after {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise GeneratorError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise GeneratorError(f"HTTP {resp.status_code} from {self.url}")
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise GeneratorError(
                f"unexpected response from {self.url} (not an OpenAI chat completion)"
            ) from None
        text = THINK.sub("", content or "").strip()
        if not text:
            raise GeneratorError("empty output")
        return text

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The answer's pieces as the server sends them (``stream: true``, server-sent events);
        the whole reply must arrive within the timeout."""
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "stream": True}
        deadline = time.monotonic() + self.timeout_s
        got = ""
        try:
            with self._client.stream("POST", self.url, json=body) as resp:
                if resp.status_code >= 400:
                    raise GeneratorError(f"HTTP {resp.status_code} from {self.url}")
                for line in resp.iter_lines():
                    if time.monotonic() > deadline:
                        raise GeneratorError(f"timeout after {self.timeout_s:g}s")
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        piece = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        raise GeneratorError(
                            f"unexpected stream from {self.url} (not OpenAI chat completion chunks)"
                        ) from None
                    if piece:
                        got += piece
                        yield piece
        except httpx.TimeoutException:
            raise GeneratorError(f"timeout after {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise GeneratorError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if not THINK.sub("", got).strip():
            raise GeneratorError("empty output")

    def close(self) -> None:
        self._client.close()


def describe_failure(
    exc: BaseException, then: str = "showing extractive answer", *, code: str = FALLBACK_GENERATOR_FAILED
) -> Notice:
    """One notice for ``Answer.warnings``: the failure, and ``then`` what the reader gets instead."""
    reason = str(exc) if isinstance(exc, GeneratorError) else f"{type(exc).__name__}: {exc}"
    return Notice(code, f"generator unavailable: {reason}; {then}")
