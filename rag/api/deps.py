"""Request-scoped access to the app's loaded service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from rag.api.state import ServiceHolder


def get_holder(request: Request) -> ServiceHolder:
    return request.app.state.holder


def get_service(holder: Annotated[ServiceHolder, Depends(get_holder)]) -> Any:
    """The loaded RagService; 503 ``index_not_loaded`` until the index is loaded."""
    return holder.get()


Service = Annotated[Any, Depends(get_service)]
Holder = Annotated[ServiceHolder, Depends(get_holder)]
