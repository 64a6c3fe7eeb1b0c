"""Liveness and readiness probes (never behind the API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from rag.api.deps import AllCollections
from rag.api.errors import NotReadyError, error_body

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The index (of ?collection=, default unset) is loaded (503 with the reason until it is)",
    responses={503: {"description": "index not loaded"}, 404: {"description": "no such collection"},
               422: {"description": "a collection name that is not a slug"}},
)
def readyz(collections: AllCollections,
           collection: Annotated[str | None, Query(max_length=64, description="unset: default")] = None,
           ) -> JSONResponse:
    holder = collections.holder(collection)
    try:
        info = holder.info()
    except NotReadyError as exc:
        body = error_body(exc.code, holder.not_ready_reason())
        return JSONResponse({"status": "not_ready", **body}, status_code=503)
    return JSONResponse({"status": "ready", **info})
