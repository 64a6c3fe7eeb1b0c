"""Vector stores behind small seams (:class:`VectorSearch`, :class:`VectorWriter`, :class:`Store`)."""

from rag.store.base import Store, VectorHits, VectorSearch, VectorWriter
from rag.store.faiss_store import FaissStore

__all__ = ["FaissStore", "Store", "VectorHits", "VectorSearch", "VectorWriter"]
