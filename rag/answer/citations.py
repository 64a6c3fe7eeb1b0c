"""A hit as a numbered citation, in the display script."""

from __future__ import annotations

from collections.abc import Sequence

from rag.text.normalise import convert_script
from rag.text.script import display
from rag.types import Citation, Hit


def make_citation(
    n: int, hit: Hit, spans: Sequence[tuple[int, int]], config: str | None
) -> Citation:
    shown, moved = display(hit.text, config, sorted(set(spans)))
    return Citation(
        n=n,
        doc_id=hit.doc_id,
        para_id=hit.para_id,
        title=convert_script(hit.title, config) if config else hit.title,
        source=hit.source,
        text=shown,
        score=hit.score,
        highlights=tuple(moved),
        date=hit.date,
        original_text=hit.text if shown != hit.text else None,
        judge=hit.judge,
    )
