"""Follow-ups made standalone by the local model before retrieval (``RAG_LLM=local``).

A follow-up that leans on the conversation ("他認為…", "What about its budget?": see
``rag.question.depends_on_history``) is rewritten from the last exchange into a question that
stands alone ("陳祖恒認為…"), in the follow-up's own language and script. Retrieval, the judge
and the answer read the rewrite; without the model (or when its rewrite is unusable) retrieval
prepends the previous question instead.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from rag.llm.engine import LocalModel
from rag.text.language import ZH_POINTING_CHARS, is_chinese_text
from rag.text.normalise import Normaliser
from rag.text.sentences import content_words, matching_form, question_units, strip_markers, units

MAX_TOKENS = 60  # one question
MAX_TURN_CHARS = 300  # of the previous answer shown to the model
TIMEOUT_S = 10.0
KEEP_SHARE = 0.75  # of the question's own content words a rewrite keeps
_POINTING = re.compile(f"[{ZH_POINTING_CHARS}]")

SYSTEM = (
    "You rewrite the last question of a conversation so that it can be understood on its own. Replace "
    "every pronoun or reference (it, they, he, this, 他, 它, 這個, 该…) with the name or thing it refers to "
    "in the conversation, and keep everything else as asked. Write it in the same language and the same "
    "script as the last question. Reply with the rewritten question only."
)
_LABEL = re.compile(r"^\s*(?:rewritten question|question|改寫|改写|問題|问题)\s*[:：]\s*", re.IGNORECASE)


def _turns(history: Sequence[dict[str, Any]]) -> str:
    """The last user question and the answer after it, as the model reads them."""
    lines: list[str] = []
    last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=None)
    if last_user is None:
        return ""
    for m in history[last_user:last_user + 2]:
        text = strip_markers(str(m.get("content") or "")).strip()[:MAX_TURN_CHARS]
        lines.append(f"{'User' if m.get('role') == 'user' else 'Assistant'}: {text}")
    return "\n".join(lines)


def usable(rewrite: str, question: str, turns: str = "", normaliser: Normaliser | None = None) -> bool:
    """A rewrite keeps the question's script family, stays a question's length, keeps at least
    KEEP_SHARE of the question's own content words (the pointing ones aside), and brings in
    something of the conversation (``turns``) the question lacked: else it resolved nothing
    ("那资助呢？" -> "资助是什么？"). Words and units are compared in ``normaliser``'s matching form."""
    if not rewrite or len(rewrite) > max(4 * len(question), 200) or "\n" in rewrite:
        return False
    if is_chinese_text(rewrite) != is_chinese_text(question):
        return False
    own = [w for w in content_words(question, normaliser) if not _POINTING.search(w)]
    have = matching_form(rewrite, normaliser)
    if own and sum(matching_form(w, normaliser) in have for w in own) < KEEP_SHARE * len(own):
        return False  # it dropped what the question itself asks ("這個中心的主任" -> "生產力局的主任")
    if not turns:
        return True
    added = question_units(rewrite, normaliser) - question_units(question, normaliser)
    return bool(added & (units(turns, normaliser) | question_units(turns, normaliser)))


class Rewriter:
    """The local model's standalone rewrites, kept per (question, last exchange) in a small LRU."""

    def __init__(self, model: LocalModel, *, timeout_s: float = TIMEOUT_S, size: int = 256) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, str, Normaliser | None], str | None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def rewrite(
        self, question: str, history: Sequence[dict[str, Any]], normaliser: Normaliser | None = None
    ) -> str | None:
        """The standalone form of ``question`` after ``history``, or None when none is usable
        (judged in ``normaliser``'s matching form: the index's)."""
        turns = _turns(history)
        if not turns:
            return None
        key = (question, turns, normaliser)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Conversation:\n{turns}\n\nLast question: {question}\n\n"
                                                "Rewritten question:"}]
        try:
            prompt = self.model.tokenize(self.model.format_chat(messages))
            text = "".join(self.model.stream(prompt, max_tokens=MAX_TOKENS, stop=("\n",),
                                             deadline=time.monotonic() + self.timeout_s))
        except Exception:  # noqa: BLE001 - any failure (a timeout too): retrieval prepends instead
            text = ""
        text = _LABEL.sub("", text.strip()).strip().strip("\"'“”「」")
        out = text if usable(text, question, turns, normaliser) else None
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return out
