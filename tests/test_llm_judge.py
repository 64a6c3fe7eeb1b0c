"""The answerability judge on the real model (RAG_LLM=local), alone and inside the service."""

from __future__ import annotations

import threading

import pytest

from rag.answer.steps import Draft, Final, Pending, Piece, Retrieved
from rag.service import RagService
from rag.types import Hit

pytestmark = [pytest.mark.model, pytest.mark.slow]

CHAIR = Hit(
    para_id="hkpc#p2", doc_id="hkpc", title="生產力局歡迎兩會",
    text="香港生產力促進局（生產力局）主席陳祖恒表示，生產力局歡迎國家兩會提出發展新質生產力，"
         "並會全力支持香港推動新型工業化。",
    score=0.9,
)


def test_the_judge_separates_an_answer_from_a_near_miss(local_judge):
    asked = local_judge.p_yes("生產力局主席是誰？", CHAIR.title, CHAIR.text)
    english = local_judge.p_yes("Who chairs the Hong Kong Productivity Council?", CHAIR.title, CHAIR.text)
    missing = local_judge.p_yes("生產力局主席的年薪是多少？", CHAIR.title, CHAIR.text)
    off_topic = local_judge.p_yes("What is the budget for Mars exploration?", CHAIR.title, CHAIR.text)
    assert asked >= local_judge.floor and english >= local_judge.floor
    assert missing < local_judge.floor and off_topic < local_judge.floor
    assert 0.0 <= min(asked, english, missing, off_topic) and max(asked, english, missing, off_topic) <= 1.0


def test_a_cached_paragraph_gives_the_same_verdict_as_a_fresh_one(local_judge):
    model = local_judge.model
    other = Hit(para_id="x#p1", doc_id="x", title="", text="創新科技及工業局今年推出新型工業加速計劃。", score=0.5)
    question = "新型工業加速計劃由哪個部門推出？"
    local_judge.p_yes("生產力局主席是誰？", CHAIR.title, CHAIR.text)  # CHAIR's prefix is now cached
    local_judge.p_yes(question, other.title, other.text)  # ...and the context holds another one
    hits_before = model.stats.prefix_hits
    cached = local_judge.p_yes("陳祖恒是甚麼機構的主席？", CHAIR.title, CHAIR.text)
    assert model.stats.prefix_hits == hits_before + 1  # restored from the cache, not re-evaluated
    with model.lock:  # forget every cached prefix: the same question evaluated from scratch
        model._cache.clear()
        model.stats.cache_bytes = 0
        model.llm.n_tokens = 0
    fresh = local_judge.p_yes("陳祖恒是甚麼機構的主席？", CHAIR.title, CHAIR.text)
    assert abs(cached - fresh) < 0.02


def test_concurrent_questions_queue_on_the_one_model(local_judge):
    questions = ["生產力局主席是誰？", "生產力局主席的年薪是多少？", "Who chairs the Productivity Council?"]
    alone = [local_judge.p_yes(q, CHAIR.title, CHAIR.text) for q in questions]
    together: dict[int, float] = {}

    def ask(i: int) -> None:
        together[i] = local_judge.p_yes(questions[i], CHAIR.title, CHAIR.text)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [round(together[i], 2) for i in range(len(questions))] == [round(p, 2) for p in alone]


@pytest.fixture(scope="module")
def judged_service(corpus_service, local_judge):
    settings = corpus_service.settings.model_copy(update={"llm": "local", "llm_timeout_s": 120.0})
    return RagService(corpus_service.index, corpus_service.encoder, settings, judge=local_judge)


def test_the_service_cites_only_what_the_judge_passes(judged_service, local_judge):
    ans = judged_service.ask("生產力局主席是誰？")
    assert not ans.abstained
    assert "2024-03-11-hkpc-welcomes-two-sessions#p2" in [c.para_id for c in ans.citations]
    assert all(c.judge is not None and c.judge >= local_judge.floor for c in ans.citations)
    assert "judge" in ans.timings_ms
    body = ans.to_dict()
    assert all("judge" in c for c in body["citations"])


@pytest.mark.parametrize(
    ("question", "reason_part"),
    [
        ("香港微電子研發院的院長月薪是多少？", "語言模型核對後"),
        ("生产力局2024年度的员工人数是多少？", "语言模型核对后"),
        ("What is the budget for Mars exploration in the Productivity Council's plan?", "language model"),
    ],
)
def test_the_service_abstains_when_no_paragraph_answers(judged_service, question, reason_part):
    ans = judged_service.ask(question)
    assert ans.abstained and not ans.citations
    assert reason_part in (ans.abstain_reason or "")


