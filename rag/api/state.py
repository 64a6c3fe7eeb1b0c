"""The loaded service, shared by the API routes and the chat UI of one app."""

from __future__ import annotations

import logging
import threading
from typing import Any

from rag.config import Settings
from rag.errors import RagError

log = logging.getLogger("rag.api")


class ServiceHolder:
    """Holds the one ``RagService`` of an app; loads it once (in the app's lifespan)."""

    def __init__(self, settings: Settings, service: Any = None) -> None:
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

                self.service = RagService.open(self.settings.index_dir, self.settings)
                self.error = None
            except RagError as exc:
                self.error = str(exc)
                log.warning("index not loaded: %s", exc)
            except Exception as exc:  # a broken index must not stop /healthz or the UI
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("loading the index failed")
            finally:
                self.loading = False

    def get(self) -> Any:
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
        index = getattr(svc, "index", None)
        manifest = getattr(index, "manifest", {}) or {}
        counts = manifest.get("counts", {})
        model = manifest.get("model", {})
        documents = counts.get("documents")
        paragraphs = counts.get("paragraphs")
        if documents is None and index is not None:
            documents = len(getattr(index, "documents", {}))
        if paragraphs is None and index is not None:
            paragraphs = len(getattr(index, "paragraphs", {}))
        judge = getattr(svc, "judge", None)
        llm: dict[str, Any] = {"mode": "off"}
        if judge is not None:
            llm = {"mode": "local", "model": judge.model.path.name, "judge_floor": judge.floor,
                   "judge_top_k": judge.top_k, "load_s": round(getattr(svc, "llm_load_seconds", 0.0), 2)}
        return {
            "llm": llm,
            "documents": documents,
            "paragraphs": paragraphs,
            "chunks": counts.get("chunks"),
            "model": {"name": model.get("name"), "id": model.get("id") or getattr(svc.encoder, "model_id", None),
                      "dim": model.get("dim")},
            "index_created": manifest.get("created"),
        }
