"""The loaded service, shared by the API routes and the chat UI of one app."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import RagError

if TYPE_CHECKING:  # `rag serve` imports this module before the service, to load it in a thread
    from rag.service import RagService

log = logging.getLogger("rag.api")


class ServiceHolder:
    """Holds the one ``RagService`` of an app; loads it once (in the app's lifespan)."""

    def __init__(self, settings: Settings, service: RagService | None = None) -> None:
        self.settings = settings
        self.service = service
        self.error: str | None = None
        self.loading = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.service is not None

    def start(self) -> None:
        """Load in a background thread (once): ``rag serve`` calls this before it imports the web
        stack, so index and model load while FastAPI, uvicorn and Gradio import."""
        with self._lock:
            if self.service is not None or self._thread is not None:
                return
            self.loading = True  # before the thread starts: no request may see "not loaded" meanwhile
            self._thread = threading.Thread(target=self.load, name="rag-load-index", daemon=True)
            self._thread.start()

    def load(self) -> None:
        """Open the index and the model; a failure is kept as the message /readyz reports."""
        with self._lock:
            if self.service is not None:
                return
            self.loading = True
            try:
                from rag.service import RagService

                self.service = RagService.open(self.settings.index_dir, self.settings, lean_fallback=True)
                self.error = None
            except RagError as exc:
                self.error = str(exc)
                log.warning("index not loaded: %s", exc)
            except Exception as exc:  # a broken index must not stop /healthz or the UI
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("loading the index failed")
            finally:
                self.loading = False

    def get(self) -> RagService:
        """The service, or a 503 NotReadyError that says what to do (the reason is in /readyz)."""
        # Imported here: `rag serve` imports this module before the web stack.
        from rag.api.errors import NotReadyError

        if self.service is not None:
            return self.service
        if self.loading:
            raise NotReadyError("index is loading; retry in a few seconds")
        raise NotReadyError("index not loaded: run `rag index` (GET /readyz says why)")

    def not_ready_reason(self) -> str:
        """The full reason for /readyz and the server's own UI status line."""
        if self.loading:
            return "index is loading; retry in a few seconds"
        return f"index not loaded: run `rag index` ({self.error or 'not loaded yet'})"

    def info(self) -> dict[str, Any]:
        """Index facts for /readyz and the UI status line."""
        svc = self.get()
        manifest = svc.index.manifest
        counts = manifest.get("counts", {})
        model = manifest.get("model", {})
        documents = counts.get("documents")
        paragraphs = counts.get("paragraphs")
        if documents is None:
            documents = len(svc.index.documents)
        if paragraphs is None:
            paragraphs = len(svc.index.paragraphs)
        judge = svc.judge
        llm: dict[str, Any] = {"mode": "off"}
        if judge is not None:
            llm = {**judge.describe(), "load_s": round(svc.llm_load_seconds, 2)}
            if svc.model_queue is not None:
                llm["queue"] = svc.model_queue.stats()
        elif svc.llm_error is not None:  # RAG_LLM=local asked for it; the service runs lean
            llm = {"mode": "off", "lean": True, "requested": svc.settings.llm, "error": svc.llm_error}
        return {
            "llm": llm,
            # What a request's answer_mode can choose: written needs a model that writes.
            "answers": {"default": svc.default_answer_mode, "written": svc.writer is not None},
            "documents": documents,
            "paragraphs": paragraphs,
            "chunks": counts.get("chunks"),
            "model": {"name": model.get("name"), "id": model.get("id") or svc.encoder.model_id,
                      "dim": model.get("dim")},
            "index_created": manifest.get("created"),
        }
