"""``[n]`` citation markers: the spellings models use, stripping, listing and renumbering."""

from __future__ import annotations

import re

from rag.text import sentences
from rag.text.sentences import MARKER

__all__ = ["MARKER", "cited_numbers", "normalise_markers", "renumber", "strip_markers"]

# Marker spellings models use besides [n]: [1, 2], [1-2] is left alone, 【1】, [^1].
_MARKER_LIST = re.compile(r"\[\s*(\d+(?:\s*[,，、]\s*\d+)+)\s*\]")
_MARKER_VARIANT = re.compile(r"【\s*(\d+)\s*】|\[\^\s*(\d+)\s*\]|［\s*(\d+)\s*］")


def normalise_markers(text: str) -> str:
    """Rewrite ``[1, 2]``, ``【1】``, ``[^1]``, ``［1］`` as ``[1][2]`` / ``[1]``."""
    text = _MARKER_LIST.sub(
        lambda m: "".join(f"[{d}]" for d in re.findall(r"\d+", m.group(1))), text
    )
    return _MARKER_VARIANT.sub(lambda m: f"[{next(g for g in m.groups() if g)}]", text)


def strip_markers(text: str) -> str:
    """A written sentence as a reader compares it: ``text`` without its ``[n]`` markers, the
    space they leave before punctuation and the space around it."""
    return sentences.strip_markers(text, tidy=True)


def cited_numbers(text: str) -> list[int]:
    """The distinct ``[n]`` markers of ``text`` in order of first appearance."""
    seen: list[int] = []
    for d in MARKER.findall(text):
        if int(d) not in seen:
            seen.append(int(d))
    return seen


def renumber(text: str, mapping: dict[int, int]) -> str:
    """Rewrite ``[old]`` as ``[mapping[old]]`` (markers not in the mapping are dropped)."""
    return MARKER.sub(
        lambda m: f"[{mapping[int(m.group(1))]}]" if int(m.group(1)) in mapping else "", text
    )

