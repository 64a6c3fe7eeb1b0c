"""Request-scoped access to the app's loaded services, collections and jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from rag.api.state import ServiceHolder
from rag.collections import Collections
from rag.uploads import Jobs


def get_holder(request: Request) -> ServiceHolder:
    return request.app.state.holder


def get_service(holder: Annotated[ServiceHolder, Depends(get_holder)]) -> Any:
    """The default collection's RagService; 503 ``index_not_loaded`` until the index is loaded."""
    return holder.get()


def get_collections(request: Request) -> Collections:
    return request.app.state.collections


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


Service = Annotated[Any, Depends(get_service)]
Holder = Annotated[ServiceHolder, Depends(get_holder)]
AllCollections = Annotated[Collections, Depends(get_collections)]
AllJobs = Annotated[Jobs, Depends(get_jobs)]
