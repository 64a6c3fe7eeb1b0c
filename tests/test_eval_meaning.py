"""The meaning check of answers (``rag.evaluation.meaning``): counted right when the model says the
answer states the gold answer, reported beside the substring and numeric matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import RagError
from rag.evaluation.answers import aggregate_answers, answer_outcomes
from rag.evaluation.goldset import GoldItem
from rag.evaluation.meaning import (
    MEANING_FLOOR,
    MeaningCheck,
    by_meaning,
    meaning_check_of,
    references,
)
from rag.evaluation.metrics import aggregate
from rag.evaluation.runner import run_gold
from rag.types import Answer, Citation

_WORDS = {"yes": 1, "Yes": 2, "YES": 3, "no": 4, "No": 5, "NO": 6}
_OFFSET = 10


class _StubModel:
    """Says "yes" when the graded answer mentions ``knows``; tokens are characters."""

    path = Path("stub.gguf")

    def __init__(self, knows: str) -> None:
        self.knows = knows
        self.asked: list[str] = []

    def tokenize(self, text: str) -> list[int]:
        return [_WORDS[text]] if text in _WORDS else [ord(c) + _OFFSET for c in text]

    def format_chat(self, messages) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def next_token_logits(self, prefix, suffix) -> np.ndarray:
        text = "".join(chr(t - _OFFSET) for t in suffix)
        self.asked.append(text)
        logits = np.zeros(_OFFSET, dtype=np.float32)
        yes = 3.0 if self.knows in text else -3.0
        logits[1:4], logits[4:7] = yes, -yes
        return logits


class _Judge:
    kind = "local"

    def __init__(self, model) -> None:
        self.model = model


class _Says:
    """Gives one answer to every question, citing one paragraph; ``judge``: its model's judge."""

    encoder = None

    def __init__(self, reply: str, *, abstain: bool = False, judge=None) -> None:
        self.reply, self.abstain, self.judge = reply, abstain, judge

    def search(self, query, k=10, *, history=None):
        return []

    def ask(self, question, k=5, *, history=None):
        cite = Citation(n=1, doc_id="d", para_id="d#p1", title="", source="", text="問題實例是字母表上的字符串。", score=1.0)
        return Answer(self.reply, self.abstain, () if self.abstain else (cite,))

    def paragraph(self, para_id):
        raise RagError(f"no paragraph {para_id}")


ITEM = GoldItem("en-bitstring", "What is another term for the string of a problem instance?", "en", ("位串",), ("d#p1",))


def _row(reply: str, model: _StubModel | None, *, abstain: bool = False) -> dict:
    svc = _Says(reply, abstain=abstain, judge=_Judge(model) if model is not None else None)
    return run_gold(svc, [ITEM])["rows"][0]  # type: ignore[arg-type]


def test_an_answer_in_other_words_is_right_by_meaning_and_reported_beside_the_substring():
    model = _StubModel("bit string")
    row = _row("Another term for it is a bit string [1].", model)
    assert (row["answer_in_text"], row["answer_in_text_or_value"], row["answer_by_meaning"]) == (False, False, True)
    assert row["meaning_p_yes"] >= MEANING_FLOOR
    assert model.asked == ["Another term for it is a bit string." + model.asked[0].split("bit string.")[1]]
    assert "[1]" not in model.asked[0]  # graded without its citation markers


def test_a_wrong_answer_stays_wrong_and_an_answer_in_text_does_not_ask_the_model():
    model = _StubModel("bit string")
    wrong = _row("A problem instance is a string over an alphabet [1].", model)
    assert wrong["answer_by_meaning"] is False and wrong["meaning_p_yes"] < MEANING_FLOOR
    asked = len(model.asked)
    in_text = _row("另一個說法是位串 [1]。", model)
    assert in_text["answer_in_text"] and in_text["answer_by_meaning"] is True and "meaning_p_yes" not in in_text
    assert len(model.asked) == asked
    abstained = _row("The documents do not answer this.", model, abstain=True)
    assert "answer_by_meaning" not in abstained and len(model.asked) == asked
    metrics = aggregate([wrong, in_text, abstained])
    assert metrics["answer_in_text"] == pytest.approx(1 / 3) and metrics["answer_by_meaning"] == pytest.approx(1 / 3)


def test_without_a_local_model_nothing_is_claimed():
    row = _row("Another term for it is a bit string [1].", None)
    assert "answer_by_meaning" not in row and "answer_by_meaning" not in aggregate([row])
    assert meaning_check_of(_Says("x")) is None
    assert meaning_check_of(_Says("x", judge=type("ServerJudge", (), {"kind": "server"})())) is None


def test_the_external_sets_answers_carry_it_in_their_groups_and_baseline_pairs():
    check = MeaningCheck(_StubModel("brown"))  # type: ignore[arg-type]
    rows = []
    for i, (answer, in_text) in enumerate([("Its body is brown [1].", False), ("褐色 [1]", True),
                                           ("It lives in forests [1].", False)]):
        row = {"id": f"q{i}", "lang": "en", "question": "What colour is the stag's body?", "abstained": False,
               "answer_in_text": in_text, "answer_in_text_or_value": in_text}
        by_meaning(check, row, row["question"], ["褐色", "brown"], answer)
        rows.append(row)
    assert [r["answer_by_meaning"] for r in rows] == [True, True, False]
    groups = aggregate_answers(rows, [])
    assert groups["answer_by_meaning"] == pytest.approx(2 / 3) and "answer_by_meaning" in groups["intervals"]
    assert [o["values"]["answer_by_meaning"] for o in answer_outcomes(rows, [])] == [1.0, 1.0, 0.0]
    lean = [{k: v for k, v in r.items() if k not in ("answer_by_meaning", "meaning_p_yes")} for r in rows]
    assert "answer_by_meaning" not in aggregate_answers(lean, []) and \
        "answer_by_meaning" not in answer_outcomes(lean, [])[0]["values"]


def test_the_gold_answers_are_shown_once_each():
    assert references(["位串", "bitstrings", "位串", " bit  strings "]) == "位串 (or: bitstrings; bit strings)"
    assert references(["330億"]) == "330億" and references([]) == ""


@pytest.mark.model
def test_the_real_model_tells_a_stated_answer_from_an_answer_on_the_same_topic(local_judge):
    """Three clear pairs of the dev probes (benchmarks/meaning_labels.py): the answer that states the
    gold answer, in English for a Chinese gold span, scores well above the one that does not."""
    check = MeaningCheck(local_judge.model)
    pairs = [
        ("What colour is the Kashmir stag's body?", ["褐色", "brown"], "Its body is brown with small spots [1].",
         "The Kashmir stag lives in groups of 2 to 18 in dense riverine forests [1]."),
        ("When did the Fraunhofer institute open its Hong Kong centre?", ["2023年"],
         "On the Fraunhofer centre, the sources say: 「弗勞恩霍夫應用研究促進協會於2023年在港成立研發中心。」[1]",
         "On the Fraunhofer centre, the sources say: 「該協會是歐洲最大的應用研究機構。」[1]"),
        ("Who is the chairman of the Hong Kong Productivity Council?", ["陳祖恒"],
         "The chairman is Chan Cho-hang (Sunny Chan) [1].", "The Council's executive director is Mohamed Butt [1]."),
    ]
    for question, golds, right, wrong in pairs:
        p_right, p_wrong = check.p_yes(question, golds, right), check.p_yes(question, golds, wrong)
        assert 0.0 <= p_wrong < p_right - 0.1 <= 1.0, (question, p_right, p_wrong)
