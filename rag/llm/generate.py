"""Answers written by the local model: the ``Generator`` protocol of ``rag.answer.generated``.

The same prompt as the HTTP generator (numbered, fenced paragraphs; rules in the system
message), rendered with the model's own chat template and decoded greedily, token by token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from rag.answer.generated import GeneratorError
from rag.errors import ModelError
from rag.llm.engine import LocalModel

MAX_ANSWER_TOKENS = 200  # a concise answer: at most five sentences


class LocalGenerator:
    """Chat messages in, the local model's answer out (``complete``) or as it is decoded (``stream``)."""

    def __init__(self, model: LocalModel, *, timeout_s: float = 30.0, max_tokens: int = MAX_ANSWER_TOKENS) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The answer's text pieces as the engine decodes them (raises GeneratorError on failure)."""
        got = ""
        try:
            prompt = self.model.tokenize(self.model.format_chat(messages))
            deadline = time.monotonic() + self.timeout_s
            for piece in self.model.stream(prompt, max_tokens=self.max_tokens, deadline=deadline):
                got += piece
                yield piece
        except TimeoutError:
            raise GeneratorError(f"the local model ran past {self.timeout_s:g} s (RAG_LLM_TIMEOUT_S)") from None
        except ModelError as exc:
            raise GeneratorError(str(exc)) from None
        if not got.strip():
            raise GeneratorError("empty output")

    def complete(self, messages: list[dict[str, str]]) -> str:
        return "".join(self.stream(messages)).strip()
