"""The text layer: one sentence splitter, one matching normaliser, one CC-CEDICT parser.

The scans at the end keep it that way: a sentence-end regex or a CC-CEDICT parse outside
``rag/text/`` fails them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rag.ui.render import answer_sentence, citation_text

from rag.answer.written.checks import check_sentence, supports
from rag.answer.written.stream import CheckedStream, UnusableGeneration
from rag.config import Settings
from rag.evaluation.metrics import answer_in_texts, match_key
from rag.evaluation.runner import EvalTarget, run_eval
from rag.ingest.chunking import sentence_chunks
from rag.question import Question
from rag.retrieval.relevance import features
from rag.text.normalise import Normaliser
from rag.text.sentences import (
    ENGLISH_ENDS,
    PUNCTUATION,
    SENTENCE_ENDS,
    sentence_cuts,
    split_sentences,
    units,
)
from rag.types import CITATION_REMOVED, Answer, Citation, Hit, Paragraph

ROOT = Path(__file__).resolve().parents[1]


def _texts(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in spans]


# -- the copy-citation button (ui/render.py) -----------------------------------------------------


def test_the_citation_sentence_of_an_english_answer_is_that_sentence_only():
    answer = ("Hong Kong set up the New Industrialisation Office in 2023 [1]. "
              "The council trains staff in smart production. [2] Both help manufacturers [1][2].")
    assert answer_sentence(answer, 2) == "The council trains staff in smart production. Both help manufacturers."
    assert answer_sentence(answer, 1) == (
        "Hong Kong set up the New Industrialisation Office in 2023. Both help manufacturers.")
    cite = {"n": 2, "doc_id": "d", "para_id": "d#p1", "title": "T", "text": "Paragraph.", "source": ""}
    assert citation_text(answer, cite).split("\n")[0] == answer_sentence(answer, 2)


def test_the_citation_sentence_keeps_a_closing_quote_and_abbreviations():
    answer = "他說：「我們會全力支持。」[1] 局方回應。[2]"
    assert answer_sentence(answer, 1) == "他說：「我們會全力支持。」"
    assert answer_sentence("Mr. Chan chairs the council. [1] It opened in 2023. [2]", 1) == (
        "Mr. Chan chairs the council.")


# -- one splitter, its variants as parameters ----------------------------------------------------


def test_answers_split_at_english_full_stops_but_not_after_abbreviations():
    text = "Mr. Chan said so. The centre opened [1]. 它已啟用。[2]\nNext line"
    assert _texts(text, split_sentences(text)) == [
        "Mr. Chan said so.", "The centre opened [1].", "它已啟用。[2]", "Next line"]


def test_chunking_variant_cuts_at_an_ellipsis_and_any_full_stop_before_a_space():
    text = "他說……然後離開。Mr. Chan left."
    assert _texts(text, split_sentences(text)) == ["他說……然後離開。", "Mr. Chan left."]
    cuts = sentence_cuts(text, extra_ends="…", english="space", markers=False)
    assert _texts(text, list(zip([0, *cuts], [*cuts, len(text)], strict=True))) == [
        "他說……", "然後離開。", "Mr.", " Chan left."]
    p = Paragraph("d#p1", "d", 1, "這是第一個句子……這是第二個句子。")
    assert [c.text for c in sentence_chunks(p)] == ["這是第一個句子……", "這是第二個句子。"]


def test_streaming_variant_also_cuts_at_colons_and_keeps_spaces_with_the_piece():
    text = "兩項措施：資助。 [1] Done."
    cuts = sentence_cuts(text, extra_ends="：:", spaces=True)
    assert [text[a:b] for a, b in zip([0, *cuts], cuts, strict=False)] == ["兩項措施：", "資助。 [1] ", "Done."]


# -- the configured normaliser drives every match (RAG_OPENCC_CONFIG) ----------------------------


def test_question_units_follow_the_configured_normaliser():
    simplified = Question.make("新型工业化的资助", Normaliser("t2s"))
    traditional = Question.make("新型工业化的资助", Normaliser("s2t"))
    assert "工业" in simplified.units and "工業" not in simplified.units
    assert "工業" in traditional.units and "工业" not in traditional.units
    assert "資助" in traditional.search_units
    assert units("新型工业化", Normaliser("s2t")) == units("新型工業化", Normaliser("s2t"))


def test_relevance_coverage_uses_the_configured_normaliser():
    paragraph = "香港推動新型工業化，設立資助計劃。"
    same_script = features(Question.make("新型工業化", Normaliser("none")), paragraph, 0.8)
    other_script = features(Question.make("新型工业化", Normaliser("none")), paragraph, 0.8)
    assert same_script["coverage"] == 1.0
    assert other_script["coverage"] == 0.5  # "none" converts nothing: 工业 and 业化 are not found
    assert features(Question.make("新型工业化", Normaliser("s2t")), paragraph, 0.8)["coverage"] == 1.0


def test_eval_answer_match_uses_the_configured_normaliser():
    assert match_key("生产力局 ＡＩ", Normaliser("s2t")) == "生產力局 ai"
    assert match_key("生產力局") == "生产力局"  # without a normaliser: the default t2s
    assert answer_in_texts(["陳祖恒"], ["主席陈祖恒表示"], Normaliser("s2t"))
    assert not answer_in_texts(["陳祖恒"], ["主席陈祖恒表示"], Normaliser("none"))


# A written sentence in Traditional script over a Simplified paragraph: the same words in any
# normaliser that converts script ("t2s", "s2t"), other words in one that does not ("none").
_SIMPLIFIED = "这项计划协助业界转型，资助额为两亿元。"
_TRADITIONAL = "這項計劃協助業界轉型，資助額為兩億元。"


def test_written_answer_checks_match_in_the_configured_normaliser():
    hits = [Hit(para_id="d#p1", doc_id="d", text=_SIMPLIFIED, score=1.0)]

    def written(config: str) -> CheckedStream:
        stream = CheckedStream(Question.make("計劃資助多少？", Normaliser(config)), hits, quote_sources=False)
        stream.feed(f"{_TRADITIONAL}[1]")
        stream.close()
        return stream

    assert written("s2t").answer().answer == f"{_TRADITIONAL}[1]"
    with pytest.raises(UnusableGeneration) as unusable:
        written("none").answer()  # the question's normaliser, not a hard-coded t2s, judged the sentence
    assert CITATION_REMOVED in [w.code for w in unusable.value.warnings]
    assert supports(_TRADITIONAL, _SIMPLIFIED, Normaliser("s2t"))
    assert not supports(_TRADITIONAL, _SIMPLIFIED, Normaliser("none"))
    assert check_sentence(f"{_TRADITIONAL}[1]", [_SIMPLIFIED], normaliser=Normaliser("none")) == (None, "removed")


class _AnswersInSimplified:
    """One gold paragraph in Traditional script; the answer shown in Simplified."""

    encoder = None
    PARAGRAPH = "計劃的資助額為兩億元。"

    def search(self, query, k=10, *, history=None):
        return [Hit(para_id="d#p1", doc_id="d", text=self.PARAGRAPH, score=1.0)]

    def search_many(self, queries, k=10):
        return [self.search(q, k) for q in queries]

    def ask(self, question, k=5, *, history=None):
        cite = Citation(n=1, doc_id="d", para_id="d#p1", title="", source="", text=self.PARAGRAPH, score=1.0)
        return Answer("计划的资助额为两亿元。[1]", False, (cite,), {"total": 1.0})

    def paragraph(self, para_id):
        return Paragraph(para_id, "d", 1, self.PARAGRAPH)


def test_eval_answer_match_follows_the_settings_normaliser(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "q1", "question": "計劃的資助額是多少？", "lang": "zh-Hant",
                                "answers": ["兩億元"], "gold": ["d#p1"]}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text("{}", encoding="utf-8")
    target = EvalTarget(open=lambda *_: _AnswersInSimplified(), build=lambda *_: None)

    def row(config: str) -> dict:
        settings = Settings(_env_file=None, opencc_config=config, cache_dir=tmp_path / "cache", index_dir=index)
        result = run_eval([gold], index_dir=index, report_dir=tmp_path / config, sets=["gold"], settings=settings,
                          target=target, thresholds=ROOT / "evals/thresholds.toml")
        return result.results["sets"]["gold"]["rows"][0]

    assert row("t2s")["answer_in_text"] is True
    assert row("none")["answer_in_text"] is False  # "none" converts nothing: 兩億元 is not 两亿元
    assert row("none")["answer_in_citations"] is True


def test_a_follow_up_rewrite_is_judged_in_the_configured_normaliser():
    from rag.llm.rewrite import usable

    turns = "User: 创新科技署有哪些新计划？\nAssistant: 推出资助计划。"
    rewrite, question = "這個資助計劃的對象是誰？", "那對象呢？"
    assert usable(rewrite, question, turns, Normaliser("s2t"))  # 資助計劃 is the conversation's 资助计划
    assert not usable(rewrite, question, turns, Normaliser("none"))  # ... only when script is converted


def test_the_written_answer_punctuation_is_the_sentence_ends_and_more():
    assert set(ENGLISH_ENDS) <= set(SENTENCE_ENDS) | {"."}
    assert set(SENTENCE_ENDS) <= set(PUNCTUATION)


def test_normalisers_of_one_config_are_equal():
    assert Normaliser("s2t") == Normaliser("s2t") and hash(Normaliser("s2t")) == hash(Normaliser("s2t"))
    assert Normaliser("s2t") != Normaliser("t2s")


# -- every text rule in rag/text/ ----------------------------------------------------------------

# Files allowed to keep a copy of a text rule while it moves into rag/text/ (none left).
ALLOWED_COPIES: set[str] = set()

_CHAR_CLASS = re.compile(r"\[[^\[\]\n]*。[^\[\]\n]*\]")
# A regex for the [n] marker as source code spells it: \[\d+\], \[(\d+)\], \[\d{1,3}\].
_MARKER_REGEX = re.compile(r"\\\[\(?\\d(?:\+|\{[\d,]*\})\)?\\\]")
_CEDICT_PARSE = re.compile(r"gzip|cedict_1_0|\.txt\.gz|\\\[\(\[\^\\\]\]\*\)\\\] /|\] /\(\.\*\)/", re.IGNORECASE)


def _sources() -> list[tuple[str, str]]:
    files = sorted([*(ROOT / "rag").rglob("*.py"), *(ROOT / "ui").rglob("*.py")])
    out = []
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith("rag/text/") or rel in ALLOWED_COPIES:
            continue
        out.append((rel, f.read_text(encoding="utf-8")))
    return out


def sentence_end_classes(source: str) -> list[str]:
    """Regex character classes that hold 。 with ！ or ？: a sentence-end rule."""
    return [m.group() for m in _CHAR_CLASS.finditer(source) if "！" in m.group() or "？" in m.group()]


def marker_regexes(source: str) -> list[str]:
    """Regexes of the ``[n]`` citation marker (rag.text.sentences.MARKER is the one)."""
    return _MARKER_REGEX.findall(source)


def cedict_parses(source: str) -> list[str]:
    """Signs of reading the CC-CEDICT file: in a source that names CC-CEDICT, opening a gzip file
    or its file name, or matching its entry lines."""
    if "cedict" not in source.lower():
        return []
    return [m.group() for m in _CEDICT_PARSE.finditer(source)]


def test_the_scans_find_what_they_look_for():
    old_chunking = r'_SENTENCE = re.compile(rf"(?:[。！？!?；;…]+[{_CLOSERS}]*\s*|\.[{_CLOSERS}]*\s+|\n+)")'
    assert sentence_end_classes(old_chunking) == ["[。！？!?；;…]"]
    assert not sentence_end_classes("text = '答案。[1]'")
    old_parser = 'path = Path(base) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"\nwith gzip.open(path) as fh:'
    assert cedict_parses(old_parser)
    assert not cedict_parses("from rag.text.cedict import load_forward  # CC-CEDICT senses")
    for old_marker in (r'_MARKER = re.compile(r"\[(\d+)\]")', r're.sub(r"\[\d+\]", "", text)',
                       r'_EVIDENCE = re.compile(r" ?「.*?」(?:\[\d{1,3}\])+")'):
        assert marker_regexes(old_marker), old_marker
    assert not marker_regexes(r'_MARKER_VARIANT = re.compile(r"【\s*(\d+)\s*】|\[\^\s*(\d+)\s*\]")')
    assert not marker_regexes('answer = "答案。[1]"')


@pytest.mark.parametrize("check", [sentence_end_classes, cedict_parses, marker_regexes],
                         ids=["sentence-end", "cedict", "marker"])
def test_no_text_rule_outside_the_text_layer(check):
    found = {rel: hits for rel, source in _sources() if (hits := check(source))}
    assert not found, f"move these into rag/text/ and import them: {found}"
