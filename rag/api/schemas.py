"""Request and response models. Request limits (question length) come from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rag.errors import InputError

MAX_K = 100
MAX_HISTORY = 50
MAX_BRIEFING = 50  # items of one briefing (rag.briefing.MAX_ITEMS)
Script = Literal["original", "hant", "hans", "hk", "tw"]
SCRIPT_HELP = "Script of the shown answer and paragraphs: original, hant (繁體), hans (简体), hk (香港), tw (台灣)"
AnswerMode = Literal["extractive", "written", "generated"]
COLLECTION_HELP = "The collection to answer from (GET /api/collections lists them); unset: default"
ANSWER_MODE_HELP = ("How to answer this question: written (the language model writes it from the cited paragraphs, "
                    "checked; generated is taken for written) or extractive (quoted sentences). Unset: the server's "
                    "default (RAG_LLM_ANSWERS). written without a model on the server gives the extractive answer "
                    "and a warning")


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant", "system"]
    content: str


# -- responses (documentation; extra keys pass through) -----------------------------------
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class CitationOut(_Open):
    n: int
    doc_id: str
    para_id: str
    title: str
    source: str
    text: str = Field(description="The whole paragraph, in the requested script")
    score: float
    highlights: list[list[int]] = Field(description="[start, end) character spans of the supporting sentences")
    date: str | None = None
    original_text: str | None = None
    judge: float | None = Field(None, description="The local language model's P(this paragraph answers the "
                                "question), when RAG_LLM=local; a cited paragraph reached RAG_JUDGE_FLOOR")


class AnswerOut(_Open):
    answer: str
    mode: Literal["generated", "extractive"] = Field(
        "extractive", description="generated: written by the language model from the cited paragraphs and "
        "checked; extractive: quoted sentences of the cited paragraphs (also the fallback)")
    abstained: bool
    abstain_reason: str | None = Field(None, description="Why nothing is cited (set when abstained)")
    citations: list[CitationOut]
    timings_ms: dict[str, float]
    warnings: list[str] = []


class SearchOut(_Open):
    hits: list[CitationOut]


class DocumentOut(_Open):
    doc_id: str
    title: str
    source: str
    date: str | None
    sha256: str
    paragraphs: int


class DocumentsOut(_Open):
    documents: list[DocumentOut]
    count: int


class ParagraphOut(_Open):
    para_id: str
    doc_id: str
    n: int
    text: str
    heading: str | None = None


class DocumentDetailOut(_Open):
    doc_id: str
    title: str
    source: str
    date: str | None
    sha256: str
    path: str | None = None
    removed: list[dict[str, Any]] = Field(description="Cleaning audit: what was removed, by kind")
    flags: list[str]
    paragraphs: list[ParagraphOut]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (400, 401, 404, 422, 503)
}
# The routes that may use the language model: 503 also when its queue is full (RAG_LLM_QUEUE).
BUSY: dict[int | str, dict[str, Any]] = {503: {
    "model": ErrorOut,
    "description": "index_not_loaded; or model_busy: the language model's queue is full (RAG_LLM_QUEUE), "
                   "retry after Retry-After seconds",
    "headers": {"Retry-After": {"description": "seconds to wait (model_busy)", "schema": {"type": "integer"}}},
}}


# -- requests: what the handlers read (the models themselves are built by request_models) ----
class AskBody(Protocol):
    """POST /api/ask's body."""

    @property
    def question(self) -> str: ...
    @property
    def k(self) -> int: ...
    @property
    def history(self) -> Sequence[HistoryMessage]: ...
    @property
    def script(self) -> Script: ...
    @property
    def answer_mode(self) -> AnswerMode | None: ...
    @property
    def collection(self) -> str | None: ...


class SearchBody(Protocol):
    """POST /api/search's body."""

    @property
    def query(self) -> str: ...
    @property
    def k(self) -> int: ...
    @property
    def script(self) -> Script: ...
    @property
    def collection(self) -> str | None: ...


class ChatMessageBody(Protocol):
    """One message of a /v1 chat request."""

    @property
    def role(self) -> str: ...
    @property
    def content(self) -> str | list[dict[str, Any]] | None: ...


class ChatBody(Protocol):
    """POST /v1/chat/completions' body."""

    @property
    def model(self) -> str | None: ...
    @property
    def messages(self) -> Sequence[ChatMessageBody]: ...
    @property
    def stream(self) -> bool: ...
    @property
    def k(self) -> int: ...
    @property
    def script(self) -> Script: ...
    @property
    def metadata(self) -> dict[str, str] | None: ...


class BriefingBody(Protocol):
    """POST /api/briefing's body (exactly one of questions and answers is set)."""

    @property
    def questions(self) -> Sequence[str] | None: ...
    @property
    def answers(self) -> Sequence[BaseModel] | None: ...
    @property
    def format(self) -> Literal["docx", "md"]: ...
    @property
    def script(self) -> Script: ...
    @property
    def k(self) -> int: ...
    @property
    def title(self) -> str | None: ...
    @property
    def collection(self) -> str | None: ...


