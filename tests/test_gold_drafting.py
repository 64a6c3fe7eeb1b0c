"""`rag gold draft` and `rag gold review`: the reply parsing, the span and language checks, the
near-miss filter and the review loop on stand-in models (tests/drafting_fakes.py); the whole
path draft -> review -> `rag eval` on a made-up two-script corpus; and one draft run on the
real local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rag import cli
from rag.config import get_settings
from rag.evaluation import drafting
from rag.evaluation.drafting import (
    CorpusText,
    Drafter,
    Task,
    fit_question,
    parse_reply,
    plan,
    write_drafts,
)
from rag.evaluation.goldset import load_gold, validate_gold
from rag.evaluation.review import show
from rag.text.normalise import Normaliser
from tests.drafting_fakes import DOCS, ReplyStub, ScriptedDraftModel, passage_in, write_corpus

T2S = Normaliser("t2s")
CHAIR = "香港生產力促進局（生產力局）主席陳祖恒表示，生產力局歡迎國家兩會提出發展新質生產力。"
BUDGET = "生產力局今年的預算為十億元，較去年增加百分之五。"
STAFF = "生產力局現有員工約七百人，分佈於香港及深圳的辦事處。"


def _corpus(*docs: list[str]) -> CorpusText:
    """Documents d1, d2... of the given paragraphs."""
    texts, titles, documents = {}, {}, {}
    for d, paras in enumerate(docs, start=1):
        pids = [f"d{d}#p{n}" for n in range(1, len(paras) + 1)]
        texts.update(zip(pids, paras, strict=True))
        titles.update({pid: f"Doc {d}" for pid in pids})
        documents[f"d{d}"] = pids
    return CorpusText(texts, titles, documents)


def _reply(answer: str, question: str) -> str:
    return json.dumps({"answer": answer, "question": question}, ensure_ascii=False)


# ------------------------------------------------------------------------------- replies


@pytest.mark.parametrize("reply", [
    '{"answer": "陳祖恒", "question": "生產力局主席是誰？"}',
    '```json\n{"answer": "陳祖恒", "question": "生產力局主席是誰？"}\n```',
    'Here it is: {"Answer": "陳祖恒", "QUESTION": "生產力局主席是誰？"} hope it helps',
    '{"answer": ""} {"answer": "陳祖恒", "question": "生產力局主席是誰？"}',
])
def test_a_reply_is_read_from_the_first_json_object_with_the_fields(reply):
    assert parse_reply(reply, ("question", "answer")) == {"answer": "陳祖恒", "question": "生產力局主席是誰？"}


@pytest.mark.parametrize("reply", [
    '{"answer": "陳祖恒", "question": "生產力局主席是',  # cut off at the token limit
    "陳祖恒",
    '{"answer": "陳祖恒"}',
    '{"answer": ["陳祖恒"], "question": "生產力局主席是誰？"}',
    '["陳祖恒", "生產力局主席是誰？"]',
])
def test_a_reply_without_such_an_object_is_none(reply):
    assert parse_reply(reply, ("question", "answer")) is None


def test_a_question_is_put_into_its_script_and_refused_in_another_language():
    assert fit_question("生产力局主席是谁？", "zh-Hant") == "生產力局主席是誰？"
    assert fit_question("生產力局主席是誰？", "zh-Hans") == "生产力局主席是谁？"
    assert fit_question("Who  chairs the Council?", "en") == "Who chairs the Council?"
    assert fit_question("生產力局主席是誰？", "en") is None
    assert fit_question("Who chairs the Productivity Council?", "zh-Hant") is None


# ------------------------------------------------------------------------------- the plan


def test_the_plan_takes_paragraphs_per_document_or_in_all_and_the_languages_in_turn():
    corpus = _corpus([f"第{n}段：生產力局今年推出了第{n}項資助計劃，支援本地中小企業進行數碼轉型及自動化升級。" for n in range(1, 6)],
                     [f"第{n}段：新型工業化發展中心舉辦了第{n}場研討會，參加企業超過一百家，反應十分熱烈。" for n in range(1, 6)],
                     ["短標題", f"{CHAIR}"])
    per_doc = plan(corpus, per_doc=2, seed=1)
    assert [t.para_id.split("#")[0] for t in per_doc].count("d1") == 2
    assert [t.para_id.split("#")[0] for t in per_doc].count("d3") == 1  # its heading is too short to ask about
    assert "d3#p1" not in {t.para_id for t in per_doc}
    sample = plan(corpus, sample=9, seed=1)
    assert len(sample) == 9 and len({t.para_id for t in sample}) == 9
    assert [t.lang for t in sample] == ["zh-Hant", "zh-Hans", "en"] * 3
    assert plan(corpus, sample=9, seed=1) == sample  # the seed fixes the sample
    assert plan(corpus, sample=9, seed=2) != sample
    misses = plan(corpus, sample=4, near_misses=2, langs=("en",), seed=1)
    assert [t.kind for t in misses] == ["answerable"] * 4 + ["unanswerable"] * 2
    assert {t.para_id for t in misses[4:]} <= {t.para_id for t in misses[:4]}
    assert misses[4].id.startswith("en-unanswerable-d")


@pytest.mark.parametrize("options, message", [
    ({"per_doc": 1, "sample": 3}, "not both"),
    ({"sample": 0}, "--sample must be at least 1"),
    ({"near_misses": -1}, "--near-misses"),
])
def test_bad_plan_options_are_refused(options, message):
    with pytest.raises(drafting.InputError, match=message):
        plan(_corpus([CHAIR]), **options)


def test_bad_languages_are_refused():
    assert drafting.parse_langs("en, zh-Hant,en") == ("en", "zh-Hant")
    with pytest.raises(drafting.InputError, match="zh-Hant, zh-Hans, en"):
        drafting.parse_langs("zh-TW")


# ------------------------------------------------------------------------------- one draft


def test_the_answer_is_found_script_blind_and_stored_as_the_paragraph_writes_it():
    stub = ReplyStub(lambda m: _reply("陈祖恒", "生产力局主席是谁？"))
    record, outcome = Drafter(_corpus([CHAIR]), stub, floor=0.45, normaliser=T2S).draft(Task("answerable", "d1#p1", "zh-Hans"))
    assert outcome == "kept" and record is not None
    assert record["answers"] == ["陳祖恒"] and record["gold"] == ["d1#p1"]
    assert record["question"] == "生产力局主席是谁？" and record["lang"] == "zh-Hans"
    assert record["self_check"] == 0.9 and record["flags"] == [] and record["paragraph"] == CHAIR
    assert stub.judged == [("生产力局主席是谁？", CHAIR)]
    assert "Simplified Chinese" in stub.asked[0][-1]["content"] and passage_in(stub.asked[0]) == CHAIR


def test_an_english_question_keeps_the_chinese_span_of_the_paragraph():
    stub = ReplyStub(lambda m: _reply("「陳祖恒」", "Who chairs the Hong Kong Productivity Council?"))
    record, _ = Drafter(_corpus([CHAIR]), stub, floor=0.45, normaliser=T2S).draft(Task("answerable", "d1#p1", "en"))
    assert record is not None and record["answers"] == ["陳祖恒"] and record["lang"] == "en"


@pytest.mark.parametrize("reply, why", [
    (_reply("林鄭月娥", "Who chairs the Productivity Council?"), "span_not_in_paragraph"),
    ('{"answer": "陳祖恒", "question": "生產力局主', "bad_json"),
    ("I cannot do that.", "bad_json"),
    (_reply("陳祖恒", "生產力局主席是誰？"), "wrong_language"),  # asked for English
    (_reply("陳祖恒", "Is 陳祖恒 the chairman of the Productivity Council?"), "answer_in_question"),
])
def test_a_draft_that_fails_a_check_is_dropped_with_its_reason(reply, why):
    record, outcome = Drafter(_corpus([CHAIR]), ReplyStub(lambda m: reply), floor=0.45,
                              normaliser=T2S).draft(Task("answerable", "d1#p1", "en"))
    assert record is None and outcome == why


def test_a_draft_below_the_self_check_floor_is_kept_and_flagged():
    stub = ReplyStub(lambda m: _reply("陳祖恒", "Who is the chairman?"), judge=lambda q, title, text: 0.2)
    record, outcome = Drafter(_corpus([CHAIR]), stub, floor=0.45, normaliser=T2S).draft(Task("answerable", "d1#p1", "en"))
    assert outcome == "flagged" and record is not None and record["self_check"] == 0.2
    assert record["flags"] == ["self-check 0.20 below the floor 0.45"]


def test_other_paragraphs_holding_the_answer_join_gold_when_the_judge_says_they_answer(tmp_path):
    other = "生產力局主席陳祖恒今日主持開幕禮。"  # holds the answer and answers the question
    mention = "陈祖恒昨日出席了一個論壇。"  # holds the name in the other script, does not answer
    judge = {CHAIR: 0.9, other: 0.8, mention: 0.1}
    stub = ReplyStub(lambda m: _reply("陳祖恒", "生產力局主席是誰？"), judge=lambda q, title, text: judge[text])
    record, _ = Drafter(_corpus([CHAIR, "無關段落，講述香港的天氣情況。"], [other, mention]), stub, floor=0.45,
                        normaliser=T2S).draft(Task("answerable", "d1#p1", "zh-Hant"))
    assert record is not None and record["gold"] == ["d1#p1", "d2#p1"] and record["answers"] == ["陳祖恒"]
    assert {a["para_id"]: a["p_yes"] for a in record["also"]} == {"d2#p1": 0.8, "d2#p2": 0.1}
    # and the result is a valid gold item against those paragraphs
    path = tmp_path / "drafted.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    assert validate_gold(load_gold(path), {"d1#p1": CHAIR, "d2#p1": other}) == []
    # the review shows each paragraph, the answer marked in each, and which are gold
    shown = "\n".join(show(load_gold(path)[0], 1, 1, T2S, styled=False))
    assert "--- d1#p1 (drafted from it: Doc 1)" in shown and "主席⟦陳祖恒⟧表示" in shown
    assert "--- d2#p1 (also holds the answer, judge P(yes) 0.80: in gold)" in shown
    assert "--- d2#p2 (also holds the answer, judge P(yes) 0.10: not in gold)" in shown and "⟦陈祖恒⟧昨日" in shown


# ------------------------------------------------------------------------------- near misses


@pytest.mark.parametrize("answered, outcome", [
    (set(), "kept"),
    ({BUDGET}, "answered_by_paragraph"),
    ({STAFF}, "answered_by_neighbour"),  # the paragraph after it
    ({CHAIR}, "answered_by_neighbour"),  # the paragraph before it
])
def test_a_near_miss_is_kept_only_when_the_judge_says_no_for_its_paragraph_and_its_neighbours(answered, outcome):
    far = "生產力局的年度預算為十億元。"  # answers it, but is not a neighbour: not checked
    stub = ReplyStub(lambda m: json.dumps({"question": "生產力局今年的研發開支是多少？"}, ensure_ascii=False),
                     judge=lambda q, title, text: 0.9 if text in answered else 0.1)
    drafter = Drafter(_corpus([CHAIR, BUDGET, STAFF, "無關段落，講述香港的天氣情況。", far]), stub, floor=0.45,
                      normaliser=T2S)
    record, got = drafter.draft(Task("unanswerable", "d1#p2", "zh-Hant"))
    assert got == outcome
    judged = [text for _, text in stub.judged]
    assert far not in judged
    if outcome == "kept":
        assert record is not None and record["answers"] == [] and record["gold"] == []
        assert record["id"] == "zh-Hant-unanswerable-d1-p2" and record["para_id"] == "d1#p2"
        assert record["neighbours"] == {"d1#p1": 0.1, "d1#p3": 0.1} and sorted(judged) == sorted([BUDGET, CHAIR, STAFF])
        assert stub.asked[-1][0]["content"] == drafting.NEAR_MISS_SYSTEM


# ------------------------------------------------------------------------------- the run


def test_drafts_are_written_as_made_and_a_rerun_continues_after_an_interruption(tmp_path):
    corpus = _corpus([CHAIR, BUDGET, STAFF])
    answers = {CHAIR: ("陳祖恒", "Who chairs the Productivity Council?"), BUDGET: ("十億元", "What is its budget?"),
               STAFF: ("約七百人", "How many staff does it have?")}
    calls = []

    def reply(messages):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _reply(*answers[passage_in(messages)])

    tasks = [Task("answerable", pid, "en") for pid in ("d1#p1", "d1#p2", "d1#p3")]
    out = tmp_path / "drafts.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_drafts(Drafter(corpus, ReplyStub(reply), floor=0.45, normaliser=T2S), tasks, out)
    assert [json.loads(line)["gold"] for line in out.read_text(encoding="utf-8").splitlines()] == [["d1#p1"], ["d1#p2"]]
    tally = write_drafts(Drafter(corpus, ReplyStub(reply), floor=0.45, normaliser=T2S), tasks, out)
    assert tally.already == 2 and tally.kept["answerable"] == 1 and len(calls) == 4
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["answers"] for r in rows] == [["陳祖恒"], ["十億元"], ["約七百人"]]
    assert len(load_gold(out)) == 3  # the drafts file is itself a gold-set shaped file


def test_the_tally_counts_each_reason_for_dropping(tmp_path):
    replies = {CHAIR: "not json", BUDGET: _reply("林鄭月娥", "Who chairs it?"),
               STAFF: _reply("約七百人", "How many staff does the Council have?")}
    stub = ReplyStub(lambda m: replies[passage_in(m)])
    drafter = Drafter(_corpus([CHAIR, BUDGET, STAFF]), stub, floor=0.45, normaliser=T2S)
    tally = write_drafts(drafter, [Task("answerable", f"d1#p{n}", "en") for n in (1, 2, 3)], tmp_path / "d.jsonl")
    assert tally.dropped == {"bad_json": 1, "span_not_in_paragraph": 1} and tally.kept == {"answerable": 1}
    assert (tally.retried, tally.rescued) == (1, 0) and len(stub.asked) == 4  # the bad span was asked for again
    lines = "\n".join(tally.lines(tmp_path / "d.jsonl", 0.45))
    assert "dropped 2 drafts" in lines and drafting.DROPPED["bad_json"] in lines and "d.dropped.jsonl" in lines
    assert "1 asked for again" in lines and "0 of them mended" in lines
    lost = [json.loads(line) for line in (tmp_path / "d.dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(row["para_id"], row["dropped"]) for row in lost] == [("d1#p1", "bad_json"), ("d1#p2", "span_not_in_paragraph")]
    assert lost[0]["reply"] == "not json" and lost[1]["reply"].count("林鄭月娥") == 2
    # a rerun asks the model for none of them again, dropped or kept
    again = write_drafts(Drafter(_corpus([CHAIR, BUDGET, STAFF]), ReplyStub(lambda m: pytest.fail("asked again")),
                                 floor=0.45, normaliser=T2S),
                         [Task("answerable", f"d1#p{n}", "en") for n in (1, 2, 3)], tmp_path / "d.jsonl")
    assert again.already == 3


@pytest.mark.parametrize("first, told", [
    (_reply("陳祖恒", "陳祖恒是誰？"), "Do not ask about 「陳祖恒」 itself"),
    (_reply("林鄭月娥", "生產力局主席是誰？"), "Not 「林鄭月娥」: it is not in the passage"),
])
def test_a_draft_whose_answer_fails_its_check_is_asked_for_again_saying_what_to_avoid(first, told):
    replies = iter([first, _reply("陳祖恒", "生產力局主席是誰？")])
    stub = ReplyStub(lambda m: next(replies))
    drafter = Drafter(_corpus([CHAIR]), stub, floor=0.45, normaliser=T2S)
    record, outcome = drafter.draft(Task("answerable", "d1#p1", "zh-Hant"))
    assert outcome == "kept" and record is not None and record["question"] == "生產力局主席是誰？"
    assert record["answers"] == ["陳祖恒"] and (drafter.retried, drafter.rescued) == (1, 1)
    again = stub.asked[1]  # the same request, afresh, with what to avoid after it
    assert again[:-1] == stub.asked[0][:-1] and again[-1]["role"] == "user"
    assert again[-1]["content"].startswith(f"{stub.asked[0][-1]['content']} {told}")


# ------------------------------------------------------------------------------- the commands


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """`rag gold draft` with the scripted model in place of the local one, on the made-up corpus."""
    model = ScriptedDraftModel()
    monkeypatch.setattr(drafting, "local_draft_model", lambda settings: model)
    monkeypatch.delenv("RAG_LLM_MODEL_PATH", raising=False)
    get_settings.cache_clear()
    yield model, write_corpus(tmp_path / "corpus")
    get_settings.cache_clear()


def _draft(*args: str) -> Result:
    return CliRunner().invoke(cli.main, ["gold", "draft", *args])


def _review(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli.main, ["gold", "review", *args], input=input)


def test_draft_writes_checked_drafts_with_progress_and_a_summary(scripted, tmp_path):
    model, corpus = scripted
    out = tmp_path / "drafts.jsonl"
    result = _draft(str(corpus), "--out", str(out), "--sample", "6", "--near-misses", "2", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "[8/8]" in result.stderr and "wrote 8 drafts" in result.stdout and "dropped 0 drafts" in result.stdout
    assert not (tmp_path / "drafts.dropped.jsonl").exists()
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["lang"] for r in rows] == ["zh-Hant", "zh-Hans", "en"] * 2 + ["zh-Hant", "zh-Hans"]
    facts = [f for _, _, facts in DOCS.values() for f in facts]
    for r in rows[:6]:
        fact = next(f for f in facts if f.text in r["paragraph"])  # a document's title heads its first paragraph
        assert r["answers"] == [fact.answer] and r["gold"] == [r["para_id"]]
    assert all(r["answers"] == [] == r["gold"] and r["self_check"] < 0.45 for r in rows[6:])
    # the same command again: everything is there already, the model is not asked
    calls = model.calls
    again = _draft(str(corpus), "--out", str(out), "--sample", "6", "--near-misses", "2", "--seed", "3")
    assert again.exit_code == 0 and model.calls == calls and "8 were made (or dropped) by an earlier run" in again.stdout
    more = _draft(str(corpus), "--out", str(tmp_path / "all.jsonl"), "--sample", "99")
    assert more.exit_code == 0 and "note: only 15 paragraphs are long enough to ask about" in more.stderr


def test_ctrl_c_keeps_the_drafts_written_and_says_how_to_go_on(scripted, tmp_path, monkeypatch):
    model, corpus = scripted
    complete = model.complete

    def interrupted(messages):
        if model.calls == 2:
            raise KeyboardInterrupt
        return complete(messages)

    monkeypatch.setattr(model, "complete", interrupted)
    out = tmp_path / "drafts.jsonl"
    result = _draft(str(corpus), "--out", str(out), "--sample", "4")
    assert result.exit_code == 130 and "run the same command to continue" in result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("args, message", [
    (["--langs", "fr"], "--langs must be"),
    (["--per-doc", "2", "--sample", "3"], "not both"),
    (["--index", "/nonexistent/index"], "no index in /nonexistent/index"),
])
def test_draft_refuses_bad_input_in_one_line(scripted, args, message):
    _, corpus = scripted
    result = _draft(*([] if "--index" in args else [str(corpus)]), *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_draft_through_a_model_server_writes_and_self_checks_with_its_logprobs(tmp_path, monkeypatch):
    """RAG_LLM_BASE_URL: the server writes the drafts and its first token's logprobs give the
    self-check (an OpenAI-compatible stub scripted as a competent model; the real server is in
    tests/test_llm_server.py)."""
    import math
    import re

    from tests.llm_stub import LLMStub

    scripted = ScriptedDraftModel()

    def logprobs(body: dict) -> dict[str, float]:
        if not body.get("logprobs"):  # a draft being written
            return {}
        asked = body["messages"][-1]["content"]
        m = re.search(r"Passage:\n(.*)\n\nQuestion: (.*)\n\nDoes the passage", asked, re.DOTALL)
        assert m is not None, asked
        p = scripted.p_yes(m.group(2), "", m.group(1))
        return {"yes": math.log(p), "no": math.log(1 - p)}

    with LLMStub() as stub:
        stub.reply = lambda body: "yes" if body.get("logprobs") else scripted.complete(body["messages"])
        stub.logprobs = logprobs
        monkeypatch.setenv("RAG_LLM_BASE_URL", stub.base_url)
        monkeypatch.setenv("RAG_LLM_MODEL", "stub-model")
        get_settings.cache_clear()
        try:
            out = tmp_path / "drafts.jsonl"
            result = _draft(str(write_corpus(tmp_path / "corpus")), "--out", str(out), "--sample", "3",
                            "--near-misses", "1", "--seed", "3")
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert f"the model server at {stub.base_url}" in result.stderr and "wrote 4 drafts" in result.stdout
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 4 and {r["model"] for r in rows} == {f"stub-model at {stub.base_url}"}
        answerable = [r for r in rows if r["answers"]]
        assert len(answerable) == 3 and all(r["self_check"] == pytest.approx(0.92) for r in answerable)
        assert any(r.get("logprobs") for r in stub.requests)  # the self-check asked for them
        # a server that returns no logprobs cannot self-check: refused at start, in one line
        stub.logprobs = None
        monkeypatch.setenv("RAG_LLM_BASE_URL", stub.base_url)
        get_settings.cache_clear()
        try:
            result = _draft(str(write_corpus(tmp_path / "corpus")), "--out", str(tmp_path / "d2.jsonl"))
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 2, result.output
        assert f"drafting through the model server at {stub.base_url} cannot start" in result.stderr
        assert "logprob" in result.stderr and "Traceback" not in result.output
        assert not (tmp_path / "d2.jsonl").exists() or not (tmp_path / "d2.jsonl").read_text()


def test_draft_without_the_local_model_says_how_to_set_it_up(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_LLM_MODEL_PATH", str(tmp_path / "missing.gguf"))
    get_settings.cache_clear()
    try:
        result = _draft(str(write_corpus(tmp_path / "corpus")), "--out", str(tmp_path / "d.jsonl"))
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "drafting needs the local language model" in result.stderr and "RAG_LLM_MODEL_PATH" in result.stderr
    assert "Traceback" not in result.output


def _drafts(tmp_path: Path, n: int = 4) -> Path:
    corpus = CorpusText.from_paths([write_corpus(tmp_path / "corpus")])
    out = tmp_path / "drafts.jsonl"
    write_drafts(Drafter(corpus, ScriptedDraftModel(), floor=0.45, normaliser=T2S), plan(corpus, sample=n, seed=5), out)
    return out


def test_accept_all_writes_a_gold_file_that_rag_eval_reads(tmp_path):
    drafts = _drafts(tmp_path, 6)
    out = tmp_path / "mine.jsonl"
    result = _review(str(drafts), "--out", str(out), "--accept-all")
    assert result.exit_code == 0 and "6 accepted, 0 dropped, 0 left" in result.output, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(set(row) == {"id", "question", "lang", "answers", "gold"} for row in lines)
    paragraphs = CorpusText.from_paths([tmp_path / "corpus"]).texts
    assert validate_gold(load_gold(out), paragraphs) == []
    again = _review(str(drafts), "--out", str(out), "--accept-all")
    assert "nothing left to review" in again.output and len(out.read_text(encoding="utf-8").splitlines()) == 6


def test_the_review_loop_saves_each_decision_and_a_rerun_resumes_with_the_skipped(tmp_path):
    drafts = _drafts(tmp_path)
    ids = [d.id for d in load_gold(drafts)]
    out = tmp_path / "mine.jsonl"
    first = _review(str(drafts), "--out", str(out), input="a\nd\ns\nq\n")
    assert first.exit_code == 0, first.output
    assert "⟦" in first.output and "self-check" in first.output and "[1/4]" in first.output
    assert "1 accepted, 1 dropped, 2 left to review (rerun to go on)" in first.output
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [ids[0]]
    second = _review(str(drafts), "--out", str(out), input="a\nx\na\n")  # x: not a key, asked again
    assert second.exit_code == 0, second.output
    assert f"[1/2] {ids[2]}" in second.output and f"[2/2] {ids[3]}" in second.output
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == [ids[0], ids[2], ids[3]]
    assert "3 accepted, 1 dropped, 0 left" in second.output


def test_an_edited_answer_must_be_in_the_paragraph_and_is_stored_as_it_writes_it(tmp_path):
    corpus = CorpusText.from_paths([write_corpus(tmp_path / "corpus")])
    pid = next(p for p, t in corpus.texts.items() if "黎定基" in t)
    out = tmp_path / "drafts.jsonl"
    write_drafts(Drafter(corpus, ScriptedDraftModel(), floor=0.45, normaliser=T2S), [Task("answerable", pid, "zh-Hant")], out)
    mine = tmp_path / "mine.jsonl"
    typed = "e\n海洋公園水上樂園預計每年吸引多少遊客？\n三百萬名\n二百万名游客\na\n"
    result = _review(str(out), "--out", str(mine), input=typed)
    assert result.exit_code == 0, result.output
    assert "'三百萬名' is not in the paragraph" in result.output
    row = json.loads(mine.read_text(encoding="utf-8"))
    assert row["question"] == "海洋公園水上樂園預計每年吸引多少遊客？" and row["answers"] == ["二百萬名遊客"]
    assert row["gold"] == [pid]


def test_review_refuses_to_write_over_its_drafts(tmp_path):
    drafts = _drafts(tmp_path, 1)
    result = _review(str(drafts), "--out", str(drafts), "--accept-all")
    assert result.exit_code == 2 and "another file" in result.output


# ------------------------------------------------------------------------------- draft -> review -> eval

RULES = """
[[rule]]
set = "gold"
group = "overall"
metric = "recall@5"
min = 0.8

