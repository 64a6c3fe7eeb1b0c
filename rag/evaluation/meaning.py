"""The meaning check of an answer: does it state the gold answer, in whatever words or language?

The substring metric (``answer_in_text``) cannot tell "the right answer in other words" from a
wrong answer: "Chan Cho-hang chairs the Council" does not hold the gold span 陳祖恒, and an
English sentence that translates 位串 as "bit strings" does not hold 位串. The numeric match
(``answer_in_text_or_value``) catches numbers stated another way (330億 = 33 billion); this
catches the rest. With a local model loaded (``RAG_LLM=local``), ``rag eval`` asks it, for
every answer that the substring and numeric matches did not count:

    Question: <question>
    Reference answer: <gold answer> (or: <another gold answer>)
    Answer to grade: <the answer, citation markers removed>
    Does the answer to grade state the reference answer? ...

and counts the answer right by meaning when P(yes) (the first answer token's "yes" mass against
"no", as the judge reads it) is at least :data:`MEANING_FLOOR`. ``answer_by_meaning`` is then:
in text, or by value, or by meaning. Both figures are reported; neither is gated.

How far the check can be trusted is measured against answers labelled by hand:
``benchmarks/meaning_labels.py`` (its precision and recall are in ``evals/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.llm.engine import LocalModel
from rag.llm.judge import NO_WORDS, YES_WORDS, p_yes, single_tokens
from rag.text.sentences import strip_markers

# P(yes) at or above it counts the answer right by meaning. The small model says "yes" readily
# (wrong answers on the question's topic score 0.5-0.82), so the floor is high and errs towards not
# counting: chosen on made-up dev probes (`benchmarks/meaning_labels.py probe`, AUC 0.79: at 0.80,
# 4 of 7 right answers counted and 2 of 8 wrong ones), never on the hand labels.
MEANING_FLOOR = 0.8
MAX_ANSWER_CHARS = 1500  # a longer answer is graded on its first 1,500 characters
MAX_REFERENCES = 4  # gold answers shown to the model (the sets give 1-3)

SYSTEM = "You grade answers against a reference answer. Reply with one word: yes or no."
_QUESTION, _REFERENCE, _ANSWER = "\u241fQUESTION\u241f", "\u241fREFERENCE\u241f", "\u241fANSWER\u241f"
USER = (
    "Question: " + _QUESTION + "\n"
    "Reference answer: " + _REFERENCE + "\n\n"
    "Answer to grade:\n" + _ANSWER + "\n\n"
    "Does the answer to grade state the reference answer (the same fact: in any language, script "
    "or wording, and extra details do not matter)? Reply yes or no."
)


def references(golds: Sequence[str]) -> str:
    """The gold answers as the prompt shows them: ``a`` or ``a (or: b; c)``."""
    kept: list[str] = []
    for g in golds:
        g = " ".join(g.split())
        if g and g not in kept:
            kept.append(g)
    kept = kept[:MAX_REFERENCES]
    if len(kept) <= 1:
        return kept[0] if kept else ""
    return f"{kept[0]} (or: {'; '.join(kept[1:])})"


class MeaningCheck:
    """P(yes) that an answer states a gold answer, from one :class:`LocalModel`."""

    def __init__(self, model: LocalModel, *, floor: float = MEANING_FLOOR) -> None:
        self.model = model
        self.floor = floor
        self._yes = single_tokens(model, YES_WORDS)
        self._no = single_tokens(model, NO_WORDS)
        if not self._yes or not self._no:
            raise ValueError(f"{model.path.name}: 'yes'/'no' are not single tokens; the meaning check needs them")
        rendered = model.format_chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}])
        self._head, self._tail = rendered.split(_ANSWER)  # the question and gold answers go in the head

    def p_yes(self, question: str, golds: Sequence[str], answer: str) -> float:
        """P(yes) that ``answer`` (citation markers are removed) states one of ``golds``."""
        head = self._head.replace(_QUESTION, " ".join(question.split())).replace(_REFERENCE, references(golds))
        text = strip_markers(answer, tidy=True).strip()[:MAX_ANSWER_CHARS]
        prefix = self.model.tokenize(head)  # the question and its gold answers: shared by its answers
        suffix = self.model.tokenize(text + self._tail)
        logits = self.model.next_token_logits(prefix, suffix)
        return p_yes(logits[self._yes], logits[self._no])

    def states(self, question: str, golds: Sequence[str], answer: str) -> tuple[bool, float]:
        p = self.p_yes(question, golds, answer)
        return p >= self.floor, p


def meaning_check_of(svc: Any) -> MeaningCheck | None:
    """The meaning check on the local model ``svc`` loaded for its judge (``RAG_LLM=local``);
    None without one (lean mode, a model server's judge)."""
    from rag.answer.written.factory import local_model_of

    model = local_model_of(getattr(svc, "judge", None))
    if model is None:
        return None
    try:
        return MeaningCheck(model)
    except ValueError:
        return None


def by_meaning(check: MeaningCheck | None, row: dict[str, Any], question: str, golds: Sequence[str],
               answer: str) -> None:
    """Set ``row["answer_by_meaning"]`` (and ``meaning_p_yes`` when the model was asked): in text or
    by value already, else the model's verdict. Nothing is set without a check, for an abstention
    or when there is no gold answer."""
    if check is None or row.get("abstained") or not answer.strip() or not golds:
        return
    if row.get("answer_in_text_or_value"):
        row["answer_by_meaning"] = True
        return
    ok, p = check.states(question, golds, answer)
    row["answer_by_meaning"] = ok
    row["meaning_p_yes"] = round(p, 4)
