"""OpenAI-compatible ``POST /v1/chat/completions`` (plain and SSE streaming) and ``GET /v1/models``.

The last user message is the question, earlier user/assistant turns the history. The reply
lists its sources in the message text and carries them structured in a top-level
``citations`` field (on the response, or on the last chunk of a stream; also on the first
chunk when no language model writes the answer). With a language model, the stream carries its
sentences as they are written and checked (a sentence is sent once its check passed: a client
cannot take text back), then the sources and the checks. ``metadata.answer_mode`` (``written``
or ``extractive``) picks the answer for the request, like ``answer_mode`` of ``POST /api/ask``.
"""


import json
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from rag.answer.steps import Draft, Final, Piece, Step
from rag.api.deps import AllCollections
from rag.api.schemas import BUSY, ERRORS, ChatBody, RequestModels, check_history
from rag.errors import InputError

MODEL_ID = "rag-bilingual"


def model_collection(model: str | None) -> str | None:
    """The collection a /v1 model name picks: ``rag-bilingual:<collection>``; any other name
    (``rag-bilingual``, or a client's default such as ``gpt-4o``) picks the default collection."""
    if model and model.startswith(MODEL_ID + ":"):
        return model[len(MODEL_ID) + 1:]
    return None


def model_name(collection: str) -> str:
    return MODEL_ID if collection == "default" else f"{MODEL_ID}:{collection}"


def message_text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: a plain string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") in ("text", "input_text"))


def split_messages(messages: Iterable[Any], max_chars: int) -> tuple[str, list[dict[str, str]]]:
    """(question, history): the last user message, and the user/assistant turns before it."""
    turns = [(m.role, message_text(m.content)) for m in messages]
    last = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
    if last is None:
        raise InputError("messages has no user message: the last user message is the question")
    history = [{"role": r, "content": t} for r, t in turns[:last] if r in ("user", "assistant") and t.strip()]
    check_history(history, max_chars)
    return turns[last][1], history


def sources_text(citations: list[dict[str, Any]]) -> str:
    """The sources block appended to the message text: ``[1] title (date) source — para_id``."""
    if not citations:
        return ""
    lines = ["", "", "Sources:"]
    for c in citations:
        date = f" ({c['date']})" if c.get("date") else ""
        lines.append(f"[{c['n']}] {c['title']}{date} {c['source']} — {c['para_id']}".replace("  ", " "))
    return "\n".join(lines)


def checks_text(warnings: list[str]) -> str:
    """What the citation check removed, repaired or fell back on, shown after the sources: a
    client that reads only the message text still sees it."""
    if not warnings:
        return ""
    return "\n\nChecks:\n" + "\n".join(f"- {w}" for w in warnings)


def _usage(question: str, history: list[dict[str, str]], reply: str) -> dict[str, int]:
    """Rough token counts (a CJK character or a Latin word is one token); no tokenizer involved."""

    def count(text: str) -> int:
        cjk = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
        return cjk + len(text.encode("ascii", "ignore").split())

    prompt = count(question) + sum(count(m["content"]) for m in history)
    completion = count(reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    return {"abstained": data["abstained"], "abstain_reason": data["abstain_reason"], "mode": data["mode"],
            "warnings": data["warnings"]}


class _Steps:
    """The service's answer steps, run on one worker thread (the request thread's limits apply
    to all of it) and handed to the event loop one at a time; :meth:`stop` ends them early (the
    client went away) so the language model is not kept busy for nobody."""

    def __init__(self, steps: Generator[Step, None, None]) -> None:
        self._steps = steps
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="v1-stream", daemon=True).start()

    def _run(self) -> None:
        try:
            for step in self._steps:
                if self._stop.is_set():
                    break
                self._queue.put(step)
            self._queue.put(None)
        except BaseException as exc:  # handed to the request: an error response, or a cut stream
            self._queue.put(exc)
        finally:
            self._steps.close()

    async def next(self) -> Step | None:
        item = await run_in_threadpool(self._queue.get)
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stop.set()


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


