"""Candidate gold questions for a corpus, drafted by a language model (``rag gold draft``): the
local model, or the model server of ``RAG_LLM_BASE_URL`` when it is set (:func:`draft_model`).

A human reviews every draft (``rag gold review``, :mod:`rag.evaluation.review`); this module
only proposes and checks:

- sampled paragraphs (``--per-doc`` or ``--sample``, a fixed seed, documents taken in turn),
  one question each, the languages asked for in turn;
- the model copies a short answer from the paragraph and writes a question it answers. The
  answer must occur in the paragraph, compared script-blind (the matching form: NFKC, case,
  OpenCC), and is stored as the paragraph writes it, so ``rag eval`` finds it verbatim; for an
  English question over a Chinese paragraph it is the Chinese span. A draft whose answer is not
  in the paragraph, whose reply is not JSON, whose question is in another language or holds its
  own answer is dropped and counted;
- the self-check: the answerability judge's P(yes) (``rag.llm.judge``) that the paragraph
  answers the question. Drafts below the floor are kept and flagged. Other paragraphs that hold
  the answer too are judged, and those that answer join ``gold``;
- near misses (``--near-misses``): a question on the paragraph's topic that it does not answer,
  kept only when the judge says no for the paragraph, for its neighbours (the paragraphs
  before and after it in the document) and, drafting from an index, for the first
  :data:`NEAR_MISS_SEARCH_K` other paragraphs a search for the question finds (``searched``);
  written as ``rag eval`` reads an unanswerable question (empty ``answers`` and ``gold``). The
  rest of the corpus is not checked: the review is.

Each draft is a gold-set line (``rag.evaluation.goldset``) with what the review shows besides:
``self_check``, ``flags``, ``para_id``, ``title``, ``paragraph`` (and ``also``, ``neighbours``).
Drafts are appended to the output as they are made; a rerun of the same command continues it.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rag.answer.frame import locate_span, trim_span
from rag.config import Settings
from rag.errors import GeneratorError, InputError, ModelError
from rag.evaluation.goldset import LANGS
from rag.text.language import detect_lang, is_chinese_text
from rag.text.normalise import Normaliser, convert_script
from rag.text.script import script_config
from rag.text.sentences import content_chars, matching_form

if TYPE_CHECKING:  # the engine loads only when drafting runs
    from rag.answer.written.client import Generator
    from rag.llm.judge import Judge
    from rag.llm.server_judge import ServerJudge

MIN_PARAGRAPH_CHARS = 20  # letters, digits, ideographs: shorter paragraphs (headings, credits) are not asked about
MAX_PASSAGE_CHARS = 900  # of a paragraph shown to the model (the prompt stays short on 2 cores)
LONG_ANSWER_CHARS = 30  # a longer answer is kept and flagged: gold answers are short spans
MAX_OTHER_PARAGRAPHS = 3  # other paragraphs holding the answer that are judged; more: flagged instead
MAX_REPLY_TOKENS = 120  # one JSON object: a question and a short answer
REPLY_TIMEOUT_S = 120.0  # per reply, at the least (RAG_LLM_TIMEOUT_S when longer)
DEFAULT_SAMPLE = 30

LANG_NAMES = {"zh-Hant": "Traditional Chinese (繁體中文)", "zh-Hans": "Simplified Chinese (简体中文)", "en": "English"}
# A question of a Chinese language is put into its script: the small model mixes them up.
SCRIPT_OF = {"zh-Hant": script_config("hant"), "zh-Hans": script_config("hans")}

QUESTION_SYSTEM = (
    "You write quiz questions about a passage. Pick one specific fact of the passage, copy a short answer for it "
    "from the passage word for word, and ask for it with a question that names its subject, so that a reader who "
    'has not seen the passage understands it. The question must not contain the answer. Reply with JSON only: '
    '{"answer": ..., "question": ...}.'
)
NEAR_MISS_SYSTEM = (
    "You write quiz questions that a passage cannot answer. Ask about the passage's subject for a detail the "
    "passage does not give (a cost, a date, a number, a name, a place), naming the subject. "
    'Reply with JSON only: {"question": ...}.'
)
# One worked example per language, the same passage: a fixed prefix the engine keeps cached.
EXAMPLE_PASSAGE = "科技園公司行政總裁黃克強表示，園區去年吸引了超過1,200家科技公司進駐。"
EXAMPLES = {
    "zh-Hant": {"answer": "黃克強", "question": "科技園公司的行政總裁是誰？"},
    "zh-Hans": {"answer": "超過1,200家", "question": "去年有多少家科技公司进驻科技园？"},
    "en": {"answer": "黃克強", "question": "Who is the chief executive of the Science Park corporation?"},
}
NEAR_MISS_EXAMPLES = {
    "zh-Hant": "科技園公司明年的財政預算是多少？",
    "zh-Hans": "黄克强是哪一年出任科技园公司行政总裁的？",
    "en": "How much rent do companies pay at the Science Park?",
}
_PASSAGE_REFERENCE = re.compile(r"\b(?:passage|article|text)\b|文中|本文|文章|這段|这段|該段|该段", re.IGNORECASE)


class DraftModel(Protocol):
    """What drafting needs of a language model: chat replies and the judge's P(yes)."""

    name: str

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The model's reply to chat ``messages``; raises ``GeneratorError`` on failure."""
        ...

    def p_yes(self, question: str, title: str, text: str) -> float:
        """P(yes) that the paragraph (``title``, ``text``) answers ``question``."""
        ...