[[rule]]
set = "gold"
group = "overall"
metric = "answer_in_citations"
min = 0.4
"""


@pytest.mark.model
def test_drafted_and_reviewed_gold_gates_rag_eval_and_catches_worse_retrieval(scripted, tmp_path, monkeypatch):
    """Five small documents (繁體 and 简体): draft (the scripted model), accept all, `rag eval` passes;
    the same gold set against retrieval with a relevance floor nothing reaches fails the gate: the paired
    comparison with the first run reports the drop (the threshold rules pass on the first run with room).
    (Dense retrieval turned off, RAG_LEXICAL_WEIGHT=1 RAG_LEXICAL_WEIGHT_LATIN=1 RAG_GLOSS_WEIGHT=0, hurts
    only the five English questions here: 5 worse of 5 is p = 0.03, within the gate's noise.)"""
    _, corpus = scripted
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    index, drafts, mine = tmp_path / "ix", tmp_path / "drafts.jsonl", tmp_path / "mine.jsonl"
    built = CliRunner().invoke(cli.main, ["index", str(corpus), "--index", str(index), "-q"])
    assert built.exit_code == 0, built.output
    drafted = _draft("--index", str(index), "--out", str(drafts), "--per-doc", "3", "--near-misses", "3")
    assert drafted.exit_code == 0 and "wrote 18 drafts" in drafted.stdout, drafted.output
    near = [d for d in map(json.loads, drafts.read_text(encoding="utf-8").splitlines()) if not d["answers"]]
    # from an index, each near miss was also judged against the paragraphs a search for it found
    assert len(near) == 3 and all(len(d["searched"]) == 3 and d["para_id"] not in d["searched"] for d in near)
    assert _review(str(drafts), "--out", str(mine), "--accept-all").exit_code == 0
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES, encoding="utf-8")

    def run_eval(report: str, baseline: Path) -> Result:
        return CliRunner().invoke(cli.main, ["eval", str(mine), "--index", str(index), "--sets", "gold",
                                             "--thresholds", str(rules), "--baseline", str(baseline),
                                             "--report", str(tmp_path / report)])

    first = run_eval("good", tmp_path / "no-baseline-yet.json")
    assert first.exit_code == 0, first.output
    good = json.loads((tmp_path / "good/results.json").read_text(encoding="utf-8"))
    assert good["sets"]["gold"]["counts"]["total"] == 18 and good["sets"]["gold"]["validation_problems"] == []
    monkeypatch.setenv("RAG_MIN_SCORE", "1.0")  # a relevance floor no paragraph reaches: nothing is cited
    get_settings.cache_clear()
    worse = run_eval("worse", tmp_path / "good/results.json")
    assert worse.exit_code == 1, worse.output
    failures = json.loads((tmp_path / "worse/results.json").read_text(encoding="utf-8"))["gate"]["failures"]
    assert any(f.startswith("regression: gold [overall] answer_in_citations") for f in failures), failures
    assert "WORSE: gold [overall] false_abstention" in worse.stdout


