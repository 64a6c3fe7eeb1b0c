"""Vector stores behind one seam (:class:`Store`)."""

from rag.store.base import Store, VectorHits
from rag.store.faiss_store import FaissStore

__all__ = ["FaissStore", "Store", "VectorHits"]
