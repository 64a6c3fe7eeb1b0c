"""What the edges show: the ``/api/search`` body (every hit a citation with highlights), an
answer in another display script, and an answer cut into pieces for streaming."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rag.answer.citations import make_citation
from rag.answer.extractive import best_spans
from rag.question import Question
from rag.text.normalise import convert_script
from rag.text.script import display, script_config
from rag.text.sentences import CLAUSE_ENDS, MARKER, sentence_cuts
from rag.types import Answer, Hit

# A marker with the spaces around it is a piece of its own.
_STREAM_MARKER = re.compile(rf"[ \t]*{MARKER.pattern}[ \t]*")


def stream_pieces(answer_text: str) -> Iterator[str]:
    """Pieces of an answer for streaming: sentences and ``[n]`` markers; they join to the input."""
    cuts = {0, len(answer_text)}
    for m in _STREAM_MARKER.finditer(answer_text):
        cuts.update((m.start(), m.end()))
    # Sentence ends (and colons, so a long list streams item by item), spaces kept with them.
    cuts.update(sentence_cuts(answer_text, extra_ends=CLAUSE_ENDS, spaces=True))
    points = sorted(cuts)
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            yield answer_text[a:b]


def search_body(question: Question, hits: list[Hit], *, script: str = "original") -> dict[str, Any]:
    """The body of ``POST /api/search``: every hit as a citation, ``n`` = rank, with highlights."""
    config = script_config(script)
    return {
        "hits": [
            make_citation(n, hit, best_spans(question, hit.text), config).to_dict()
            for n, hit in enumerate(hits, 1)
        ]
    }


def in_script(answer: Answer, script: str | None) -> Answer:
    """``answer`` (shown in the original script) converted to the display ``script``.

    The chat re-renders a shown answer with this when the script toggle changes, instead of
    asking again; the service converts its answers the same way, so both agree exactly.
    """
    config = script_config(script)
    if not config:
        return answer
    citations = tuple(
        replace(c, title=convert_script(c.title, config), text=shown, highlights=tuple(moved),
                original_text=c.text if shown != c.text else None)
        for c in answer.citations
        for shown, moved in [display(c.text, config, c.highlights)]
    )
    return replace(answer, answer=convert_script(answer.answer, config), citations=citations)
