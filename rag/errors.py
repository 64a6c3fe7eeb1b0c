"""One exception tree for the whole package; each edge (CLI, HTTP) translates it once."""

from __future__ import annotations


class RagError(Exception):
    """Base class: a problem the user can act on. The message says how."""

    code = "rag_error"
    http_status = 400


class InputError(RagError, ValueError):
    """The caller passed something invalid (empty question, k out of range, ...)."""

    code = "invalid_input"
    http_status = 422


class NotFoundError(RagError, KeyError):
    """An id (document, paragraph) that does not exist."""

    code = "not_found"
    http_status = 404

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else self.code


class IngestError(RagError):
    """A file that cannot be read or parsed; reported and skipped by the indexer."""

    code = "ingest_error"


class ModelError(RagError):
    """The embedding model cannot be built or loaded."""

    code = "model_error"
    http_status = 503


class IndexStateError(RagError):
    """The index is missing, corrupt, locked or built for another configuration."""

    code = "index_error"
    http_status = 503


class UnauthorizedError(RagError):
    code = "unauthorized"
    http_status = 401


class GeneratorError(RagError):
    """The generator could not produce an answer (unreachable, HTTP error, timeout, empty)."""

    code = "generator_error"
    http_status = 502


class ModelBusyError(RagError):
    """The local language model's queue is full (``RAG_LLM_QUEUE``): retry after ``retry_after_s``."""

    code = "model_busy"
    http_status = 503

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