class JudgingDraftModel:
    """A generator writing drafts and a judge giving their self-check: the local model (the
    judge's GGUF, loaded once) for both, or a model server (its first token's logprobs judge)."""

    def __init__(self, writer: Generator, judge: Judge | ServerJudge, name: str) -> None:
        self.writer = writer
        self.judge = judge
        self.name = name

    def complete(self, messages: list[dict[str, str]]) -> str:
        return self.writer.complete(messages)

    def p_yes(self, question: str, title: str, text: str) -> float:
        return self.judge.p_yes(question, title, text)


def local_draft_model(settings: Settings) -> JudgingDraftModel:
    """The local model of ``settings`` (``RAG_LLM_MODEL_PATH``, else the packaged one), whatever
    ``RAG_LLM`` says; a ``ModelError`` that says how to set it up when it cannot be had."""
    from rag.answer.written.factory import judge_from_settings, local_model_of
    from rag.llm.generate import LocalGenerator
    from rag.llm.judge import Judge

    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before llama.cpp's OpenMP starts (rag.cli)
    local = settings.model_copy(update={"llm": "local", "llm_judge": "local"})
    try:
        judge = judge_from_settings(local)
    except ModelError as exc:
        raise ModelError(f"drafting needs the local language model, which is not available: {exc}") from None
    model = local_model_of(judge)
    if not isinstance(judge, Judge) or model is None:  # not with llm_judge=local; said plainly if it were
        raise ModelError("drafting needs the local language model (RAG_LLM_MODEL_PATH or `bash scripts/setup.sh --llm`)")
    writer = LocalGenerator(model, timeout_s=max(settings.llm_timeout_s, REPLY_TIMEOUT_S), max_tokens=MAX_REPLY_TOKENS)
    return JudgingDraftModel(writer, judge, judge.model.path.name)


def server_draft_model(settings: Settings) -> JudgingDraftModel:
    """The model server of ``RAG_LLM_BASE_URL`` (``RAG_LLM_MODEL``, ``RAG_LLM_API_KEY``); a
    ``ModelError`` that says what is wrong when it cannot draft (unreachable, no logprobs)."""
    from rag.answer.written.client import OpenAIChatGenerator
    from rag.answer.written.factory import judge_from_settings
    from rag.llm.server_judge import ServerJudge

    url = settings.llm_base_url or ""
    on_server = settings.model_copy(update={"llm": "local", "llm_judge": "server"})
    try:
        judge = judge_from_settings(on_server)
    except (ModelError, ValueError) as exc:
        raise ModelError(f"drafting through the model server at {url} cannot start: {exc}") from None
    assert isinstance(judge, ServerJudge)  # llm_judge=server always has one, or raised
    writer = OpenAIChatGenerator(url, settings.llm_model, api_key=settings.llm_api_key,
                                 timeout_s=max(settings.llm_timeout_s, REPLY_TIMEOUT_S), max_tokens=MAX_REPLY_TOKENS)
    return JudgingDraftModel(writer, judge, f"{settings.llm_model} at {url}")


