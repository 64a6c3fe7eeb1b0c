"""The steps of an answer as it happens, for the edges that show it as it comes (the chat,
``/v1`` streaming, ``rag ask``): match on the type, ``case Piece(text): ...``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rag.types import Answer, Hit


@dataclass(frozen=True)
class Retrieved:
    """Retrieval is done: the ranked paragraphs the answer is drawn from."""

    hits: list[Hit]


@dataclass(frozen=True)
class Draft:
    """The extractive answer, shown while a language model writes (a generator is set)."""

    answer: Answer


@dataclass(frozen=True)
class Piece:
    """A checked sentence of the written answer, final as shown (the pieces join to its text)."""

    text: str


@dataclass(frozen=True)
class Pending:
    """The sentence being written, not yet checked (the chat shows it greyed); after every token."""

    text: str


@dataclass(frozen=True)
class Final:
    """The answer: the last step, always."""

    answer: Answer


Step = Retrieved | Draft | Piece | Pending | Final


def final_answer(steps: Iterable[Step]) -> Answer:
    """The answer the steps end with (their :class:`Final`), for callers that want only that."""
    answer = None
    for step in steps:
        if isinstance(step, Final):
            answer = step.answer
    if answer is None:
        raise AssertionError("the answer steps end with Final")
    return answer