def test_local_mode_quotes_by_default_and_writes_when_asked(corpus_service, local_judge, judged_service):
    from rag.llm.generate import LocalGenerator

    assert judged_service.generator is None  # RAG_LLM_ANSWERS defaults to extractive
    assert judged_service.ask("生產力局主席是誰？").mode == "extractive"
    settings = corpus_service.settings.model_copy(update={"llm": "local", "llm_answers": "generated",
                                                          "llm_timeout_s": 120.0})
    writer = RagService(corpus_service.index, corpus_service.encoder, settings, judge=local_judge)
    assert isinstance(writer.generator, LocalGenerator)
    pieces = list(writer.generator.stream([{"role": "user", "content": "Reply with the word OK."}]))
    assert len(pieces) >= 1 and "OK" in "".join(pieces).upper()  # decoded token by token
    # A request for a written answer on the quoting service: the same local model writes it.
    ans = judged_service.ask("生產力局主席是誰？", answer_mode="written")
    assert ans.mode == "generated", ans.warnings
    assert judged_service.model_queue is not None and judged_service.model_queue.in_flight == 0
    assert "陳祖恒" in ans.answer and "2024-03-11-hkpc-welcomes-two-sessions#p2" in [c.para_id for c in ans.citations]


@pytest.fixture(scope="module")
def writer(corpus_service, local_judge):
    settings = corpus_service.settings.model_copy(update={"llm": "local", "llm_answers": "generated",
                                                          "llm_timeout_s": 120.0})
    return RagService(corpus_service.index, corpus_service.encoder, settings, judge=local_judge)


def test_a_written_answer_streams_from_the_engine_checked(writer, local_judge):
    """The steps of a real written answer: the extractive draft, the engine's tokens (the open
    sentence, unchecked), each checked sentence, then the answer those sentences make."""
    before = local_judge.model.stats.generated_tokens
    steps = list(writer.ask_steps("What is the name of the industrial AI platform developed by FLAIR?"))
    kinds = [type(s) for s in steps]
    assert kinds[:2] == [Retrieved, Draft] and isinstance(steps[-1], Final)
    answer = steps[-1].answer
    assert answer.mode == "generated", answer.warnings
    pieces = [s.text for s in steps if isinstance(s, Piece)]
    assert pieces and "".join(pieces) == answer.answer
    tokens = local_judge.model.stats.generated_tokens - before
    assert tokens > 5 and kinds.count(Pending) >= tokens // 2  # a step per decoded piece (a CJK character may take two tokens)
    assert 0 < answer.timings_ms["first_token"] <= answer.timings_ms["first_shown"] <= answer.timings_ms["total"]
    # the English answer keeps the source's name, and quotes the sentence it rests on
    assert "天工開物" in answer.answer and "「" in answer.answer
    assert "2024-03-11-hkpc-welcomes-two-sessions#p5" in [c.para_id for c in answer.citations]


@pytest.mark.parametrize(
    ("history", "follow_up", "wanted"),
    [
        ([{"role": "user", "content": "天工開物平台是甚麼？"},
          {"role": "assistant", "content": "天工開物是FLAIR開發的多用途工業人工智能應用平台。[1]"}],
         "它有甚麼用途？", ("天工開物", "FLAIR")),
        ([{"role": "user", "content": "What is the New Industrialisation Acceleration Scheme?"},
          {"role": "assistant", "content": "「新型工業加速計劃」以一比一配對形式資助企業。[1]"}],
         "How much does it fund each project?", ("Acceleration Scheme", "新型工業加速計劃")),
    ],
)
def test_a_follow_up_is_rewritten_to_stand_alone(writer, history, follow_up, wanted):
    question = writer.question(follow_up, history)
    assert question.rewritten and any(w in question.rewritten for w in wanted), question.rewritten
    assert question.search_text == question.rewritten and question.standalone == question.rewritten
    assert question.text == follow_up and question.lang == writer.question(follow_up).lang
    # a change of topic is not rewritten: it is asked as it stands
    switched = writer.question("新型工業加速計劃資助甚麼？", history)
    assert switched.rewritten is None and switched.search_text == "新型工業加速計劃資助甚麼？"
