"""Display scripts: which OpenCC conversion a script name means, and text converted with its
spans (highlights) moved onto the converted text."""

from __future__ import annotations

from collections.abc import Sequence

from rag.errors import InputError
from rag.text.normalise import convert_script
from rag.text.sentences import split_sentences

SCRIPTS: dict[str, str | None] = {
    "original": None,
    "hant": "s2t",
    "hans": "t2s",
    "hk": "s2hk",
    "tw": "s2twp",
}


def script_config(script: str | None) -> str | None:
    """The OpenCC config of a display script name (None = show the original text)."""
    if script is None:
        return None
    try:
        return SCRIPTS[script]
    except KeyError:
        raise InputError(f"script must be one of {', '.join(SCRIPTS)}; got {script!r}") from None


def display(
    text: str, config: str | None, spans: Sequence[tuple[int, int]] = ()
) -> tuple[str, list[tuple[int, int]]]:
    """``text`` in the display script and ``spans`` moved onto it.

    The text is converted sentence by sentence, so a conversion that changes lengths (phrase
    tables such as ``s2twp``: U盘 -> 隨身碟) still maps every sentence boundary exactly.
    """
    if not config:
        return text, list(spans)
    cuts = sorted(
        {
            0,
            len(text),
            *(p for s in split_sentences(text) for p in s),
            *(p for s in spans for p in s),
        }
    )
    pieces = [convert_script(text[a:b], config) for a, b in zip(cuts, cuts[1:], strict=False)]
    new_at = {cuts[0]: 0}
    pos = 0
    for cut, piece in zip(cuts[1:], pieces, strict=True):
        pos += len(piece)
        new_at[cut] = pos
    return "".join(pieces), [(new_at[a], new_at[b]) for a, b in spans]
