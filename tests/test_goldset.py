"""The gold set: shape, size, and every gold id and answer string against the cleaned corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.errors import InputError
from rag.evaluation.goldset import (
    LANGS,
    gold_counts,
    load_gold,
    paragraphs_from_corpus,
    paragraphs_from_golden,
    validate_gold,
)

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "evals" / "gold.jsonl"
GOLDEN = ROOT / "tests" / "golden"
CORPUS = ROOT / "corpus"


@pytest.fixture(scope="module")
def items():
    return load_gold(GOLD)


def test_gold_set_size(items):
    counts = gold_counts(items)
    for lang in LANGS:
        assert counts[lang] >= 30, counts
    assert counts["unanswerable"] >= 10, counts
    assert counts["followup"] >= 10, counts


def test_followups_carry_the_first_question(items):
    for item in (i for i in items if i.is_followup):
        assert item.history[0]["role"] == "user" and item.history[0]["content"].strip(), item.id
        assert item.history[-1]["role"] == "assistant", item.id
        assert item.answerable, item.id


def test_languages_are_what_they_say(items):
    import opencc

    t2s = opencc.OpenCC("t2s")
    for item in items:
        cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in item.question)
        if item.lang == "en":
            assert cjk <= 4, item.id  # an English question may quote a Chinese name
        else:
            assert cjk >= 4, item.id
        if item.lang == "zh-Hans":
            assert t2s.convert(item.question) == item.question, f"{item.id} is not Simplified"
    hant = [i for i in items if i.lang == "zh-Hant"]
    changed = sum(t2s.convert(i.question) != i.question for i in hant)
    assert changed >= 0.9 * len(hant), "most zh-Hant questions should use Traditional characters"


def test_gold_ids_and_answers_match_the_golden_paragraphs(items):
    """The cleaner's expected output (tests/golden) must contain every gold id and answer."""
    assert GOLDEN.is_dir(), f"{GOLDEN} is missing: the cleaner's golden files are needed here"
    paragraphs = paragraphs_from_golden(GOLDEN)
    assert paragraphs, f"no paragraphs read from {GOLDEN}"
    problems = validate_gold(items, paragraphs)
    assert not problems, "gold set out of step with tests/golden:\n" + "\n".join(problems)


def test_gold_ids_and_answers_match_the_cleaner_today(items):
    """Re-cleaning the corpus must not silently break the gold set."""
    pytest.importorskip("rag.ingest")
    if not CORPUS.is_dir() or not any(CORPUS.iterdir()):
        pytest.skip("no corpus/ folder")
    problems = validate_gold(items, paragraphs_from_corpus([CORPUS]))
    assert not problems, "gold set out of step with the cleaner:\n" + "\n".join(problems)


# ---- the validator and loader themselves -------------------------------------------------------


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "g.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return p


ROW = {"id": "a", "question": "主席是誰？", "lang": "zh-Hant", "answers": ["陳祖恒"], "gold": ["d#p3"]}
PARAS = {"d#p3": "生產力局主席陳祖恒表示", "d#p4": "陳主席續指", "d#p5": "主席陳祖恒又說"}


def test_validate_sound_item(tmp_path):
    assert validate_gold(load_gold(_write(tmp_path, [ROW])), PARAS) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gold": ["d#p9"]}, "gold paragraph 'd#p9' does not exist"),
        ({"answers": ["畢堅文"]}, "answer '畢堅文' occurs in none of its gold paragraphs"),
        ({"gold": ["d#p3", "d#p4"]}, "gold paragraph d#p4 contains none of the answers"),
    ],
)
def test_validate_finds_problems(tmp_path, change, message):
    problems = validate_gold(load_gold(_write(tmp_path, [ROW | change])), PARAS)
    assert any(message in p for p in problems), problems


def test_validate_accepts_answers_spread_over_gold(tmp_path):
    row = ROW | {"answers": ["陳祖恒", "又說"], "gold": ["d#p3", "d#p5"]}
    assert validate_gold(load_gold(_write(tmp_path, [row])), PARAS) == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (ROW | {"lang": "zh"}, "'lang' must be one of"),
        (ROW | {"gold": []}, "both be empty"),
        ({k: v for k, v in ROW.items() if k != "question"}, "missing field(s) question"),
        (ROW | {"history": [{"role": "bot", "content": "x"}]}, "'history' must be"),
        (ROW | {"answers": [""]}, "non-empty strings"),
    ],
)
def test_load_rejects_bad_rows(tmp_path, row, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_gold(_write(tmp_path, [row]))


def test_load_rejects_duplicate_ids_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="duplicate id 'a'"):
        load_gold(_write(tmp_path, [ROW, ROW]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:1: invalid JSON"):
        load_gold(bad)


def test_unanswerable_and_followup_flags(tmp_path):
    rows = [ROW | {"id": "u", "answers": [], "gold": []},
            ROW | {"id": "f", "history": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    u, f = load_gold(_write(tmp_path, rows))
    assert not u.answerable and not u.is_followup
    assert f.answerable and f.is_followup
    assert gold_counts([u, f]) == {"zh-Hant": 2, "zh-Hans": 0, "en": 0, "unanswerable": 1,
                                   "followup": 1, "total": 2}
