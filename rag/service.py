"""The one object every edge (CLI, HTTP, UI, evals) talks to: a loaded index plus the encoder."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

from rag.answer.steps import Final, Retrieved, final_answer
from rag.config import Settings, get_settings
from rag.errors import IndexStateError, InputError, NotFoundError, RagError
from rag.index.compat import require_fit, require_model_id
from rag.index.loaded import LoadedIndex
from rag.index.manifest import read_manifest
from rag.index.tables import DocumentInfo
from rag.profiles import effective, profile_for, profile_of_settings, uncalibrated_text
from rag.question import Question, depends_on_history
from rag.retrieval.hybrid import HybridRetriever
from rag.text.normalise import Normaliser
from rag.threads import limit_this_thread
from rag.types import Answer, Hit, Paragraph

if TYPE_CHECKING:
    from rag.answer.lexicon import Lexicon
    from rag.answer.steps import Step
    from rag.answer.written.client import Generator as TextGenerator
    from rag.embedding import Encoder
    from rag.llm.admission import ModelQueue
    from rag.llm.judge import AnswerJudge
    from rag.llm.kvstore import PrefixStore
    from rag.llm.preread import PreRead
    from rag.llm.rewrite import Rewriter

log = logging.getLogger(__name__)
T = TypeVar("T")


def warm_up(settings: Settings) -> None:
    """Load what a first question would otherwise wait for: jieba's dictionary (~0.6 s on the
    first search), CC-CEDICT (~0.15 s from its cached parse; the first English question) and
    the answer module (~0.2 s). Each is loaded once per process."""
    try:
        Normaliser(settings.opencc_config).tokenise("香港新型工業化")
        if profile_of_settings(settings).translate_queries:
            from rag.retrieval.crosslingual import load_dictionary

            load_dictionary(settings.cache_dir)
        import rag.answer.compose  # noqa: F401
        from rag.text.sentences import question_terms

        question_terms("warming up the stemmer")
    except Exception:  # the first question reports any real problem with these
        log.debug("warm-up failed", exc_info=True)

MAX_K = 100
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_question(text: Any, settings: Settings, *, field: str = "question") -> str:
    """Validate a question at the boundary: a non-empty string within the length limit."""
    if not isinstance(text, str):
        raise InputError(f"{field} must be a string, got {type(text).__name__}")
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        raise InputError(f"{field} is empty: ask a question in Chinese or English")
    if len(text) > settings.max_question_chars:
        raise InputError(
            f"{field} has {len(text)} characters; the limit is {settings.max_question_chars} (RAG_MAX_QUESTION_CHARS)"
        )
    return text


# A request's answer_mode; "generated" (RAG_LLM_ANSWERS's and Answer.mode's name) is taken for "written".
ANSWER_MODES = ("extractive", "written")
_MODE_ALIASES = {"generated": "written"}


def check_answer_mode(mode: Any) -> str | None:
    """``"extractive"``, ``"written"`` or None (the server's default), validated at the boundary."""
    if mode is None:
        return None
    if not isinstance(mode, str) or _MODE_ALIASES.get(mode, mode) not in ANSWER_MODES:
        raise InputError(f"answer_mode must be one of {', '.join(ANSWER_MODES)} (or generated), got {mode!r}")
    return _MODE_ALIASES.get(mode, mode)


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise InputError(f"k must be an integer 1..{MAX_K}, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be 1..{MAX_K}, got {k}")
    return k


def in_background(load: Callable[[], T], name: str) -> Callable[[], tuple[T, float]]:
    """Start ``load`` in a daemon thread; the function returned waits for it and gives its result
    and seconds, or raises its exception in the caller's thread."""
    box: dict[str, Any] = {}

    def run() -> None:
        t0 = time.perf_counter()
        try:
            box["value"] = load()
        except BaseException as exc:  # re-raised by wait()
            box["error"] = exc
        box["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def wait() -> tuple[T, float]:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"], box["seconds"]

    return wait


class AskOptions(TypedDict, total=False):
    """A question's context: the conversation before it, the script to show the answer in, and
    how to answer (``answer_mode``: ``"written"`` or ``"extractive"``; None: the server's default)."""

    history: Sequence[dict[str, Any]] | None
    script: str | None
    answer_mode: str | None


class RagService:
    """Loaded once per process; safe to call from several threads."""

    encoder_load_seconds: float = 0.0  # measured by open() when it loaded the model
    llm_load_seconds: float = 0.0  # the same for the language model (RAG_LLM=local)
    # RAG_LLM=local asked for, but the model could not be had: why; the service runs lean (no judge)
    llm_error: str | None = None

    def __init__(
        self, index: LoadedIndex, encoder: Encoder, settings: Settings, *,
        on_request_thread: Callable[[], None] | None = limit_this_thread, judge: AnswerJudge | None = None,
    ) -> None:
        """``on_request_thread`` runs at the start of every search and answer, on the calling
        thread. The default applies the thread limits of a process whose edge chose them
        (:func:`rag.threads.limit_process`, called by ``rag serve`` and the CLI) to each thread
        that asks, such as a server's request threads; in any other process it does nothing.
        ``judge`` (``RAG_LLM=local``) reads the top paragraphs before they are cited: this
        process's model, which then also rewrites follow-ups and may write answers, behind the
        bounded queue; or a model server's (its own limits, no queue here)."""
        self.settings = settings
        self.on_request_thread = on_request_thread
        self.index = index
        self.encoder = encoder
        require_model_id(index.manifest, encoder.model_id, index.index_dir)
        self.normaliser = Normaliser(settings.opencc_config)
        self.calibration = effective(profile_for(index.manifest.get("model", {}).get("id") or encoder.model_id),
                                     settings)  # the model's tuned values, RAG_* settings over them
        if not self.calibration.calibrated:
            log.warning("%s", uncalibrated_text(self.calibration.model))
        self.retriever = HybridRetriever(
            index,
            encoder,
            self.normaliser,
            lexical_weight=self.calibration.lexical_weight,
            lexical_weight_latin=self.calibration.lexical_weight_latin,
            translate=self.calibration.translate_queries,
            gloss_weight=self.calibration.gloss_weight,
            cache_dir=settings.cache_dir,
            calibration=self.calibration,
        )
        self.judge = judge  # RAG_LLM=local: the language model's answerability check
        self.kv_store: PrefixStore | None = None  # the judge's paragraph states beside this index
        self.preread: PreRead | None = None  # reading this index's paragraphs ahead of questions
        self.rewriter: Rewriter | None = None  # RAG_LLM=local: follow-ups made standalone
        # RAG_LLM=local: the bounded queue every question that uses the model passes (RAG_LLM_QUEUE)
        self.model_queue: ModelQueue | None = None
        # Imported here: the factory loads httpx, which a process without a service never needs.
        from rag.answer.written.factory import (
            local_model_of,
            writer_from_settings,
            writes_by_default,
            writes_locally,
        )

        model = local_model_of(judge)
        if model is not None:
            from rag.llm.admission import ModelQueue
            from rag.llm.rewrite import Rewriter

            self.rewriter = Rewriter(model)
            self.model_queue = ModelQueue(settings.llm_queue)
        # RAG_LLM_BASE_URL: a server writes the answer; RAG_LLM=local: the judge's model may.
        # Built once: a request's answer_mode picks the writer or leaves it out, never builds one.

        self.writer: TextGenerator | None = None  # what answer_mode="written" gets
        try:
            self.writer = writer_from_settings(settings, judge=judge)
        except ValueError:  # misconfigured: each answer says so (rag.answer.compose) and is extractive
            pass
        # The local model writes by default only when it loaded (else the lean mode quotes).
        lean = writes_locally(settings) and self.writer is None
        self.default_answer_mode = "written" if writes_by_default(settings) and not lean else "extractive"
        self.generator: TextGenerator | None = self.writer if self.default_answer_mode == "written" else None

    @classmethod
    def open(
        cls, index_dir: Path | None = None, settings: Settings | None = None, *, encoder: Encoder | None = None,
        on_request_thread: Callable[[], None] | None = limit_this_thread, lean_fallback: bool = False,
        kv_store: bool = False,
    ) -> RagService:
        """Open the index and load the model (in parallel), then warm up what questions use first.

        When ``RAG_LLM=local`` asks for the language model and it cannot be had (not built, too
        little memory, a corrupt file, a server without logprobs), the error is raised; with
        ``lean_fallback`` (the product's edges: ``rag serve``, ``rag ask``, the chat) the service
        runs without it instead, as with ``RAG_LLM=off``, and ``llm_error`` says why. ``rag eval``
        and the benchmarks keep the error: a lean run must not be measured as the model's.
        ``kv_store`` (the product's edges) keeps the judge's paragraph states on disk beside the
        index (:meth:`attach_kv_store`).

        The service returned answers its first question about as fast as the next ones. The
        warm-up runs after the loads, not beside them: it is pure Python, and three threads
        contending for the GIL made start-up longer than doing it afterwards (benchmarks/README.md,
        "Figures behind the code").
        """
        settings = settings or get_settings()
        index_dir = Path(index_dir or settings.index_dir)
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise IndexStateError(f"no index in {index_dir}: build one with `rag index --index {index_dir}`")
        require_fit(manifest, settings, index_dir)
        svc = cls._open(index_dir, manifest, settings, encoder, lean_fallback=lean_fallback)
        svc.on_request_thread = on_request_thread
        if kv_store:
            svc.attach_kv_store()
        warm_up(settings)
        return svc

    def attach_kv_store(self) -> PrefixStore | None:
        """Keep the local judge's paragraph states on disk beside this index
        (``<index>/llm-kv/``, ``RAG_LLM_KV_DISK_MB``; ``rag.llm.kvstore``): read there before a
        paragraph is evaluated, saved there after. None without a local judge or with a budget of 0."""
        from rag.answer.written.factory import local_model_of

        model = local_model_of(self.judge)
        if model is None or self.settings.llm_kv_disk_mb <= 0:
            return None
        from rag.llm.kvstore import store_for

        try:
            store = store_for(self.index.index_dir, model.path, self.settings.llm_kv_disk_mb)
        except OSError as exc:  # the model file moved under us: the memory cache still serves
            log.warning("no KV store beside %s: %s", self.index.index_dir, exc)
            return None
        if store is not None:
            self.kv_store = model.attach_store(store)
        return self.kv_store

    def start_preread(self, *, limit: int | None = None) -> PreRead | None:
        """Read this index's paragraphs for the judge in the background, most asked-for first,
        into the store beside the index (``RAG_LLM_PREREAD``; ``rag.llm.preread``). None when there
        is no store, or the judge is not this process's model."""
        if self.kv_store is None or self.judge is None or self.judge.kind != "local":
            return None
        from rag.llm.preread import PreRead

        self.preread = PreRead(self.judge, self.index, self.kv_store, queue=self.model_queue,  # type: ignore[arg-type]
                               limit=limit).start()
        return self.preread

    @classmethod
    def _open(cls, index_dir: Path, manifest: dict[str, Any], settings: Settings, encoder: Encoder | None, *,
              lean_fallback: bool = False) -> RagService:
        # The models load in threads while the index opens: start-up is the longest, not the sum.
        judge_ready = None
        if settings.llm != "off":
            def load_judge() -> AnswerJudge | None:
                from rag.answer.written.factory import judge_from_settings

                return judge_from_settings(settings)

            judge_ready = in_background(load_judge, "llm-load")
        encoder_ready = None
        if encoder is None:
            from rag.embedding import get_encoder

            encoder_ready = in_background(lambda: get_encoder(settings), "encoder-load")
        index = LoadedIndex(index_dir, manifest, settings=settings)  # an error here is reported at once
        encoder_seconds = 0.0
        if encoder_ready is not None:
            encoder, encoder_seconds = encoder_ready()
        judge: AnswerJudge | None = None
        judge_seconds, llm_error = 0.0, None
        if judge_ready is not None:
            try:
                judge, judge_seconds = judge_ready()
            except Exception as exc:  # noqa: BLE001 - whatever stops the model, the product runs lean
                if not lean_fallback:
                    raise
                llm_error = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
                log.warning("the language model is off (lean mode): %s", llm_error)
        assert encoder is not None  # given, or loaded above
        svc = cls(index, encoder, settings, judge=judge)
        svc.encoder_load_seconds = encoder_seconds
        svc.llm_load_seconds = judge_seconds
        svc.llm_error = llm_error
        return svc

    def sibling(self, index: LoadedIndex) -> RagService:
        """A service over another index (a collection, or this index rebuilt) that shares this
        one's models: the encoder, the language model and its one bounded queue, the writer."""
        svc = RagService(index, self.encoder, self.settings, on_request_thread=self.on_request_thread)
        svc.judge, svc.rewriter, svc.model_queue = self.judge, self.rewriter, self.model_queue
        svc.writer, svc.generator, svc.default_answer_mode = self.writer, self.generator, self.default_answer_mode
        svc.encoder_load_seconds, svc.llm_load_seconds = self.encoder_load_seconds, self.llm_load_seconds
        svc.llm_error = self.llm_error
        if self.kv_store is not None:  # the product's edges: this index's states are kept beside it
            svc.attach_kv_store()
        return svc

    @staticmethod
    def open_index(index_dir: Path, settings: Settings) -> LoadedIndex:
        """The index in ``index_dir`` checked against the settings, as :meth:`open` opens it."""
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise IndexStateError(f"no index in {index_dir}: build one with `rag index --index {index_dir}`")
        require_fit(manifest, settings, index_dir)
        return LoadedIndex(index_dir, manifest, settings=settings)

    # -- retrieval ------------------------------------------------------------------------
    def _request(self) -> None:
        if self.on_request_thread is not None:
            self.on_request_thread()

    def question(
        self, text: Any, history: Sequence[dict[str, Any]] | None = None, *, field: str = "question"
    ) -> Question:
        """The one :class:`Question` of a request: validated here, read by every later step.

        With the local model, a follow-up that depends on ``history`` is rewritten into a
        standalone question (``rag.llm.rewrite``); else retrieval prepends the previous question.
        Here (a search) the model rewrites only when no question is using it: a search never
        waits for the model, and with the model busy it prepends, as without the model."""
        text = clean_question(text, self.settings, field=field)
        return self._question(text, history, admitted=False)

    def _question(self, text: str, history: Sequence[dict[str, Any]] | None, *, admitted: bool) -> Question:
        """``text`` (already clean) as a :class:`Question`; ``admitted``: the caller holds a place
        in the model's queue (an answer), so the rewrite may wait its turn on the model."""
        rewritten = None
        if self.rewriter is not None and history and depends_on_history(text, self.normaliser) is not None:
            queue = self.model_queue
            if admitted or queue is None:
                rewritten = self.rewriter.rewrite(text, history, self.normaliser)
            elif queue.try_enter(only_if_idle=True):
                try:
                    rewritten = self.rewriter.rewrite(text, history, self.normaliser)
                finally:
                    queue.leave()
        return Question.make(text, self.normaliser, history, rewritten=rewritten)

    def model_place(self) -> contextlib.AbstractContextManager[None]:
        """A place in the model's queue for the block (raises ``ModelBusyError`` when it is full);
        nothing to hold without the local model."""
        return self.model_queue.place() if self.model_queue is not None else contextlib.nullcontext()

    def search(
        self, query: str | Question, k: int = 10, *, history: Sequence[dict[str, Any]] | None = None
    ) -> list[Hit]:
        """Ranked paragraphs for ``query`` (text, or a question this service made)."""
        self._request()
        question = query if isinstance(query, Question) else self.question(query, history, field="query")
        k = check_k(k)
        return self.retriever.search(question, k)

    def search_many(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        self._request()
        k = check_k(k)
        return self.retriever.search_many([self.question(q, field="query") for q in queries], k)

    def ask(self, question: str, k: int = 5, **options: Unpack[AskOptions]) -> Answer:
        """The cited answer: the end of :meth:`ask_steps`."""
        return final_answer(self.ask_steps(question, k, **options))

    def ask_steps(
        self,
        question: str,
        k: int = 5,
        *,
        history: Sequence[dict[str, Any]] | None = None,
        script: str | None = None,
        answer_mode: str | None = None,
    ) -> Generator[Step, None, None]:
        """:class:`~rag.answer.steps.Retrieved` once retrieval is done; with a generator
        ``Draft`` (the extractive answer), ``Piece`` for each checked sentence as the model writes
        it and ``Pending`` after every token; last ``Final``. The chat and ``/v1`` streaming show
        each step as it happens (a generated answer takes seconds).

        ``answer_mode`` (``"written"``, ``"extractive"``; None: ``RAG_LLM_ANSWERS``, or written
        when ``RAG_LLM_BASE_URL`` is set) picks the answer for this question only. With the local
        model, the question holds a place in its queue from the first step to the last; when the
        queue is full the first step raises ``ModelBusyError`` (before any work)."""
        self._request()
        text = clean_question(question, self.settings)
        k = check_k(k)
        mode = check_answer_mode(answer_mode) or self.default_answer_mode
        from rag.text.script import script_config

        script_config(script)
        with self.model_place():
            yield from self._answer_steps(text, k, history, script, mode)

    def _answer_steps(
        self, text: str, k: int, history: Sequence[dict[str, Any]] | None, script: str | None, mode: str
    ) -> Generator[Step, None, None]:
        from rag.answer.compose import answer_steps

        asked = self._question(text, history, admitted=True)
        t0 = time.perf_counter()
        hits = self.retriever.search(asked, k)
        t1 = time.perf_counter()
        yield Retrieved(hits)
        retrieve = round((t1 - t0) * 1000, 2)
        writes = mode == "written" and self.writer is not None
        for step in answer_steps(asked, hits, self.settings, script=script, judge=self.judge, mode=mode,
                                 generator=self.writer if mode == "written" else None, encoder=self.encoder,
                                 lexicon=self.lexicon if writes else None, calibration=self.calibration,
                                 english_frame=self.settings.llm_english_frame):
            if isinstance(step, Final):
                t2 = time.perf_counter()
                timings = {**step.answer.timings_ms, "retrieve": retrieve, "answer": round((t2 - t1) * 1000, 2),
                           "total": round((t2 - t0) * 1000, 2)}
                for key in ("first_token", "first_shown"):  # from the question, not from the answer step
                    if key in timings:
                        timings[key] = round(timings[key] + retrieve, 2)
                step = Final(replace(step.answer, timings_ms=timings))
            yield step

    @cached_property
    def lexicon(self) -> Lexicon:
        """The English of Chinese spans in English answers: the glossaries and mined pairs this
        index was built with, then CC-CEDICT (read on first use)."""
        from rag.answer.lexicon import Lexicon

        report = self.index.gloss.report if self.index.gloss is not None else None
        return Lexicon.from_report(report, self.normaliser, cache_dir=self.settings.cache_dir)

    # -- browsing -------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        return sorted(self.index.documents.values(), key=lambda d: d.doc_id)

    def document(self, doc_id: str) -> DocumentInfo:
        try:
            return self.index.documents[doc_id]
        except KeyError:
            raise NotFoundError(f"no document with doc_id {doc_id!r}: list them with GET /api/documents") from None

    def paragraph(self, para_id: str) -> Paragraph:
        try:
            return self.index.paragraphs[para_id]
        except KeyError:
            raise NotFoundError(f"no paragraph with para_id {para_id!r} (ids look like <doc_id>#p<n>)") from None
