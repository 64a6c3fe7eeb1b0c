"""The review of drafted gold questions (``rag gold review``): accept, edit, drop or skip each.

Accepted drafts are appended to the output as gold-set lines (``id``, ``question``, ``lang``,
``answers``, ``gold``: what ``rag eval`` reads, as ``evals/gold.jsonl``). The decisions are kept
beside it in ``<out>.review.json``, so a rerun shows only the drafts not decided yet (the skipped
ones among them); a draft whose text changed since (drafted again) is shown again. The output
file is the record of what was accepted: an id it holds is never appended twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click

from rag.answer.frame import locate_span, trim_span
from rag.errors import InputError
from rag.evaluation.goldset import GoldItem, load_gold
from rag.text.normalise import Normaliser

STATE_VERSION = 1
ACTIONS = {"a": "accept", "e": "edit", "d": "drop", "s": "skip", "q": "quit"}


def state_path(out: Path) -> Path:
    """Where the review of ``out`` keeps its decisions."""
    return out.with_name(out.name + ".review.json")


def draft_key(item: GoldItem) -> str:
    """A draft's identity for the review: its id and a digest of what it says."""
    said = json.dumps([item.question, item.lang, list(item.answers), list(item.gold)], ensure_ascii=False)
    return f"{item.id}:{hashlib.sha256(said.encode()).hexdigest()[:12]}"


def gold_line(item: GoldItem) -> str:
    """``item`` as one line of a gold set: the fields ``rag eval`` reads, nothing of the draft's."""
    row: dict[str, Any] = {"id": item.id, "question": item.question, "lang": item.lang,
                           "answers": list(item.answers), "gold": list(item.gold)}
    if item.history:
        row["history"] = list(item.history)
    return json.dumps(row, ensure_ascii=False)


@dataclass
class Review:
    """The review of one drafts file into one gold file: what is decided, what is left."""

    drafts: list[GoldItem]
    out: Path
    decisions: dict[str, str] = field(default_factory=dict)  # draft_key -> "accepted" | "dropped"
    accepted_ids: set[str] = field(default_factory=set)  # ids the output holds

    @classmethod
    def open(cls, drafts_path: Path, out: Path) -> Review:
        drafts = load_gold(drafts_path)
        review = cls(drafts, out)
        state = state_path(out)
        if state.exists():
            try:
                data = json.loads(state.read_text(encoding="utf-8"))
                review.decisions = {str(k): str(v) for k, v in data["decisions"].items()}
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError):
                raise InputError(f"{state} is not a review state file: delete it to review every draft again") from None
        if out.exists() and out.stat().st_size:
            review.accepted_ids = {item.id for item in load_gold(out)}
        return review

    def pending(self) -> list[GoldItem]:
        """The drafts not decided yet, in file order."""
        return [d for d in self.drafts if draft_key(d) not in self.decisions and d.id not in self.accepted_ids]

    def accept(self, draft: GoldItem, item: GoldItem | None = None) -> None:
        """Append ``item`` (the draft as edited; the draft itself by default) to the output."""
        item = item or draft
        if item.id not in self.accepted_ids:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            with self.out.open("a", encoding="utf-8") as fh:
                fh.write(gold_line(item) + "\n")
            self.accepted_ids.add(item.id)
        self._decide(draft, "accepted")

    def drop(self, draft: GoldItem) -> None:
        self._decide(draft, "dropped")

    def _decide(self, draft: GoldItem, decision: str) -> None:
        self.decisions[draft_key(draft)] = decision
        state = state_path(self.out)
        tmp = state.with_name(state.name + ".tmp")
        tmp.write_text(json.dumps({"version": STATE_VERSION, "decisions": self.decisions}, ensure_ascii=False,
                                  indent=1), encoding="utf-8")
        os.replace(tmp, state)  # atomic: an interrupted review keeps the decisions before it

    def counts(self) -> dict[str, int]:
        decided = [self.decisions.get(draft_key(d)) for d in self.drafts]
        return {"accepted": sum(d.id in self.accepted_ids for d in self.drafts),
                "dropped": decided.count("dropped"), "left": len(self.pending())}


def with_answer(draft: GoldItem, answer: str, normaliser: Normaliser) -> GoldItem:
    """``draft`` answered by ``answer``, as its gold paragraphs write it (script-blind match); the
    gold paragraphs that do not hold it are left out. Raises ``InputError`` when none does."""
    texts = _gold_texts(draft)
    answers: list[str] = []
    gold: list[str] = []
    for pid in draft.gold:
        text = texts.get(pid)
        found = locate_span(trim_span(answer), text, normaliser) if text is not None else None
        if found is not None:
            gold.append(pid)
            span = text[found[0]:found[1]] if text is not None else answer
            if span not in answers:
                answers.append(span)
    if not gold:
        raise InputError(f"{answer!r} is not in the paragraph: copy the answer from it")
    return replace(draft, answers=tuple(answers), gold=tuple(gold))


