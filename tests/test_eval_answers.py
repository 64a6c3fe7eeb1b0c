"""`rag eval --answers`: CMRC 2018 EM/F1, the numeric match by value, near-miss indexes without
their gold paragraphs, and the answers block in results.json, report.md, JUnit and the summary;
on the fake world of tests/test_eval_runner.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import cli
from rag.config import get_settings
from rag.errors import RagError
from rag.evaluation import answers as ans_mod
from rag.evaluation import runner
from rag.evaluation.answers import (
    answer_by_value,
    cmrc_em,
    cmrc_f1,
    near_miss_folds,
    near_miss_index,
    numeric_answer,
)
from rag.evaluation.goldset import GoldItem
from rag.evaluation.metrics import aggregate, wilson_interval
from rag.evaluation.runner import EvalTarget, run_eval, sample_queries, score_gold_item
from rag.types import Answer, Citation
from tests import test_eval_runner
from tests.test_eval_runner import FakeService

world = test_eval_runner.world  # the fixture: a fake index, gold set and external set (400 questions)

SAMPLE = 30


# ------------------------------------------------------------------------------- CMRC 2018 EM / F1


@pytest.mark.parametrize(("golds", "prediction", "em", "f1"), [
    (["北京"], "北京市", 0.0, 0.8),  # 2 of 3 characters: p 2/3, r 1
    (["2011年"], "2011年3月", 0.0, 2 / 3),  # segments 2011 年 | 2011 年 3 月
    # the longest common *run* (CMRC's find_lcs), not a bag of characters (which would give 2/3)
    (["甲乙丙"], "甲丁丙", 0.0, 1 / 3),
    (["1870 年到 1939 年"], "1870年到1939年。", 1.0, 1.0),  # whitespace and punctuation removed
    (["臺北市"], "台北市", 1.0, 1.0),  # script-blind, as the answer_in_text metric
    (["Saxon Garden"], "the Saxon Garden.", 0.0, 0.8),  # English: words
    (["威廉·瓊斯", "瓊斯"], "瓊斯", 1.0, 1.0),  # the best over the gold answers
    (["歐洲"], "亞洲", 0.0, 0.5),
    (["歐洲"], "美國", 0.0, 0.0),
])
def test_cmrc_em_and_f1_on_known_examples(golds, prediction, em, f1):
    assert cmrc_em(golds, prediction) == em
    assert cmrc_f1(golds, prediction) == pytest.approx(f1)


def test_em_and_f1_of_an_empty_prediction_are_zero():
    assert cmrc_em(["歐洲"], "") == 0.0 and cmrc_f1(["歐洲"], "。") == 0.0 and cmrc_f1([], "歐洲") == 0.0


# ------------------------------------------------------------------------------- numbers by value


@pytest.mark.parametrize(("gold", "text"), [
    ("330億", "總額約為33,000,000,000元。"),  # Traditional
    ("330億", "总额约为330 亿元。"),  # Simplified, with a space
    ("2.5萬", "約有25,000人。"),
    ("25,000", "约有2.5万人。"),
    ("33 billion", "總額為330億。"),  # English gold, Chinese answer
    ("25%", "增長了百分之二十五。"),
    ("百分之二十五", "grew by 25 percent"),
    ("1870 年到 1939 年", "It ran from 1870 to 1939."),
    ("約5萬人", "五万人参加"),
])
def test_a_number_stated_by_value_counts(gold, text):
    assert answer_by_value([gold], text)


@pytest.mark.parametrize(("gold", "text"), [
    ("330億", "總額為330元。"),  # the digits without the magnitude: another value
    ("2.5萬", "约有25人。"),
    ("25%", "有25人。"),  # a percentage against a count
    ("1.5", "共15場。"),  # the decimal point matters
    ("1870 年到 1939 年", "It opened in 1870."),  # every number of the gold answer is needed
    ("國民黨第3屆中央委員會", "第3屆"),  # not a numeric answer: the substring check only
    ("威廉·瓊斯", "威廉·瓊斯"),  # no number at all
])
def test_a_different_or_missing_value_does_not(gold, text):
    assert not answer_by_value([gold], text)


def test_numeric_answers_are_numbers_with_few_other_words():
    assert numeric_answer("1991年") and numeric_answer("33 billion US dollars")
    assert not numeric_answer("國民黨第3屆中央委員會") and not numeric_answer("梵語")


class _SaysService:
    """Answers every question with ``reply``, citing the gold paragraph."""

    encoder = None

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def search(self, query, k=10, *, history=None):
        return []

    def ask(self, question, k=5, *, history=None):
        cite = Citation(n=1, doc_id="d", para_id="d#p1", title="", source="", text="總額為330億元。", score=1.0)
        return Answer(self.reply, False, (cite,))


def test_the_gold_set_reports_answer_in_text_and_by_value_side_by_side():
    item = GoldItem("zh-Hant-total", "總額是多少？", "zh-Hant", ("330億",), ("d#p1",))
    by_value = score_gold_item(_SaysService("總額為33,000,000,000元 [1]。"), item)
    as_string = score_gold_item(_SaysService("總額為330億元 [1]。"), item)
    wrong = score_gold_item(_SaysService("總額為330元 [1]。"), item)
    assert (by_value["answer_in_text"], by_value["answer_in_text_or_value"]) == (False, True)
    assert (as_string["answer_in_text"], as_string["answer_in_text_or_value"]) == (True, True)
    assert (wrong["answer_in_text"], wrong["answer_in_text_or_value"]) == (False, False)
    metrics = aggregate([by_value, as_string, wrong])
    assert metrics["answer_in_text"] == pytest.approx(1 / 3) and metrics["answer_in_text_or_value"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------- near misses


def test_folds_drop_at_most_a_share_of_the_corpus():
    queries = [{"id": f"q{n}", "gold": [f"p{n // 2}"]} for n in range(40)]  # two questions a paragraph
    folds = near_miss_folds(queries, n_paragraphs=50, share=0.2)  # at most 10 paragraphs a fold
    assert [len(f) for f in folds] == [20, 20]
    assert all(len({g for q in f for g in q["gold"]}) <= 10 for f in folds)
    assert [q["id"] for f in folds for q in f] == [q["id"] for q in queries]


class _AnswersService(FakeService):
    """Abstains when none of the question's gold paragraphs is in its index; ``wrong`` answers
    with a sentence that holds no gold answer."""

    wrong = False

    def ask(self, question, k=5, *, history=None):
        if not set(self.truth.get(question, [])) & set(self.paragraphs):
            return Answer("The documents do not answer this.", True, ())
        answer = super().ask(question, k, history=history)
        if self.wrong:
            return Answer("沒有相關的內容 [1]。", False, answer.citations)
        return Answer(answer.answer + " [1]", False, answer.citations)


def _target(world, *, wrong: bool = False, keep_gold: bool = False) -> EvalTarget:
    base = world["target"](False)

    def _open(index: Path, settings, encoder):
        svc = base.open(index, settings, encoder)
        out = _AnswersService(svc.paragraphs, svc.truth, False)
        out.wrong = wrong
        return out

    def _build(paths, index: Path, settings, encoder):
        if keep_gold:  # a broken build that indexes the whole set's corpus
            paths = [world["external"] / "xquad/zh-dev/corpus.jsonl"]
        return base.build(paths, index, settings, encoder)

    return EvalTarget(open=_open, build=_build)


def _answers_run(world, report: str, target: EvalTarget, baseline: Path | None = None):
    return run_eval([world["gold"]], index_dir=world["index"], report_dir=world["tmp"] / report,
                    sets=["xquad/zh-dev"], max_queries=50, answer_sample=SAMPLE, baseline=baseline,
                    thresholds=test_eval_runner.ROOT / "evals/thresholds.toml", settings=world["settings"],
                    target=target, external_dir=world["external"])


def test_the_near_miss_index_really_lacks_the_gold_paragraphs(world):
    result = _answers_run(world, "answers", _target(world))
    block = result.results["sets"]["xquad/zh-dev"]["answers"]
    queries = [json.loads(line) for line in
               (world["external"] / "xquad/zh-dev/queries.jsonl").read_text(encoding="utf-8").splitlines()]
    asked = sample_queries(queries, SAMPLE)
    assert [r["id"] for r in block["rows"]] == [q["id"] for q in asked]
    assert len(block["near_miss_indexes"]) == 1  # 30 of 400 paragraphs: one index
    index = Path(block["near_miss_indexes"][0])
    held = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["paragraphs"]
    gold = {g for q in asked for g in q["gold"]}
    assert len(held) == 400 - len(gold) and not gold & set(held)
    assert index.parent == Path(world["settings"].cache_dir) / "eval-index"
    overall = block["groups"]["overall"]
    assert overall["near_miss_abstention_recall"] == 1.0 and overall["false_abstention_rate"] == 0.0
    assert overall["answer_in_text"] == 1.0 and overall["n"] == overall["n_near_miss"] == SAMPLE
    assert overall["intervals"]["answer_in_text"] == pytest.approx(list(wilson_interval(SAMPLE, SAMPLE)), abs=1e-4)
    # built once: a second run reuses the cached near-miss index
    built = len(world["built"])
    _answers_run(world, "again", _target(world))
    assert len(world["built"]) == built


def test_a_near_miss_index_that_still_holds_its_gold_is_refused(world):
    with pytest.raises(RagError, match="still holds gold paragraph"):
        _answers_run(world, "broken", _target(world, keep_gold=True))


def test_near_miss_index_helper_writes_the_reduced_corpus_beside_the_index(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"x:{n}", "text": f"t{n}"}) + "\n" for n in range(5)), encoding="utf-8")
    seen: list[list[Path]] = []

    class _Svc:
        def paragraph(self, pid):
            raise RagError(pid)

    def open_or_build(index_dir: Path, sources: list[Path]):
        seen.append(sources)
        return _Svc()

    _, index_dir = near_miss_index(tmp_path, "a/b", corpus, "abc", {"x:1", "x:3"}, open_or_build)
    ids = [json.loads(line)["id"] for line in seen[0][0].read_text(encoding="utf-8").splitlines()]
    assert ids == ["x:0", "x:2", "x:4"] and index_dir.name.startswith("a-b-nearmiss-")


# ------------------------------------------------------------------------------- the report


def test_answers_are_paired_with_the_baseline_but_never_fail_the_gate(world):
    good = _answers_run(world, "good", _target(world))
    assert good.passed, good.gate_failures
    worse = _answers_run(world, "worse", _target(world, wrong=True), baseline=world["tmp"] / "good/results.json")
    assert worse.passed, worse.gate_failures  # measured, not gated
    in_text = {(c.group, c.metric): c for c in worse.answer_changes}[("overall", "answer_in_text")]
    assert (in_text.before, in_text.after, in_text.worse, in_text.verdict) == (1.0, 0.0, SAMPLE, "WORSE")
    assert not any(c.metric in ans_mod.PAIRED_METRICS for c in worse.changes)  # not among the gated changes
    report = (world["tmp"] / "worse/report.md").read_text(encoding="utf-8")
    assert "### Answers against the baseline (reported, not gated)" in report
    data = json.loads((world["tmp"] / "worse/results.json").read_text(encoding="utf-8"))
    assert any(c["metric"] == "answer_in_text" and c["verdict"] == "WORSE" for c in data["answer_changes"])
    assert len(data["sets"]["xquad/zh-dev"]["answers"]["misses"]) == SAMPLE


@pytest.fixture
def cli_world(world, monkeypatch):
    monkeypatch.setattr(runner, "default_target", lambda: _target(world))
    monkeypatch.setenv("RAG_EXTERNAL_DIR", str(world["external"]))
    monkeypatch.setenv("RAG_CACHE_DIR", str(world["tmp"] / "cache"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    get_settings.cache_clear()
    yield world
    get_settings.cache_clear()


def test_the_answers_option_writes_the_blocks_everywhere(cli_world):
    junitparser = pytest.importorskip("junitparser")
    tmp = cli_world["tmp"]
    args = ["eval", "--index", str(cli_world["index"]), "--sets", "xquad/zh-dev", "--max-queries", "40",
            "--baseline", str(tmp / "none.json"), "--report", str(tmp / "cli"), "--junit", str(tmp / "junit.xml"),
            "--summary", str(tmp / "summary.md")]
    plain = CliRunner().invoke(cli.main, args)
    assert plain.exit_code == 0, plain.output
    assert "answers" not in json.loads((tmp / "cli/results.json").read_text(encoding="utf-8"))["sets"]["xquad/zh-dev"]
    out = CliRunner().invoke(cli.main, [*args, "--answers", "--answer-sample", "12"])
    assert out.exit_code == 0, out.output
    assert "answers n=12" in out.output and "near_miss_abstention_recall=1.000" in out.output
    data = json.loads((tmp / "cli/results.json").read_text(encoding="utf-8"))
    block = data["sets"]["xquad/zh-dev"]["answers"]
    assert data["answer_sample"] == 12 and block["n_sample"] == 12 and len(block["outcomes"]) == 24
    for metric in ("answer_in_text", "answer_in_text_or_value", "exact_match", "f1", "best_sentence_f1",
                   "answer_in_citations", "false_abstention_rate", "near_miss_abstention_recall"):
        assert metric in block["groups"]["overall"] and metric in block["groups"]["zh-Hans"], metric
    assert "### Answers (measured, not gated)" in (tmp / "cli/report.md").read_text(encoding="utf-8")
    assert "### Answers (measured, not gated)" in (tmp / "summary.md").read_text(encoding="utf-8")
    xml = junitparser.JUnitXml.fromfile(str(tmp / "junit.xml"))
    case = next(c for s in xml for c in s if c.name == "answers (reported, not gated)")
    assert case.is_passed and "[overall] n=12 near misses=12" in (case.system_out or "")
    tree = ET.parse(tmp / "junit.xml")  # the metrics as the case's properties
    props = {p.get("name"): p.get("value") for c in tree.iter("testcase")
             if c.get("name") == "answers (reported, not gated)" for p in c.iter("property")}
    assert props["overall.answer_in_text"] == "1.0000" and props["overall.near_miss_abstention_recall"] == "1.0000"
    # --answer-sample alone implies --answers; a sample below 1 is bad input
    assert CliRunner().invoke(cli.main, [*args, "--answer-sample", "0"]).exit_code == cli.EvalExit.BAD_INPUT


def test_a_near_miss_answered_from_another_paragraph_holding_the_answer_is_counted_apart():
    query = {"id": "q", "question": "總額是多少？", "answers": ["330億"], "gold": ["d#p9"], "lang": "zh-Hant"}
    elsewhere = ans_mod.score_near_miss(_SaysService("總額為330億元 [1]。"), query, ["d#p9"])
    assert elsewhere["abstained"] is False and elsewhere["answer_elsewhere"] is True
    query["answers"] = ["四百億"]
    assert ans_mod.score_near_miss(_SaysService("總額為330億元 [1]。"), query, ["d#p9"])["answer_elsewhere"] is False