def draft_model(settings: Settings) -> DraftModel:
    """The model that drafts: the server of ``RAG_LLM_BASE_URL`` when it is set, else the local
    model (``RAG_LLM_MODEL_PATH``, else the packaged one)."""
    return server_draft_model(settings) if settings.llm_base_url else local_draft_model(settings)


# ------------------------------------------------------------------------------- paragraphs


@dataclass(frozen=True)
class CorpusText:
    """The paragraphs drafts are made from: text and title by para_id, each document's in order."""

    texts: dict[str, str]
    titles: dict[str, str]  # para_id -> its document's title
    documents: dict[str, list[str]]  # doc_id -> its para_ids in order

    @classmethod
    def from_index(cls, index_dir: Path) -> CorpusText:
        """The paragraphs of a built index (no model is loaded)."""
        from rag.index.loaded import LoadedIndex

        loaded = LoadedIndex.open(index_dir, verify="off")
        try:
            docs = {d.doc_id: (d.title, list(d.paragraph_ids)) for d in loaded.documents.values()}
            texts = {pid: loaded.paragraphs[pid].text for _, pids in docs.values() for pid in pids}
        finally:
            loaded.close()
        return cls(texts, {pid: title for title, pids in docs.values() for pid in pids},
                   {doc: pids for doc, (_, pids) in docs.items()})

    @classmethod
    def from_paths(cls, paths: Sequence[Path]) -> CorpusText:
        """The paragraphs of corpus files or folders, cleaned as ``rag index`` cleans them."""
        from rag.ingest.corpus import load_corpus

        missing = [str(p) for p in paths if not Path(p).exists()]
        if missing:
            raise InputError(f"no such file or folder: {', '.join(missing)}")
        docs, _skipped = load_corpus(list(paths))
        if not docs:
            raise InputError(f"no documents in {', '.join(map(str, paths))}")
        return cls({p.para_id: p.text for d in docs for p in d.paragraphs},
                   {p.para_id: d.title for d in docs for p in d.paragraphs},
                   {d.doc_id: [p.para_id for p in d.paragraphs] for d in docs})

    def neighbours(self, para_id: str) -> list[str]:
        """The paragraphs before and after ``para_id`` in its document."""
        for pids in self.documents.values():
            if para_id in pids:
                i = pids.index(para_id)
                return [pids[j] for j in (i - 1, i + 1) if 0 <= j < len(pids)]
        return []

    def holding(self, span: str, normaliser: Normaliser) -> Iterator[tuple[str, tuple[int, int]]]:
        """Every paragraph holding ``span`` (script-blind), with where."""
        for pid, text in self.texts.items():
            found = locate_span(span, text, normaliser)
            if found is not None:
                yield pid, found


# ------------------------------------------------------------------------------- the plan


Kind = Literal["answerable", "unanswerable"]


@dataclass(frozen=True)
class Task:
    """One draft to make: a question of ``kind`` in ``lang`` about paragraph ``para_id``."""

    kind: Kind
    para_id: str
    lang: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^\w-]+", "-", self.para_id).strip("-")
        return f"{self.lang}-unanswerable-{slug}" if self.kind == "unanswerable" else f"{self.lang}-{slug}"


def parse_langs(text: str) -> tuple[str, ...]:
    """``zh-Hant,en`` -> the languages, each one of ``LANGS``, in the order given."""
    langs = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [lang for lang in langs if lang not in LANGS]
    if bad or not langs:
        raise InputError(f"--langs must be a comma-separated list of {', '.join(LANGS)}; got {text!r}")
    return langs


