"""POST /api/briefing: questions (or answers already given) as a .docx or Markdown file."""

from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeAlias

from fastapi import APIRouter
from fastapi.responses import Response

from rag.api.deps import AllCollections
from rag.api.schemas import ERRORS, BriefingBody, RequestModels

_FILE = {"content": {"application/vnd.openxmlformats-officedocument.wordprocessingml.document": {},
                     "text/markdown": {}},
         "description": "The briefing file, named in Content-Disposition"}


def build_router(models: RequestModels) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["briefings"], responses=ERRORS)
    # FastAPI validates with the model built for the question limit; mypy checks the handler
    # against what that model is known to offer.
    if TYPE_CHECKING:
        BriefingRequest: TypeAlias = BriefingBody
    else:
        BriefingRequest = models.briefing

    @router.post("/briefing", summary="A briefing: each question, its answer and numbered references",
                 response_class=Response, responses={200: _FILE})
    def briefing(body: BriefingRequest, collections: AllCollections) -> Response:
        from rag import briefing as brief

        service = collections.service(body.collection)
        if body.questions is not None:
            doc = brief.from_questions(service, body.questions, script=body.script, k=body.k)
        else:
            # the model's validator lets exactly one of questions and answers through
            answers: list[dict[str, Any]] = [a.model_dump() for a in body.answers or ()]
            doc = brief.from_answers(service, answers, script=body.script)
        if body.title:
            doc = replace(doc, title=body.title)
        name = brief.file_name(doc, body.format)
        return Response(brief.render(doc, body.format), media_type=brief.FORMATS[body.format],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return router
