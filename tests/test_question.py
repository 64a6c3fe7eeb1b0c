"""Follow-ups without a language model: the previous question is prepended only when the
question depends on it (rag.question.depends_on_history), in 繁體, 简体 and English."""

from __future__ import annotations

import pytest

from rag.question import Question, contextualise, depends_on_history


def _history(*questions: str) -> list[dict[str, str]]:
    turns = []
    for q in questions:
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": "……"}]
    return turns


@pytest.mark.parametrize(
    ("question", "why"),
    [
        # pointing back
        ("他是甚麼時候上任的？", "reference"),
        ("該中心由誰管理？", "reference"),
        ("這項計劃資助多少？", "reference"),
        ("它的目标是什么？", "reference"),
        ("这个中心什么时候成立？", "reference"),
        ("上述措施有哪些成效？", "reference"),
        ("Who manages it?", "reference"),
        ("What is its goal?", "reference"),
        ("When did that start?", "reference"),
        ("How big is that fund?", "reference"),
        ("What did they sign?", "reference"),
        # naming only a new facet
        ("資助上限呢？", "ellipsis"),
        ("還有哪些措施？", "ellipsis"),
        ("那么资金呢？", "ellipsis"),
        ("另外还有什么合作？", "ellipsis"),
        ("What about the funding?", "ellipsis"),
        ("And the chairman?", "ellipsis"),
        ("How about Shenzhen?", "ellipsis"),
        # too little to stand alone
        ("主席是誰？", "too short"),
        ("為甚麼？", "too short"),
        ("总裁是谁？", "too short"),
        ("Who is the chairman?", "too short"),
        ("How much?", "too short"),
        ("Why?", "too short"),
    ],
)
def test_a_question_that_leans_on_the_history_says_why(question, why):
    assert depends_on_history(question) == why


@pytest.mark.parametrize(
    "question",
    [
        "生產力局主席是誰？",
        "新型工業加速計劃資助甚麼？",
        "其他城市有甚麼合作？",  # 其他 "other" does not point back
        "政府應該如何推動新型工業化？",  # nor does 應該 "should"
        "因此香港要發展甚麼產業？",  # nor 因此 "therefore"
        "為甚麼香港要推動新型工業化呢？",  # 呢 after a question word only softens
        "陳祖恒是誰？",  # one word, but a name
        "FLAIR是什麼？",  # an acronym
        "新型工业化发展中心由谁管理？",
        "为什么要推动新型工业化呢？",
        "智能生产线有多少条？",
        "Who manages the New Industrialisation Development Centre?",
        "What is the centre that opened in 2023?",  # relative "that"
        "How many smart production lines did the government fund this year?",  # "this year"
        "What is FLAIR?",
        "What is new industrialisation?",
    ],
)
def test_a_standalone_question_does_not_depend_on_the_history(question):
    assert depends_on_history(question) is None


@pytest.mark.parametrize(
    ("previous", "switch", "follow_up"),
    [
        ("生產力局主席是誰？", "新型工業化發展中心由誰管理？", "他是甚麼時候上任的？"),
        ("生产力局主席是谁？", "新型工业化发展中心由谁管理？", "它是什么时候成立的？"),
        ("Who chairs the Productivity Council?", "Who manages the New Industrialisation Development Centre?",
         "When was it set up?"),
    ],
)
def test_topic_switch_and_follow_up_in_each_script(previous, switch, follow_up):
    history = _history(previous)
    assert contextualise(switch, history) == switch  # a new topic keeps its own words only
    assert contextualise(follow_up, history) == f"{previous} {follow_up}"
    # and back: a follow-up after the switch leans on the switched-to question, not the first
    assert contextualise(follow_up, _history(previous, switch)) == f"{switch} {follow_up}"
    assert Question.make(switch, history=history).search_text == switch


def test_no_history_or_no_user_turn_leaves_the_question_alone():
    assert contextualise("他是誰？", None) == "他是誰？"
    assert contextualise("他是誰？", [{"role": "assistant", "content": "陳祖恒"}]) == "他是誰？"
    assert contextualise("他是誰？", [{"role": "user", "content": "  "}]) == "他是誰？"


# -- through the real service on the default corpus -----------------------------------------

CHAIR = "2024-03-11-hkpc-welcomes-two-sessions#p2"  # 生產力局主席陳祖恒表示 ...
CENTRE = "2023-07-10-new-industrialisation-centre-established#p1"  # 發展中心由香港生產力促進局管理


@pytest.mark.model
@pytest.mark.parametrize(
    ("first", "switch", "switch_gold", "follow_up"),
    [
        ("新型工業化發展中心是甚麼時候成立的？", "生產力局主席是誰？", CHAIR, "它由誰管理？"),
        ("新型工业化发展中心是什么时候成立的？", "生产力局主席是谁？", CHAIR, "它由谁管理？"),
        ("When was the New Industrialisation Development Centre set up?",
         "Who is the chairman of the Hong Kong Productivity Council?", CHAIR, "Who manages it?"),
    ],
)
def test_topic_switches_both_ways_through_the_service(corpus_service, first, switch, switch_gold, follow_up):
    about_centre = _history(first)
    # A follow-up that points back finds the centre's paragraph only with the history.
    alone = [h.para_id for h in corpus_service.search(follow_up, k=5)]
    followed = [h.para_id for h in corpus_service.search(follow_up, k=5, history=about_centre)]
    assert followed[0] == CENTRE, followed
    assert alone[0] != CENTRE, alone
    # A new standalone question after that history retrieves exactly as if asked alone.
    switched = corpus_service.search(switch, k=5, history=about_centre)
    assert [h.para_id for h in switched] == [h.para_id for h in corpus_service.search(switch, k=5)]
    assert switched[0].para_id == switch_gold
    # The answer to the switch cites the chairman's paragraph, not the centre's.
    answer = corpus_service.ask(switch, k=3, history=about_centre)
    assert answer.citations[0].para_id == switch_gold
    assert "陳祖恒" in answer.answer


def test_a_rewrite_must_resolve_something_from_the_conversation():
    from rag.llm.rewrite import usable

    turns = "User: 创新科技署有哪些新计划？\nAssistant: 推出新型工业加速计划。"
    assert not usable("资助是什么？", "那资助呢？", turns)  # the subject was lost, not resolved
    assert usable("新型工业加速计划的资助是什么？", "那资助呢？", turns)
    assert not usable("What is the funding?", "那资助呢？", turns)  # another language
    assert not usable("", "那资助呢？", turns) and not usable("资助" * 200, "那资助呢？", turns)


def test_a_rewrite_must_keep_what_the_question_asks():
    from rag.llm.rewrite import usable

    turns = "User: 數碼港由哪個機構管理？\nAssistant: 由香港數碼港管理有限公司管理。"
    # 這個園區 resolved to the company, and 園區 dropped: the question is no longer the one asked
    assert not usable("香港數碼港管理有限公司的主席是誰？", "那麼這個園區的主席是誰？", turns)
    assert usable("數碼港園區的主席是誰？", "那麼這個園區的主席是誰？", turns)
    assert not usable("What does Cyberport do?", "Which start-up programmes does it run?",
                      "User: What is Cyberport?\nAssistant: A digital technology hub.")
