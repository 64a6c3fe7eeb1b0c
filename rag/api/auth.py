"""Optional API keys (RAG_API_KEYS): ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from rag.errors import UnauthorizedError, UploadsDisabledError

LOOPBACK = ("127.0.0.1", "localhost", "::1")

# auto_error=False: the dependency decides, so an open API (no keys set) needs no header,
# while /docs still shows both schemes under "Authorize".
_bearer = HTTPBearer(auto_error=False, description="RAG_API_KEYS key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="RAG_API_KEYS key")


def parse_keys(raw: str | None) -> list[str]:
    return [k.strip() for k in (raw or "").split(",") if k.strip()]


def key_matches(given: str, keys: list[str]) -> bool:
    """Constant-time comparison against every key (no early exit that leaks which one matched)."""
    given_b = given.encode("utf-8")
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given_b, key.encode("utf-8"))
    return ok


def require_api_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> None:
    keys: list[str] = request.app.state.api_keys
    if not keys:
        return
    given = (bearer.credentials if bearer else None) or header
    if not given:
        raise UnauthorizedError("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    # an admin key opens what an API key opens
    if not (key_matches(given, keys) | key_matches(given, request.app.state.admin_keys)):
        raise UnauthorizedError("invalid API key")


def uploads_off_reason(admin_keys: list[str], host: str) -> str | None:
    """Why the upload and delete routes are off, or None when they are on (admin keys set)."""
    if admin_keys:
        return None
    where = "" if host in LOOPBACK else f" (this server listens on {host}, beyond this machine: it never opens them without keys)"
    return f"document uploads and deletes are off on this server: set RAG_ADMIN_KEYS to turn them on{where}"


def require_admin_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> None:
    """The upload, delete and job routes: an admin key (RAG_ADMIN_KEYS); none set: 403, routes off."""
    given = (bearer.credentials if bearer else None) or header
    check_admin_key(given, request.app.state.admin_keys, request.app.state.settings.host)


def check_admin_key(given: str | None, keys: list[str], host: str) -> None:
    """``given`` is one of the admin keys ``keys``, else the error that says why not: uploads
    are off (no keys set), no key was given, or it is not one of them. The API and the chat's
    documents page both ask here."""
    off = uploads_off_reason(keys, host)
    if off is not None:
        raise UploadsDisabledError(off)
    if not given:
        raise UnauthorizedError("an admin key is required (RAG_ADMIN_KEYS): send `Authorization: Bearer <key>` "
                                "or `X-API-Key: <key>`")
    if not key_matches(given, keys):
        raise UnauthorizedError("invalid admin key: uploads and deletes need one of RAG_ADMIN_KEYS")


class KeyGuard:
    """ASGI wrapper that asks for an API key (same rules as ``require_api_key``) before ``app``.

    For endpoints that are not FastAPI routes (the MCP server at /mcp)."""

    def __init__(self, app: Any, keys: list[str], admin_keys: list[str] | None = None) -> None:
        self.app = app
        self.keys = keys
        self.admin_keys = admin_keys or []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.keys:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            bearer = headers.get("authorization", "")
            given = (bearer[7:].strip() if bearer[:7].lower() == "bearer " else "") or headers.get("x-api-key", "")
            if not given or not (key_matches(given, self.keys) | key_matches(given, self.admin_keys)):
                from rag.api.errors import error_response

                message = ("invalid API key" if given else
                           "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
                response = error_response(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
