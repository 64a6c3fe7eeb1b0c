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


class NotReadyError(IndexStateError):
    """The index is not (yet) loaded: /api and /v1 answer 503 until it is."""

    code = "index_not_loaded"
    http_status = 503


class ForbiddenError(RagError):
    """Authenticated, or not, but this server does not allow the action (uploads off)."""

    code = "forbidden"
    http_status = 403


class ConflictError(RagError):
    """The request is valid but clashes with the state (a collection that cannot take it)."""

    code = "conflict"
    http_status = 409


class UploadTooLargeError(InputError):
    """An uploaded file or request over ``RAG_MAX_UPLOAD_MB`` / ``RAG_MAX_UPLOAD_FILES``."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedTypeError(InputError):
    """An uploaded file of a type the loader does not read."""

    code = "unsupported_media_type"
    http_status = 415


class StorageFullError(RagError):
    """The disk is full (ENOSPC) or over quota: nothing was stored."""

    code = "insufficient_storage"
    http_status = 507


class UnreadableFileError(InputError):
    """An uploaded file the loader cannot read (corrupt, undecodable, no text): the loader's reason."""

    code = "unreadable_file"
    http_status = 422


class UploadsDisabledError(ForbiddenError):
    """The upload and delete routes on a server without admin keys (RAG_ADMIN_KEYS)."""

    code = "uploads_disabled"
