"""The FastAPI app: JSON API under /api and /v1, MCP at /mcp, probes, offline docs at /docs and
/redoc, chat UI at /."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Match, Mount, Route

from rag.api import auth
from rag.api.errors import error_response, install_error_handlers
from rag.api.routers import briefing, collections, documents, health, openai, qa
from rag.api.schemas import request_models
from rag.api.state import ServiceHolder
from rag.collections import Collections
from rag.config import Settings, get_settings
from rag.uploads import Jobs, recover

log = logging.getLogger("rag.api")

DESCRIPTION = """\
Ask questions in 繁體中文, 简体中文 or English about the indexed corpus; every answer cites
the exact source paragraphs (`para_id = <doc_id>#p<n>`; send `#` as `%23` in a path).

Errors are always `{"error": {"code": ..., "message": ...}}`. When `RAG_API_KEYS` is set,
`/api`, `/v1` and `/mcp` need `Authorization: Bearer <key>` or `X-API-Key: <key>`.

`/mcp` is a Model Context Protocol server (streamable HTTP) with the tools `search`, `ask`,
`get_paragraph`, `list_documents` and `list_collections`; `rag mcp` serves the same over stdio.

Collections: `GET /api/collections` lists them; `collection` in a request body (or `?collection=`
on the document routes, or the model `rag-bilingual:<collection>` on `/v1`) picks one; unset is
`default`. Uploads and deletes (`/api/collections/{c}/documents`, `/api/jobs`) need one of
`RAG_ADMIN_KEYS`; without admin keys they are off (403 `uploads_disabled`).
"""


def create_app(
    settings: Settings | None = None, *, service: Any = None, ui: bool = True, holder: ServiceHolder | None = None
) -> FastAPI:
    """Build the app. ``service`` injects a ready service (tests); otherwise the lifespan opens
    ``settings.index_dir`` once, in a background thread, so /healthz answers while it loads.
    ``holder``: one already loading (``rag serve`` starts it before importing the web stack)."""
    settings = settings or get_settings()
    holder = holder or ServiceHolder(settings, service)
    every = Collections(settings, holder)
    recover(every)  # jobs a killed server left half-done: rolled back, or kept when indexed
    jobs = Jobs(every, settings)
    from rag.mcp_server import McpEndpoint, build_server

    mcp = build_server(every.service, every.summaries)
    mcp_endpoint = McpEndpoint(mcp, host=settings.host)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder.start()  # no-op when ready or already loading
        async with mcp_endpoint.running():
            yield

    app = FastAPI(
        title="rag-bilingual",
        summary="Bilingual (繁體 / 简体 / English) question answering that cites its source paragraphs",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from the installed assets below, never from a CDN
        redoc_url=None,
    )
    app.state.holder = holder
    app.state.collections = every
    app.state.jobs = jobs
    app.state.settings = settings
    app.state.api_keys = auth.parse_keys(settings.api_keys)
    app.state.admin_keys = auth.parse_keys(settings.admin_keys)
    install_error_handlers(app)

    origins = auth.parse_keys(settings.cors_origins)  # same comma-separated format
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )

    models = request_models(settings.max_question_chars)
    keyed = [Depends(auth.require_api_key)]
    app.include_router(health.router)
    app.include_router(qa.build_router(models, settings.max_question_chars), dependencies=keyed)
    app.include_router(documents.router, dependencies=keyed)
    app.include_router(collections.router, dependencies=keyed)
    app.include_router(collections.admin)
    app.include_router(openai.build_router(models, settings.max_question_chars), dependencies=keyed)
    app.include_router(briefing.build_router(models), dependencies=keyed)
    app.router.routes.append(Route("/mcp", endpoint=auth.KeyGuard(mcp_endpoint, app.state.api_keys,
                                                                  app.state.admin_keys)))
    _add_offline_docs(app)
    _add_json_fallbacks(app)

    if ui:
        from rag.ui.chat import mount_ui

        mount_ui(app, holder, settings)
    return app


def _add_offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their scripts and styles served from the
    installed ``fastapi-offline`` package (no CDN: the docs work on a machine without internet)."""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    static = "/docs-assets"
    app.mount(static, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} · API",
            swagger_js_url=f"{root}{static}/swagger-ui-bundle.js", swagger_css_url=f"{root}{static}/swagger-ui.css",
            swagger_favicon_url=f"{root}{static}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} · ReDoc",
            redoc_js_url=f"{root}{static}/redoc.standalone.js", redoc_favicon_url=f"{root}{static}/favicon.png",
            with_google_fonts=False,
        )


def _add_json_fallbacks(app: FastAPI) -> None:
    """Unknown /api and /v1 paths get a JSON 404 (or 405) instead of falling through to the UI."""

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    fallbacks: list[Any] = []

    async def unknown(request: Request, rest: str) -> Any:
        # Which methods would a real API route take here? (Not the UI mounted at /.)
        allowed = [m for m in ("GET", "POST", "DELETE") if m != request.method and any(
            r not in fallbacks and not isinstance(r, Mount) and r.matches({**request.scope, "method": m})[0] == Match.FULL
            for r in app.router.routes)]
        if allowed:
            return error_response(405, "method_not_allowed",
                                  f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
                                  {"Allow": ", ".join(allowed)})
        return error_response(404, "not_found", f"no such endpoint: {request.url.path} (see /docs)")

    for prefix in ("/api", "/v1"):
        app.add_api_route(prefix + "/{rest:path}", unknown, methods=methods, include_in_schema=False)
        fallbacks.append(app.router.routes[-1])