def plan(corpus: CorpusText, *, per_doc: int | None = None, sample: int | None = None,
         langs: Sequence[str] = LANGS, near_misses: int = 0, seed: int = 0) -> list[Task]:
    """The drafts to make: ``per_doc`` paragraphs of each document, or ``sample`` paragraphs in
    all (documents in turn), shuffled with ``seed``; one question each, ``langs`` in turn; then
    ``near_misses`` near misses, from the same paragraphs first, the languages again in turn."""
    if per_doc is not None and sample is not None:
        raise InputError("give --per-doc or --sample, not both")
    for name, value in (("--per-doc", per_doc), ("--sample", sample)):
        if value is not None and value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if near_misses < 0:
        raise InputError(f"--near-misses must be 0 or more, got {near_misses}")
    rng = random.Random(seed)
    pools = []
    for doc in sorted(corpus.documents):
        pids = [p for p in corpus.documents[doc] if content_chars(corpus.texts[p]) >= MIN_PARAGRAPH_CHARS]
        rng.shuffle(pids)
        pools.append(pids)
    rng.shuffle(pools)
    every = _in_turn(pools)
    if per_doc is not None:
        chosen = _in_turn([pids[:per_doc] for pids in pools])
    else:
        chosen = every[: DEFAULT_SAMPLE if sample is None else sample]
    tasks = [Task("answerable", pid, langs[i % len(langs)]) for i, pid in enumerate(chosen)]
    rest = chosen + [p for p in every if p not in set(chosen)]
    tasks += [Task("unanswerable", pid, langs[i % len(langs)]) for i, pid in enumerate(rest[:near_misses])]
    return tasks


def _in_turn(pools: Sequence[Sequence[str]]) -> list[str]:
    """The first of each pool, then the second of each, and so on."""
    out: list[str] = []
    for i in range(max((len(p) for p in pools), default=0)):
        out += [p[i] for p in pools if i < len(p)]
    return out


# ------------------------------------------------------------------------------- prompts and replies


def passage_of(text: str) -> str:
    return text[:MAX_PASSAGE_CHARS]


def question_messages(lang: str, text: str) -> list[dict[str, str]]:
    """Chat messages asking for a question in ``lang`` and its answer copied from ``text``."""
    def ask(passage: str) -> str:
        return (f"Passage:\n{passage}\n\nCopy a short answer (a name, number, date or term) from the passage exactly "
                f"as written, then write the question in {LANG_NAMES[lang]}.")

    return [{"role": "system", "content": QUESTION_SYSTEM},
            {"role": "user", "content": ask(EXAMPLE_PASSAGE)},
            {"role": "assistant", "content": json.dumps(EXAMPLES[lang], ensure_ascii=False)},
            {"role": "user", "content": ask(passage_of(text))}]


def near_miss_messages(lang: str, text: str) -> list[dict[str, str]]:
    """Chat messages asking for a question in ``lang`` on ``text``'s topic that it does not answer."""
    def ask(passage: str) -> str:
        return f"Passage:\n{passage}\n\nWrite the question in {LANG_NAMES[lang]}."

    return [{"role": "system", "content": NEAR_MISS_SYSTEM},
            {"role": "user", "content": ask(EXAMPLE_PASSAGE)},
            {"role": "assistant", "content": json.dumps({"question": NEAR_MISS_EXAMPLES[lang]}, ensure_ascii=False)},
            {"role": "user", "content": ask(passage_of(text))}]


_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)


def parse_reply(reply: str, keys: Sequence[str]) -> dict[str, str] | None:
    """The first JSON object in ``reply`` (code fences and prose around it allowed) with every
    one of ``keys`` a non-empty string (keys matched case-blind); None when there is none."""
    text = _FENCE.sub("", reply)
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at >= 0:
        try:
            obj, _ = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            fields = {str(k).strip().lower(): v for k, v in obj.items()}
            values = {k: fields.get(k) for k in keys}
            if all(isinstance(v, str) and v.strip() for v in values.values()):
                return {k: str(v).strip() for k, v in values.items()}
        at = text.find("{", at + 1)
    return None