@dataclass(frozen=True)
class RequestModels:
    """The request models for one question limit; mypy checks each against its ``*Body``."""

    ask: type[AskBody]
    search: type[SearchBody]
    chat: type[ChatBody]
    briefing: type[BriefingBody]


def request_models(max_chars: int) -> RequestModels:
    """Build the request bodies with the configured question limit (RAG_MAX_QUESTION_CHARS)."""
    Text = Annotated[str, Field(min_length=1, max_length=max_chars)]
    K = Annotated[int, Field(ge=1, le=MAX_K, strict=True)]
    Collection = Annotated[str | None, Field(max_length=64)]

    class AskRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"question": "香港如何推動新型工業化？", "k": 5, "script": "original"}]})
        question: Text = Field(description=f"The question, 1..{max_chars} characters")
        k: K = Field(5, description=f"Paragraphs to consider, 1..{MAX_K}")
        history: list[HistoryMessage] = Field(default_factory=list, max_length=MAX_HISTORY,
                                              description="Earlier turns, oldest first")
        script: Script = Field("original", description=SCRIPT_HELP)
        answer_mode: AnswerMode | None = Field(None, description=ANSWER_MODE_HELP)
        collection: Collection = Field(None, description=COLLECTION_HELP)

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"query": "新质生产力", "k": 10}]})
        query: Text
        k: K = Field(10, description=f"Paragraphs to return, 1..{MAX_K}")
        script: Script = Field("original", description=SCRIPT_HELP)
        collection: Collection = Field(None, description=COLLECTION_HELP)

    class ChatMessage(BaseModel):
        model_config = ConfigDict(extra="ignore")
        role: Literal["system", "user", "assistant", "tool", "developer"]
        # OpenAI clients send either a string or a list of content parts ({"type": "text", "text": ...}).
        content: str | list[dict[str, Any]] | None = None

    class ChatCompletionRequest(BaseModel):
        # Unknown OpenAI parameters (temperature, top_p, ...) are accepted and ignored.
        model_config = ConfigDict(extra="ignore", json_schema_extra={
            "examples": [{"model": "rag-bilingual", "messages": [{"role": "user", "content": "What is new industrialisation?"}]}]})
        model: str | None = Field(None, max_length=200, description="rag-bilingual (the default collection) or "
                                  "rag-bilingual:<collection> (GET /v1/models lists them); another name: default")
        messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_HISTORY + 1)
        stream: bool = False
        k: K = Field(5, description="Extension: paragraphs to consider")
        script: Script = Field("original", description="Extension: " + SCRIPT_HELP)
        user: str | None = None
        metadata: dict[str, str] | None = Field(
            None, max_length=16, description='OpenAI\'s request metadata; read here: "answer_mode": "written" | '
            '"extractive" (' + ANSWER_MODE_HELP + "). Other keys are ignored")

    class BriefingCitation(BaseModel):
        model_config = ConfigDict(extra="ignore")  # a whole citation from /api/ask may be sent
        n: int = Field(ge=1, le=MAX_K, description="The [n] the answer uses for it")
        para_id: str = Field(min_length=1, max_length=1000, description="Looked up in the index")

    class BriefingAnswer(BaseModel):
        model_config = ConfigDict(extra="ignore")  # a whole /api/ask body plus its question
        question: Text
        answer: str = Field(max_length=20 * max_chars)
        abstained: bool = False
        abstain_reason: str | None = Field(None, max_length=2000)
        citations: list[BriefingCitation] = Field(default_factory=list, max_length=MAX_K)

    class BriefingRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"questions": ["香港如何推動新型工業化？", "What is new quality productive forces?"],
                          "format": "docx", "script": "hk"}]})
        questions: list[Text] | None = Field(None, min_length=1, max_length=MAX_BRIEFING,
                                             description="Questions to ask, one item each")
        answers: list[BriefingAnswer] | None = Field(
            None, min_length=1, max_length=MAX_BRIEFING,
            description="Answers already given (question + a /api/ask body) instead of questions")
        format: Literal["docx", "md"] = "docx"
        script: Script = Field("original", description=SCRIPT_HELP)
        k: K = Field(5, description="Paragraphs to consider per question")
        title: str | None = Field(None, max_length=200, description="Document title (default 簡報 Briefing)")
        collection: Collection = Field(None, description=COLLECTION_HELP + " (every question and cited para_id)")

        @model_validator(mode="after")
        def _one_source(self) -> BriefingRequest:
            if (self.questions is None) == (self.answers is None):
                raise ValueError("send either questions or answers (exactly one of them)")
            return self

    return RequestModels(AskRequest, SearchRequest, ChatCompletionRequest, BriefingRequest)


def check_history(history: list[dict[str, str]], max_chars: int) -> None:
    """Earlier turns feed retrieval too, so each is bounded (4x the question limit)."""
    for i, m in enumerate(history):
        if len(m["content"]) > 4 * max_chars:
            raise InputError(
                f"history message {i} has {len(m['content'])} characters; the limit is {4 * max_chars}"
            )