_COMPLETION_RESPONSES: dict[str, Any] = {
    "description": "A `chat.completion` object; with `stream: true`, a stream of server-sent events: "
                   "`chat.completion.chunk` objects as `data: {...}` lines, then `data: [DONE]`",
    "content": {
        "application/json": {"schema": {"type": "object", "title": "ChatCompletion"}},
        "text/event-stream": {
            # one server-sent event (what OpenAPI 3.2 calls the item schema of a stream)
            "schema": {"type": "object", "title": "ChatCompletionChunk event", "required": ["data"],
                       "properties": {"data": {"type": "string", "description": "a chat.completion.chunk "
                                                                               "object as JSON, or [DONE]"}}},
            "example": 'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, '
                       '"delta": {"content": "..."}}]}\n\ndata: [DONE]\n\n',
        },
    },
}


def build_router(models: RequestModels, max_chars: int) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)
    # FastAPI validates with the model built for the question limit; mypy checks the handler
    # against what that model is known to offer.
    if TYPE_CHECKING:
        ChatCompletionRequest: TypeAlias = ChatBody
    else:
        ChatCompletionRequest = models.chat

    @router.get("/models", summary="One model per collection: rag-bilingual (default), rag-bilingual:<collection>")
    def list_models(collections: AllCollections) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name(c), "object": "model", "created": 0,
                                            "owned_by": "rag-bilingual"} for c in collections.names()]}

    @router.post("/chat/completions", summary="OpenAI-compatible chat (set stream=true for SSE)",
                 response_model=None, responses={200: _COMPLETION_RESPONSES, **BUSY})
    async def chat_completions(body: ChatCompletionRequest, collections: AllCollections) -> Any:
        service = await run_in_threadpool(collections.service, model_collection(body.model))
        question, history = split_messages(body.messages, max_chars)
        mode = (body.metadata or {}).get("answer_mode")  # checked by the service (422 when unknown)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = body.model or MODEL_ID
        if not body.stream:
            answer = await run_in_threadpool(service.ask, question, body.k, history=history, script=body.script,
                                             answer_mode=mode)
            data = answer.to_dict()
            reply = data["answer"] + sources_text(data["citations"]) + checks_text(data["warnings"])
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": _usage(question, history, reply),
                "citations": data["citations"],
                **_extra(data),
            }
        steps = _Steps(service.ask_steps(question, body.k, history=history, script=body.script, answer_mode=mode))
        # The first step (validation, retrieval) before the first byte: bad input still gets a 4xx JSON error.
        first = await steps.next()
        head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
            return _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more})

        async def events() -> AsyncIterator[str]:
            from rag.answer.display import stream_pieces

            streamed = ""
            step: Step | None = first
            try:
                while step is not None and not isinstance(step, Final):
                    match step:
                        case Draft():  # the model writes now: its checked sentences follow
                            yield chunk({"role": "assistant", "content": ""})
                        case Piece(text):
                            streamed += text
                            yield chunk({"content": text})
                    step = await steps.next()
                if step is None:
                    return
                data = step.answer.to_dict()
                citations = data["citations"]
                if data["mode"] == "generated" and streamed:
                    text = ""  # already sent, sentence by sentence, exactly as data["answer"]
                else:
                    if not streamed:  # no model, or it failed before a checked sentence
                        yield chunk({"role": "assistant", "content": ""}, citations=citations)
                    text = ("\n\n" if streamed else "") + data["answer"]
                pieces = [*stream_pieces(text), sources_text(citations) + checks_text(data["warnings"])]
                for piece in pieces:
                    if piece:
                        yield chunk({"content": piece})
                reply = streamed + text + pieces[-1]
                yield chunk({}, "stop", citations=citations, usage=_usage(question, history, reply), **_extra(data))
                yield "data: [DONE]\n\n"
            finally:
                steps.stop()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router
