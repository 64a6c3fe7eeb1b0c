"""Answers written by the local model: the ``Generator`` protocol of ``rag.answer.written.client``.

The same prompt as the HTTP generator (numbered, fenced paragraphs; rules in the system
message), rendered with the model's own chat template and decoded greedily, token by token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from rag.errors import GeneratorError, ModelError
from rag.llm.engine import LocalModel

MAX_ANSWER_TOKENS = 200  # a concise answer: at most five sentences


class LocalGenerator:
    """Chat messages in, the local model's answer out (``complete``) or as it is decoded (``stream``)."""

    def __init__(self, model: LocalModel, *, timeout_s: float = 30.0, max_tokens: int = MAX_ANSWER_TOKENS) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self._prefixes: dict[str, int] = {}  # system message -> tokens shared by its prompts

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The answer's text pieces as the engine decodes them (raises GeneratorError on failure)."""
        got = ""
        try:
            prompt = self.model.tokenize(self.model.format_chat(messages))
            deadline = time.monotonic() + self.timeout_s
            shared = self._shared_prefix(messages[:-1])
            for piece in self.model.stream(prompt, max_tokens=self.max_tokens, deadline=deadline,
                                           cached_prefix=shared):
                got += piece
                yield piece
        except TimeoutError:
            raise GeneratorError(f"the local model ran past {self.timeout_s:g} s (RAG_LLM_TIMEOUT_S)") from None
        except ModelError as exc:
            raise GeneratorError(str(exc)) from None
        if not got.strip():
            raise GeneratorError("empty output")

    def _shared_prefix(self, before: list[dict[str, str]]) -> int:
        """How many leading tokens every prompt with these messages before the question shares
        (the system message, any worked example, the last user turn's header), whatever the
        question: the engine keeps their KV cache."""
        key = json.dumps(before, ensure_ascii=False)
        if key not in self._prefixes:
            a = self.model.tokenize(self.model.format_chat([*before, {"role": "user", "content": "a"}]))
            b = self.model.tokenize(self.model.format_chat([*before, {"role": "user", "content": "Q"}]))
            self._prefixes[key] = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                                       min(len(a), len(b)))
        return self._prefixes[key]

    def complete(self, messages: list[dict[str, str]]) -> str:
        return "".join(self.stream(messages)).strip()