# ------------------------------------------------------------------------------- the real model


@pytest.mark.model
@pytest.mark.slow
def test_the_local_model_drafts_questions_whose_answers_are_in_their_paragraphs(local_model_path, tmp_path):
    from rag.config import Settings
    from rag.evaluation.goldset import paragraphs_from_golden
    from rag.text.language import detect_lang

    golden = paragraphs_from_golden(Path(__file__).parent / "golden")
    chosen = ["2024-03-11-hkpc-welcomes-two-sessions#p2", "2023-07-10-new-industrialisation-centre-established#p10",
              "2024-03-11-hkpc-welcomes-two-sessions#p5"]
    corpus = CorpusText({p: golden[p] for p in chosen}, {p: "" for p in chosen}, {"d": chosen})
    model = drafting.local_draft_model(Settings(llm_model_path=local_model_path))
    tasks = [Task("answerable", pid, lang) for pid, lang in zip(chosen, ("zh-Hant", "zh-Hans", "en"), strict=True)]
    out = tmp_path / "drafts.jsonl"
    tally = write_drafts(Drafter(corpus, model, floor=0.45, normaliser=T2S), tasks, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sum(tally.kept.values()) + sum(tally.dropped.values()) == 3 and rows, tally
    for row in rows:
        assert all(a in golden[row["para_id"]] for a in row["answers"])  # verbatim, in the paragraph's script
        assert (detect_lang(row["question"]) == "en") == (row["lang"] == "en")
        assert 0.0 <= row["self_check"] <= 1.0
    assert validate_gold(load_gold(out), golden) == []


def test_a_near_miss_drafted_from_an_index_is_also_judged_against_what_a_search_finds(tmp_path):
    far = "生產力局今年的研發開支為十億元。"  # answers it; not a neighbour, but a search finds it
    weather = "無關段落，講述香港的天氣情況。"
    question = "生產力局今年的研發開支是多少？"
    corpus = _corpus([CHAIR, BUDGET, STAFF, weather, far])
    ids = {text: pid for pid, text in corpus.texts.items()}
    searched = []

    def search(q: str, k: int) -> list[str]:  # ranks the paragraph itself and a neighbour first
        searched.append((q, k))
        return [ids[BUDGET], ids[STAFF], ids[far], ids[weather]][:k]

    def drafter(answering: set[str]) -> Drafter:
        stub = ReplyStub(lambda m: json.dumps({"question": question}, ensure_ascii=False),
                         judge=lambda q, title, text: 0.9 if text in answering else 0.1)
        return Drafter(corpus, stub, floor=0.45, normaliser=T2S, search=search)

    record, got = drafter({far}).draft(Task("unanswerable", "d1#p2", "zh-Hant"))
    assert (record, got) == (None, "answered_elsewhere") and searched[-1] == (question, 3 + 3)
    record, got = drafter(set()).draft(Task("unanswerable", "d1#p2", "zh-Hant"))
    assert got == "kept" and record is not None
    assert record["searched"] == {ids[far]: 0.1, ids[weather]: 0.1}  # not its own paragraph or a neighbour again
    assert record["neighbours"] == {"d1#p1": 0.1, "d1#p3": 0.1}
    path = tmp_path / "near.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    shown = "\n".join(show(load_gold(path)[0], 1, 1, T2S, styled=False))
    assert f"neighbours d1#p1 0.10, d1#p3 0.10; found by a search {ids[far]} 0.10, {ids[weather]} 0.10" in shown
