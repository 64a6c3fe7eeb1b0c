"""The answerability judge on a shared model server: P(yes) from the first token's logprobs.

Several ``rag serve`` processes can share one model server (``RAG_LLM_BASE_URL``: llama.cpp's
server, ``python -m llama_cpp.server``, vLLM) instead of each loading the model. The judge sends
the server the same chat messages as the local judge (``rag.llm.judge.messages``) and asks for
one token with its ``top_logprobs``::

    POST {base_url}/chat/completions
    {"messages": [...], "max_tokens": 1, "temperature": 0, "logprobs": true, "top_logprobs": 20}

P(yes) is then computed as the local judge computes it from its logits: the probability mass of
the "yes" tokens (``yes``/``Yes``/``YES``) against that of the "no" tokens, both taken from the
candidates for the first answer token (log-probabilities differ from logits by one constant,
which cancels). A side none of whose tokens is among the returned candidates is taken at the
smallest log-probability returned, an upper bound of its mass; with this prompt both sides are
in the top 20 of the models tried, where the result is exact.

A server that returns no logprobs (some hosted APIs, or llama_cpp.server started with
``--logits_all False``) is found out once, at start-up (:meth:`ServerJudge.check`), never
question by question.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import httpx

from rag.errors import ModelError
from rag.llm.judge import (
    DEFAULT_FLOOR,
    DEFAULT_TOP_K,
    NO_WORDS,
    YES_WORDS,
    Verdict,
    messages,
    p_yes,
    verdicts,
)
from rag.llm.openai_http import chat_client
from rag.types import Hit

TOP_LOGPROBS = 20  # candidates asked for: OpenAI's and vLLM's default maximum
PROBE = ("What colour is the sky?", "", "The sky is blue.")  # (question, title, paragraph) of the start-up check
RETRY_S = 1.0  # between start-up probes while the server is not up yet


class ServerJudge:
    """P(yes) for (question, paragraph) pairs from an OpenAI-compatible server's logprobs."""

    kind = "server"

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        floor: float = DEFAULT_FLOOR,
        top_k: int = DEFAULT_TOP_K,
        top_logprobs: int = TOP_LOGPROBS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self._client = chat_client(base_url, api_key=api_key, timeout_s=timeout_s, transport=transport)
        self.model = model
        self.timeout_s = timeout_s
        self.floor = floor
        self.top_k = top_k
        self.top_logprobs = top_logprobs

    def describe(self) -> dict[str, object]:
        """What /readyz shows of the judge (not the server's address: /readyz is open to all)."""
        return {"mode": "server", "model": self.model, "judge_floor": self.floor, "judge_top_k": self.top_k}

    def body(self, question: str, title: str, text: str) -> dict[str, Any]:
        """The request for one (question, paragraph): the local judge's messages, one token, its logprobs."""
        return {"model": self.model, "messages": messages(question, title, text), "max_tokens": 1,
                "temperature": 0.0, "logprobs": True, "top_logprobs": self.top_logprobs, "stream": False}

    def candidates(self, question: str, title: str, text: str) -> dict[str, float]:
        """The server's first-token candidates: token text -> log-probability (raises ModelError)."""
        try:
            resp = self._client.post(self.url, json=self.body(question, title, text))
        except httpx.TimeoutException:
            raise ModelError(f"the judge's server timed out after {self.timeout_s:g} s ({self.url})") from None
        except httpx.HTTPError as exc:
            raise ModelError(f"cannot reach the judge's server {self.url}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise ModelError(f"HTTP {resp.status_code} from the judge's server {self.url}: {_error_text(resp)}")
        try:
            data = resp.json()
        except ValueError:
            raise ModelError(f"{self.url} did not answer with JSON (not an OpenAI chat completion)") from None
        return first_token_logprobs(data, self.url)

    def p_yes(self, question: str, title: str, text: str) -> float:
        return probability(self.candidates(question, title, text))

    def judge(self, question: str, hits: Sequence[Hit]) -> list[Verdict]:
        """A verdict for each of ``hits``, in order (raises ModelError when the server fails)."""
        return verdicts(self.p_yes, question, hits)

    def check(self) -> None:
        """Once, at start-up: the server answers with first-token logprobs that hold "yes" or "no".

        Waits for a server that is still starting (connection refused) up to the timeout; raises
        :class:`ModelError` saying what is missing."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                found = self.candidates(*PROBE)
                break
            except ModelError as exc:
                if "cannot reach" not in str(exc) or time.monotonic() + RETRY_S > deadline:
                    raise
                time.sleep(RETRY_S)
        if not any(w in found for w in (*YES_WORDS, *NO_WORDS)):
            shown = ", ".join(repr(t) for t in list(found)[:8])
            raise ModelError(
                f"the judge's server {self.url} answers, but neither 'yes' nor 'no' is among the first token's "
                f"{len(found)} candidates ({shown}): the judge needs an instruct model that replies yes or no "
                "(RAG_LLM_MODEL names the server's model); set RAG_LLM_JUDGE=off to run without it")

    def close(self) -> None:
        self._client.close()


def first_token_logprobs(data: Any, url: str = "the server") -> dict[str, float]:
    """``{token: logprob}`` of the first generated token's candidates in a chat completion
    (``choices[0].logprobs.content[0].top_logprobs``; the legacy completions shape
    ``logprobs.top_logprobs[0]`` is read too). Raises :class:`ModelError` when there are none."""
    try:
        logprobs = data["choices"][0].get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelError(f"unexpected response from {url} (not an OpenAI chat completion)") from None
    found: dict[str, float] = {}
    if isinstance(logprobs, dict):
        content = logprobs.get("content")
        if isinstance(content, list) and content and isinstance(content[0], dict):
            for cand in content[0].get("top_logprobs") or []:
                if isinstance(cand, dict) and isinstance(cand.get("token"), str):
                    _keep(found, cand["token"], cand.get("logprob"))
        legacy = logprobs.get("top_logprobs")
        if not found and isinstance(legacy, list) and legacy and isinstance(legacy[0], dict):
            for token, value in legacy[0].items():
                _keep(found, token, value)
    if not found:
        raise ModelError(
            f"{url} returned no logprobs for the first token: the judge on a server needs "
            f'"logprobs": true with "top_logprobs" on /v1/chat/completions (llama.cpp\'s server, '
            "python -m llama_cpp.server with its default --logits_all True, vLLM return them); "
            "use such a server, or set RAG_LLM_JUDGE=off (no judge) or RAG_LLM_JUDGE=local (the model in this process)")
    return found


def probability(candidates: dict[str, float]) -> float:
    """P(yes) from the first token's candidates, as the local judge computes it from its logits."""
    yes = [candidates[w] for w in YES_WORDS if w in candidates]
    no = [candidates[w] for w in NO_WORDS if w in candidates]
    if not yes and not no:
        return 0.5  # neither is a candidate: the server's model says neither (check() refuses such a model)
    floor = min(candidates.values())  # a side left out of the candidates has at most this each
    return p_yes(yes or [floor], no or [floor])


def _keep(found: dict[str, float], token: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        # A token listed twice (some servers add the sampled one to the list): the same token.
        found[token] = max(found.get(token, -math.inf), float(value))


def _error_text(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        return str(err.get("message") if isinstance(err, dict) else err)[:300]
    except (ValueError, AttributeError):
        return resp.text[:300]