def _gold_texts(draft: GoldItem) -> dict[str, str]:
    """para_id -> text of the draft's gold paragraphs it carries (its own and the ``also`` ones)."""
    texts = {}
    if isinstance(draft.extra.get("paragraph"), str) and isinstance(draft.extra.get("para_id"), str):
        texts[draft.extra["para_id"]] = draft.extra["paragraph"]
    for other in draft.extra.get("also") or []:
        if isinstance(other, dict) and isinstance(other.get("text"), str):
            texts[str(other.get("para_id"))] = other["text"]
    return texts


def highlight(text: str, spans: Sequence[str], normaliser: Normaliser, *, styled: bool) -> str:
    """``text`` with every occurrence of ``spans`` (script-blind) in bold (or in ⟦ ⟧ without colour)."""
    marks: list[tuple[int, int]] = []
    for span in spans:
        start = 0
        while start < len(text):
            found = locate_span(span, text[start:], normaliser)
            if found is None:
                break
            marks.append((start + found[0], start + found[1]))
            start += found[1]
    out, at = [], 0
    for a, b in sorted(marks):
        if a < at:
            continue
        out.append(text[at:a])
        out.append(click.style(text[a:b], bold=True, fg="yellow") if styled else f"⟦{text[a:b]}⟧")
        at = b
    out.append(text[at:])
    return "".join(out)


def show(draft: GoldItem, n: int, total: int, normaliser: Normaliser, *, styled: bool) -> list[str]:
    """The lines that present one draft to the reviewer."""
    extra = draft.extra
    check = extra.get("self_check")
    lines = [f"\n[{n}/{total}] {draft.id}"]
    if draft.answerable:
        lines.append(f"  question ({draft.lang}): {draft.question}")
        lines.append(f"  answer: {' / '.join(draft.answers)}    gold: {', '.join(draft.gold)}")
        if isinstance(check, (int, float)):
            lines.append(f"  self-check: the judge's P(yes) that the paragraph answers it = {check:.2f}")
    else:
        lines.append(f"  UNANSWERABLE question ({draft.lang}): {draft.question}")
        if isinstance(check, (int, float)):
            near = ", ".join(f"{pid} {p:.2f}" for pid, p in (extra.get("neighbours") or {}).items())
            found = ", ".join(f"{pid} {p:.2f}" for pid, p in (extra.get("searched") or {}).items())
            lines.append(f"  the judge's P(yes): this paragraph {check:.2f}" + (f"; neighbours {near}" if near else "")
                         + (f"; found by a search {found}" if found else ""))
        lines.append("  accept it only if no paragraph of the corpus answers it")
    lines += [f"  ! {flag}" for flag in extra.get("flags") or []]
    texts = _gold_texts(draft)
    judged = {str(o.get("para_id")): o.get("p_yes") for o in extra.get("also") or [] if isinstance(o, dict)}
    for pid, text in texts.items():
        if pid == extra.get("para_id"):
            about = f"drafted from it{': ' + str(extra['title']) if extra.get('title') else ''}"
        else:
            p = judged.get(pid)
            about = ("also holds the answer" + (f", judge P(yes) {p:.2f}" if isinstance(p, (int, float)) else "")
                     + (": in gold" if pid in draft.gold else ": not in gold"))
        lines.append(f"  --- {pid} ({about})")
        lines.append("  " + highlight(text, draft.answers, normaliser, styled=styled).replace("\n", "\n  "))
    if not texts:
        lines.append("  (the drafts file does not carry the paragraph)")
    return lines


Prompt = Callable[..., Any]


def run_review(review: Review, *, accept_all: bool = False, normaliser: Normaliser | None = None,
               prompt: Prompt = click.prompt, echo: Callable[[str], None] = click.echo,
               styled: bool = False) -> dict[str, int]:
    """Review the pending drafts (``accept_all``: accept each without asking); returns the counts."""
    normaliser = normaliser or Normaliser()
    todo = review.pending()
    for n, draft in enumerate(todo, start=1):
        if accept_all:
            review.accept(draft)
            continue
        for line in show(draft, n, len(todo), normaliser, styled=styled):
            echo(line)
        current = draft
        while True:
            action = ACTIONS[prompt("  [a]ccept [e]dit [d]rop [s]kip [q]uit", type=click.Choice(list(ACTIONS)),
                                    show_choices=False)]
            if action == "accept":
                review.accept(draft, current)
            elif action == "drop":
                review.drop(draft)
            elif action == "edit":
                current = _edit(current, draft, prompt, echo, normaliser)
                for line in show(current, n, len(todo), normaliser, styled=styled)[1:]:
                    echo(line)
                continue
            elif action == "quit":
                return review.counts()
            break  # skip: left for a later run
    return review.counts()


def _edit(current: GoldItem, draft: GoldItem, prompt: Prompt, echo: Callable[[str], None],
          normaliser: Normaliser) -> GoldItem:
    """``current`` (``draft`` as edited so far) with the question and, answerable, the answer the
    reviewer types; the answer is looked for in every gold paragraph of the draft."""
    question = str(prompt("  question", default=current.question)).strip() or current.question
    edited = replace(draft, question=question)
    if not draft.answerable:
        return edited
    while True:
        answer = str(prompt("  answer (copied from the paragraph)", default=current.answers[0])).strip()
        try:
            return with_answer(edited, answer, normaliser)
        except InputError as exc:
            echo(f"  {exc}")
