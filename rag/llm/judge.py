"""The answerability judge: does this paragraph answer this question? P(yes) from the model.

Two engines read the same prompt and give the same P(yes): :class:`Judge`, the local model's
logits (``RAG_LLM=local``), and ``rag.llm.server_judge.ServerJudge``, the first token's logprobs
from an OpenAI-compatible server (``RAG_LLM_BASE_URL``).

The relevance model scores a near miss (a paragraph on the right topic that lacks the asked-for
fact) as high as an answer; the judge *reads* the paragraph against the question. One prompt-only
pass per paragraph: the model's chat template around

    Passage: <title + paragraph>
    Question: <question>
    Does the passage answer the question? Reply yes or no.

and P(yes) = the probability mass of the "yes" tokens against the "yes" + "no" tokens of the
first answer token. The paragraph comes first in the prompt, so its KV cache is reused across
questions (``rag.llm.engine``); a paragraph seen before costs only the question's ~30 tokens.

The floor (``RAG_JUDGE_FLOOR``, default :data:`DEFAULT_FLOOR`) was chosen on the external dev
sets, never on the gold set: ``benchmarks/judge_calibration.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rag.llm.engine import LocalModel
from rag.types import Hit

JUDGE_VERSION = 1  # part of the prompt's identity: change it when the prompt changes
DEFAULT_FLOOR = 0.45  # dev-set calibration: benchmarks/judge_calibration.py (docs/answers.md)
DEFAULT_TOP_K = 3  # paragraphs judged per question: those an extractive answer may cite
MAX_PARAGRAPH_CHARS = 1200  # a longer paragraph is judged on its first 1,200 characters

SYSTEM = "You check whether a passage answers a question. Reply with one word: yes or no."
_SLOT = "\u241fQUESTION\u241f"  # a marker no question contains: where the question goes
USER = "Passage:\n{passage}\n\nQuestion: " + _SLOT + "\n\nDoes the passage answer the question? Reply yes or no."
# The instruction before the question: ~12 tokens follow the cached paragraph instead of ~24
# (half the cost of a paragraph read before). Measured by benchmarks/judge_calibration.py
# --framing question-last; not the product's prompt (its floor was calibrated on USER).
USER_QUESTION_LAST = "Passage:\n{passage}\n\nDoes the passage answer the question below? Reply yes or no.\n\nQuestion: " + _SLOT

YES_WORDS = ("yes", "Yes", "YES")  # the first answer token's "yes" set (each a single token)
NO_WORDS = ("no", "No", "NO")

REASONS = {
    "en": "none of the {n} best paragraphs answers the question, according to the language model's "
          "check (best P(yes) {best:.2f}, below the floor {floor:.2f}, RAG_JUDGE_FLOOR)",
    "zh-Hant": "語言模型核對後，最相關的 {n} 段文字都沒有回答這個問題（最高 P(是) {best:.2f}，"
               "低於門檻 {floor:.2f}，RAG_JUDGE_FLOOR）",
    "zh-Hans": "语言模型核对后，最相关的 {n} 段文字都没有回答这个问题（最高 P(是) {best:.2f}，"
               "低于门槛 {floor:.2f}，RAG_JUDGE_FLOOR）",
}


@dataclass(frozen=True)
class Verdict:
    para_id: str
    p_yes: float
    seconds: float


class AnswerJudge(Protocol):
    """What the answer path needs of a judge: :class:`Judge` (this process's model) or
    ``rag.llm.server_judge.ServerJudge`` (a model server's logprobs)."""

    floor: float
    top_k: int

    @property
    def kind(self) -> str:
        """``"local"`` or ``"server"``."""
        ...

    def judge(self, question: str, hits: Sequence[Hit]) -> list[Verdict]: ...

    def describe(self) -> dict[str, object]: ...


class Judge:
    """P(yes) for (question, paragraph) pairs on one :class:`LocalModel`."""

    def __init__(self, model: LocalModel, *, floor: float = DEFAULT_FLOOR, top_k: int = DEFAULT_TOP_K,
                 user: str = USER) -> None:
        """``user``: the user message's template ({passage} and the question's slot); the
        product's is :data:`USER`, another is for experiments (``judge_calibration.py --framing``)."""
        self.model = model
        self.floor = floor
        self.top_k = top_k
        self.user = user
        rendered = model.format_chat([
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": user.format(passage="\u241fPASSAGE\u241f")},
        ])
        head, rest = rendered.split("\u241fPASSAGE\u241f")
        between, tail = rest.split(_SLOT)
        self._head, self._between, self._tail = head, between, tail
        self._yes = single_tokens(model, YES_WORDS)
        self._no = single_tokens(model, NO_WORDS)
        if not self._yes or not self._no:
            raise ValueError(f"{model.path.name}: 'yes'/'no' are not single tokens; the judge needs them")

    kind = "local"

    def describe(self) -> dict[str, object]:
        """What /readyz shows of the judge."""
        return {"mode": "local", "model": self.model.path.name, "judge_floor": self.floor, "judge_top_k": self.top_k}

    def prompt(self, question: str, title: str, text: str) -> tuple[list[int], list[int]]:
        """(prefix, suffix) tokens: the prefix holds the paragraph, the suffix the question."""
        prefix = self.model.tokenize(self._head + passage(title, text) + self._between)
        suffix = self.model.tokenize(question.strip() + self._tail)
        return prefix, suffix

    def p_yes(self, question: str, title: str, text: str) -> float:
        prefix, suffix = self.prompt(question, title, text)
        return self.probability(self.model.next_token_logits(prefix, suffix))

    def probability(self, logits: np.ndarray) -> float:
        return p_yes(logits[self._yes], logits[self._no])

    def judge(self, question: str, hits: Sequence[Hit]) -> list[Verdict]:
        """A verdict for each of ``hits``, in order."""
        return verdicts(self.p_yes, question, hits)


def verdicts(p_yes: Callable[[str, str, str], float], question: str, hits: Sequence[Hit]) -> list[Verdict]:
    """A verdict for each of ``hits``, in order: ``p_yes(question, title, text)`` timed per paragraph
    (the local engine's judge and the judge on a server read them the same way)."""
    out = []
    for hit in hits:
        t0 = time.perf_counter()
        p = p_yes(question, hit.title, hit.text)
        out.append(Verdict(hit.para_id, p, time.perf_counter() - t0))
    return out


def passage(title: str, text: str) -> str:
    """The paragraph as the judge reads it: its title, then its first MAX_PARAGRAPH_CHARS characters."""
    return (f"{title}\n" if title else "") + text[:MAX_PARAGRAPH_CHARS]


def messages(question: str, title: str, text: str) -> list[dict[str, str]]:
    """The judge's chat messages for one (question, paragraph): what :class:`Judge` renders with the
    model's template (in two parts, to cache the paragraph) and what a server is sent."""
    user = USER.format(passage=passage(title, text)).replace(_SLOT, question.strip())
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def p_yes(yes: Sequence[float] | np.ndarray, no: Sequence[float] | np.ndarray) -> float:
    """P(yes) against "no" from the first token's logits (or log-probabilities: the same up to a
    constant) of the "yes" tokens and of the "no" tokens."""
    a = _logsumexp(np.asarray(yes, dtype=np.float64))
    b = _logsumexp(np.asarray(no, dtype=np.float64))
    return 1.0 / (1.0 + math.exp(min(b - a, 700.0)))


def reason(lang: str, n: int, best: float, floor: float) -> str:
    """Why the answer abstained, in the question's language."""
    return REASONS.get(lang, REASONS["en"]).format(n=n, best=best, floor=floor)


def single_tokens(model: LocalModel, words: Sequence[str]) -> list[int]:
    ids = []
    for word in words:
        toks = model.tokenize(word)
        if len(toks) == 1 and toks[0] not in ids:
            ids.append(toks[0])
    return ids


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.sum(np.exp(x - m))))