def fit_question(question: str, lang: str) -> str | None:
    """The question in its language's script (繁體 / 简体), or None when it is written in another
    language than ``lang``."""
    question = " ".join(question.split())
    if lang == "en":
        return question if detect_lang(question) == "en" else None
    if not is_chinese_text(question):
        return None
    return convert_script(question, SCRIPT_OF[lang])


# ------------------------------------------------------------------------------- drafting


DROPPED = {
    "no_reply": "no reply from the model (an error or a timeout)",
    "bad_json": "reply not JSON with the fields asked for",
    "wrong_language": "question in another language than asked",
    "span_not_in_paragraph": "answer not in the paragraph (script-blind)",
    "answer_in_question": "question holds its own answer",
    "duplicate": "same question as an earlier draft",
    "answered_by_paragraph": "near miss the judge found answered by its paragraph",
    "answered_by_neighbour": "near miss the judge found answered by a neighbouring paragraph",
    "answered_elsewhere": "near miss the judge found answered by a paragraph a search for it found",
}
# A near miss drafted from an index is also judged against the paragraphs a search for it ranks
# first (besides its own paragraph and its neighbours): those a user asking it would be shown.
NEAR_MISS_SEARCH_K = 3


@dataclass
class Tally:
    """What a drafting run made and dropped, for the summary line."""

    kept: Counter[str] = field(default_factory=Counter)  # kind -> drafts written
    flagged: int = 0
    already: int = 0  # drafts the output held from an earlier run
    retried: int = 0  # drafts asked for once more, saying what to avoid
    rescued: int = 0  # ... whose second reply passed
    dropped: Counter[str] = field(default_factory=Counter)  # reason (a DROPPED key) -> count

    def lines(self, out: Path, floor: float) -> list[str]:
        made = sum(self.kept.values())
        head = (f"wrote {made} drafts to {out} ({self.kept['answerable']} answerable, {self.kept['unanswerable']} "
                f"near misses); {self.flagged} flagged (self-check below {floor:.2f} or other notes)")
        if self.already:
            head += f"; {self.already} were made (or dropped) by an earlier run"
        if self.retried:
            head += f"; {self.retried} asked for again (answer not in the paragraph or in the question), " \
                    f"{self.rescued} of them mended"
        lines = [head, f"dropped {sum(self.dropped.values())} drafts"
                 + (f" (replies and reasons in {dropped_path(out)}):" if self.dropped else "")]
        lines += [f"  {n:4d}  {DROPPED[why]}" for why, n in self.dropped.most_common()]
        return lines


@dataclass(frozen=True)
class Correction:
    """A reply that failed a check the model may pass at a second try: why (a DROPPED key) and
    what to avoid, added to the request."""

    reason: str
    text: str


