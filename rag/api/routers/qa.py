"""POST /api/ask and POST /api/search."""


from typing import TYPE_CHECKING, Any, TypeAlias

from fastapi import APIRouter

from rag.api.deps import AllCollections
from rag.api.schemas import (
    BUSY,
    ERRORS,
    AnswerOut,
    AskBody,
    RequestModels,
    SearchBody,
    SearchOut,
    check_history,
)


def build_router(models: RequestModels, max_chars: int) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["questions"], responses=ERRORS)
    # FastAPI validates with the models built for the question limit; mypy checks the handlers
    # against what those models are known to offer.
    if TYPE_CHECKING:
        AskRequest: TypeAlias = AskBody
        SearchRequest: TypeAlias = SearchBody
    else:
        AskRequest = models.ask
        SearchRequest = models.search

    @router.post("/ask", summary="Answer a question with cited source paragraphs",
                 responses={200: {"model": AnswerOut}, **BUSY})
    def ask(body: AskRequest, collections: AllCollections) -> dict[str, Any]:
        service = collections.service(body.collection)
        history = [m.model_dump() for m in body.history]
        check_history(history, max_chars)
        answer = service.ask(body.question, body.k, history=history, script=body.script,
                             answer_mode=body.answer_mode)
        return answer.to_dict()

    @router.post("/search", summary="Rank paragraphs for a query (no answer)",
                 responses={200: {"model": SearchOut}})
    def search(body: SearchRequest, collections: AllCollections) -> dict[str, Any]:
        from rag.answer.display import search_body

        service = collections.service(body.collection)
        question = service.question(body.query, field="query")
        hits = service.search(question, body.k)
        return search_body(question, hits, script=body.script)

    return router
