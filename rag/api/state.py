"""The loaded service, shared by the API routes and the chat UI of one app: the default
collection's :class:`~rag.collections.IndexHolder` (``rag.collections`` holds the others)."""

from __future__ import annotations

from rag.collections import IndexHolder

ServiceHolder = IndexHolder

__all__ = ["ServiceHolder"]