class Drafter:
    """Makes one draft at a time with ``model``, checked against ``corpus``."""

    def __init__(self, corpus: CorpusText, model: DraftModel, *, floor: float, normaliser: Normaliser,
                 search: Callable[[str, int], list[str]] | None = None) -> None:
        """``search(question, k)``: the para_ids a search ranks first (drafting from an index); a
        near miss is then judged against the first :data:`NEAR_MISS_SEARCH_K` of them too."""
        self.corpus = corpus
        self.search = search
        self.model = model
        self.floor = floor
        self.normaliser = normaliser
        self.seen: set[str] = set()  # matching forms of the questions drafted so far
        self.last_reply = ""  # the model's reply for the last draft (kept with a dropped one)
        self.retried = 0  # drafts asked for once more (answer not in the paragraph, or in the question)
        self.rescued = 0  # ... whose second reply passed those checks

    def draft(self, task: Task) -> tuple[dict[str, Any] | None, str]:
        """(the draft, "kept" or "flagged") or (None, the DROPPED reason). A reply whose answer is
        not in the paragraph, or is in its own question, is asked for once more, saying what to avoid."""
        if task.kind == "unanswerable":
            return self._near_miss(task)
        text = self.corpus.texts[task.para_id]
        title = self.corpus.titles.get(task.para_id, "")
        messages = question_messages(task.lang, text)
        self.last_reply = ""
        got = self._propose(messages, task.lang, text)
        if isinstance(got, Correction):
            # Asked afresh, told what to avoid: shown its own reply in a conversation, the small
            # model repeated it word for word (5 of 5 on the default corpus).
            self.retried += 1
            first = self.last_reply
            again = {**messages[-1], "content": f"{messages[-1]['content']} {got.text}"}
            got = self._propose([*messages[:-1], again], task.lang, text)
            self.last_reply = f"{first}\n--- asked again:\n{self.last_reply}"
            if isinstance(got, Correction):
                return None, got.reason
            self.rescued += not isinstance(got, str)
        if isinstance(got, str):
            return None, got
        question, answer = got
        if not self._new(question):
            return None, "duplicate"
        p = self.model.p_yes(question, title, text)
        flags = []
        if p < self.floor:
            flags.append(f"self-check {p:.2f} below the floor {self.floor:.2f}")
        if len(answer) > LONG_ANSWER_CHARS:
            flags.append(f"answer of {len(answer)} characters: gold answers are short spans")
        if _PASSAGE_REFERENCE.search(question):
            flags.append("the question mentions the passage: it should stand on its own")
        answers, gold, also = [answer], [task.para_id], []
        others = [(pid, at) for pid, at in self.corpus.holding(answer, self.normaliser) if pid != task.para_id]
        if len(others) > MAX_OTHER_PARAGRAPHS:
            flags.append(f"the answer occurs in {len(others)} other paragraphs (not judged): check which answer it")
        else:
            for pid, (a, b) in others:
                other = self.corpus.texts[pid]
                q = self.model.p_yes(question, self.corpus.titles.get(pid, ""), other)
                also.append({"para_id": pid, "p_yes": round(q, 3), "text": other})
                if q >= self.floor:
                    gold.append(pid)
                    if other[a:b] not in answers:
                        answers.append(other[a:b])
        record = {"id": task.id, "question": question, "lang": task.lang, "answers": answers, "gold": gold,
                  "self_check": round(p, 3), "flags": flags, "para_id": task.para_id, "title": title,
                  "paragraph": text, "model": self.model.name}
        if also:
            record["also"] = also
        return record, "flagged" if flags else "kept"

    def _propose(self, messages: list[dict[str, str]], lang: str, text: str) -> tuple[str, str] | str | Correction:
        """The (question, answer) of the model's reply to ``messages``, the answer as ``text``
        writes it; else the DROPPED reason, or a :class:`Correction` to send back."""
        try:
            reply = self.last_reply = self.model.complete(messages)
        except GeneratorError:
            return "no_reply"
        parsed = parse_reply(reply, ("question", "answer"))
        if parsed is None:
            return "bad_json"
        question = fit_question(parsed["question"], lang)
        if question is None:
            return "wrong_language"
        said = trim_span(parsed["answer"])
        found = locate_span(said, text, self.normaliser)
        if found is None:
            return Correction("span_not_in_paragraph", f"Not 「{said}」: it is not in the passage; copy the answer "
                                                       "word for word.")
        answer = text[found[0]:found[1]]
        if matching_form(answer, self.normaliser) in matching_form(question, self.normaliser):
            return Correction("answer_in_question", f"Do not ask about 「{answer}」 itself: pick another fact, whose "
                                                    "answer is not in the question.")
        return question, answer

    def _near_miss(self, task: Task) -> tuple[dict[str, Any] | None, str]:
        text = self.corpus.texts[task.para_id]
        title = self.corpus.titles.get(task.para_id, "")
        self.last_reply = ""
        try:
            reply = self.last_reply = self.model.complete(near_miss_messages(task.lang, text))
        except GeneratorError:
            return None, "no_reply"
        parsed = parse_reply(reply, ("question",))
        if parsed is None:
            return None, "bad_json"
        question = fit_question(parsed["question"], task.lang)
        if question is None:
            return None, "wrong_language"
        if not self._new(question):
            return None, "duplicate"
        p = self.model.p_yes(question, title, text)
        if p >= self.floor:
            return None, "answered_by_paragraph"
        neighbours = {}
        for pid in self.corpus.neighbours(task.para_id):
            q = self.model.p_yes(question, self.corpus.titles.get(pid, ""), self.corpus.texts[pid])
            if q >= self.floor:
                return None, "answered_by_neighbour"
            neighbours[pid] = round(q, 3)
        elsewhere = {}
        if self.search is not None:
            skip = {task.para_id, *neighbours}
            found = [pid for pid in self.search(question, NEAR_MISS_SEARCH_K + len(skip))
                     if pid not in skip and pid in self.corpus.texts][:NEAR_MISS_SEARCH_K]
            for pid in found:
                q = self.model.p_yes(question, self.corpus.titles.get(pid, ""), self.corpus.texts[pid])
                if q >= self.floor:
                    return None, "answered_elsewhere"
                elsewhere[pid] = round(q, 3)
        flags = ["the question mentions the passage: it should stand on its own"] if _PASSAGE_REFERENCE.search(question) else []
        return {"id": task.id, "question": question, "lang": task.lang, "answers": [], "gold": [],
                "self_check": round(p, 3), "flags": flags, "para_id": task.para_id, "title": title,
                "paragraph": text, "neighbours": neighbours, **({"searched": elsewhere} if self.search else {}),
                "model": self.model.name}, "flagged" if flags else "kept"

    def _new(self, question: str) -> bool:
        key = matching_form(question, self.normaliser)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


