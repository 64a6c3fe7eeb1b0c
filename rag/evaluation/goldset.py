"""Gold sets: load a JSONL file, check its shape, and check it against the paragraphs it cites.

One question a line::

    {"id": "zh-Hant-chair", "question": "生產力局主席是誰？", "lang": "zh-Hant",
     "answers": ["陳祖恒"], "gold": ["<doc_id>#p3"]}

- ``gold`` lists every paragraph that answers the question; ``answers`` are short strings that
  occur verbatim in a gold paragraph (for English questions: the Chinese span of the source).
- Empty ``gold`` and ``answers``: the corpus does not answer the question (the system should
  abstain).
- A follow-up carries the conversation before it as ``history`` (``[{"role": "user", ...},
  {"role": "assistant", ...}]``), passed unchanged to ``ask``/``search``; it is answerable only
  with that history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import InputError

LANGS = ("zh-Hant", "zh-Hans", "en")
ROLES = ("user", "assistant", "system")


@dataclass(frozen=True)
class GoldItem:
    id: str
    question: str
    lang: str
    answers: tuple[str, ...]
    gold: tuple[str, ...]
    history: tuple[dict[str, str], ...] = ()
    source: str = ""  # "file:line", for messages
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def answerable(self) -> bool:
        return bool(self.gold)

    @property
    def is_followup(self) -> bool:
        return bool(self.history)


def _parse_item(obj: Any, where: str) -> GoldItem:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("id", "question", "lang", "answers", "gold") if k not in obj]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    if not isinstance(obj["id"], str) or not obj["id"].strip():
        raise InputError(f"{where}: 'id' must be a non-empty string")
    if not isinstance(obj["question"], str) or not obj["question"].strip():
        raise InputError(f"{where}: 'question' must be a non-empty string")
    if obj["lang"] not in LANGS:
        raise InputError(f"{where}: 'lang' must be one of {', '.join(LANGS)}, got {obj['lang']!r}")
    for key in ("answers", "gold"):
        v = obj[key]
        if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
            raise InputError(f"{where}: {key!r} must be a list of non-empty strings")
    if bool(obj["answers"]) != bool(obj["gold"]):
        raise InputError(
            f"{where}: 'answers' and 'gold' must both be empty (unanswerable) or both non-empty"
        )
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(
        isinstance(t, dict) and t.get("role") in ROLES and isinstance(t.get("content"), str)
        for t in history
    ):
        raise InputError(
            f"{where}: 'history' must be a list of {{'role': user|assistant, 'content': str}}"
        )
    known = {"id", "question", "lang", "answers", "gold", "history"}
    return GoldItem(
        id=obj["id"],
        question=obj["question"],
        lang=obj["lang"],
        answers=tuple(obj["answers"]),
        gold=tuple(obj["gold"]),
        history=tuple({"role": t["role"], "content": t["content"]} for t in history),
        source=where,
        extra={k: v for k, v in obj.items() if k not in known},
    )


def load_gold(path: Path | str) -> list[GoldItem]:
    """Read and shape-check one gold JSONL file; raises ``InputError`` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"gold set not found: {path}")
    items: list[GoldItem] = []
    seen: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: invalid JSON ({e.msg})") from e
        item = _parse_item(obj, where)
        if item.id in seen:
            raise InputError(f"{where}: duplicate id {item.id!r} (first at {seen[item.id]})")
        seen[item.id] = where
        items.append(item)
    if not items:
        raise InputError(f"gold set is empty: {path}")
    return items


def load_gold_files(paths: Iterable[Path | str]) -> list[GoldItem]:
    """Load several gold files; ids must be unique across them."""
    items: list[GoldItem] = []
    seen: dict[str, str] = {}
    for p in paths:
        for item in load_gold(p):
            if item.id in seen:
                raise InputError(f"{item.source}: duplicate id {item.id!r} (first at {seen[item.id]})")
            seen[item.id] = item.source
            items.append(item)
    return items


def validate_gold(items: Iterable[GoldItem], paragraphs: Mapping[str, str]) -> list[str]:
    """Problems of the gold set against ``paragraphs`` (para_id -> cleaned text); [] when sound.

    A gold id must exist; every answer string must occur verbatim in at least one of the item's
    gold paragraphs; every gold paragraph must contain at least one of the answer strings (so a
    paragraph that stops answering after re-cleaning is caught too).
    """
    problems: list[str] = []
    for item in items:
        texts = {}
        for pid in item.gold:
            if pid not in paragraphs:
                problems.append(f"{item.id}: gold paragraph {pid!r} does not exist")
            else:
                texts[pid] = paragraphs[pid]
        if len(texts) < len(item.gold):
            continue
        for ans in item.answers:
            if not any(ans in t for t in texts.values()):
                problems.append(
                    f"{item.id}: answer {ans!r} occurs in none of its gold paragraphs "
                    f"{', '.join(item.gold)}"
                )
        for pid, t in texts.items():
            if not any(ans in t for ans in item.answers):
                problems.append(f"{item.id}: gold paragraph {pid} contains none of the answers")
    return problems


def gold_counts(items: Iterable[GoldItem]) -> dict[str, int]:
    """How many questions per language, unanswerable and follow-up."""
    items = list(items)
    out = {lang: sum(1 for i in items if i.lang == lang) for lang in LANGS}
    out["unanswerable"] = sum(1 for i in items if not i.answerable)
    out["followup"] = sum(1 for i in items if i.is_followup)
    out["total"] = len(items)
    return out


def paragraphs_from_golden(folder: Path | str) -> dict[str, str]:
    """para_id -> text from the cleaner's golden files (``tests/golden/*.json``).

    A file holds a list of ``{"para_id", "heading", "text"}`` objects, or an object with that
    list under ``"paragraphs"``.
    """
    out: dict[str, str] = {}
    for f in sorted(Path(folder).glob("*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        rows = data.get("paragraphs", []) if isinstance(data, dict) else data
        for row in rows:
            if isinstance(row, dict) and "para_id" in row and "text" in row:
                out[row["para_id"]] = row["text"]
    return out


def paragraphs_from_corpus(paths: Iterable[Path | str]) -> dict[str, str]:
    """para_id -> text as the current cleaner produces it from the corpus files or folders."""
    from rag.ingest.corpus import load_corpus

    docs, _skipped = load_corpus([Path(p) for p in paths])
    return {p.para_id: p.text for d in docs for p in d.paragraphs}
