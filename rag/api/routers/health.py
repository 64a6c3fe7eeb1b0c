"""Liveness and readiness probes (never behind the API key)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.api.deps import Holder
from rag.api.errors import NotReadyError, error_body

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The index is loaded (503 with the reason until it is)",
    responses={503: {"description": "index not loaded"}},
)
def readyz(holder: Holder) -> JSONResponse:
    try:
        info = holder.info()
    except NotReadyError as exc:
        body = error_body(exc.code, holder.not_ready_reason())
        return JSONResponse({"status": "not_ready", **body}, status_code=503)
    return JSONResponse({"status": "ready", **info})