Progress = Callable[[int, int, Task, str, float], None]


def dropped_path(out: Path) -> Path:
    """Where the drafts dropped on the way to ``out`` are kept, with the reply and the reason."""
    return out.with_name(f"{out.stem}.dropped{out.suffix or '.jsonl'}")


def drafted_ids(out: Path) -> set[str]:
    """The ids of the drafts ``out`` holds already (an earlier, interrupted run)."""
    if not out.exists():
        return set()
    ids = set()
    for n, line in enumerate(out.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids.add(str(json.loads(line)["id"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{out}:{n} is not a draft (JSON with an id): delete the line, or the file to "
                             "start over") from None
    return ids


def write_drafts(drafter: Drafter, tasks: Sequence[Task], out: Path, *, progress: Progress | None = None) -> Tally:
    """Make ``tasks``' drafts, appending each to ``out`` as it is made (an interrupted run keeps
    what it wrote) and each dropped one, with the model's reply and the reason, to
    :func:`dropped_path`; tasks that either file holds already are skipped."""
    tally = Tally()
    dropped = dropped_path(out)
    done = drafted_ids(out) | drafted_ids(dropped)
    todo = [t for t in tasks if t.id not in done]
    tally.already = len(tasks) - len(todo)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fh:
        for i, task in enumerate(todo, start=1):
            t0 = time.perf_counter()
            record, outcome = drafter.draft(task)
            if record is None:
                tally.dropped[outcome] += 1
                with dropped.open("a", encoding="utf-8") as lost:
                    lost.write(json.dumps({"id": task.id, "lang": task.lang, "kind": task.kind, "para_id": task.para_id,
                                           "dropped": outcome, "why": DROPPED[outcome], "reply": drafter.last_reply},
                                          ensure_ascii=False) + "\n")
            else:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                fh.flush()
                tally.kept[task.kind] += 1
                tally.flagged += outcome == "flagged"
            if progress is not None:
                progress(i, len(todo), task, outcome, time.perf_counter() - t0)
            tally.retried, tally.rescued = drafter.retried, drafter.rescued
    return tally
