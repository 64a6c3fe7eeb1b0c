"""The chat's documents page: a collection's documents and paragraphs for everyone; for an admin
(one of ``RAG_ADMIN_KEYS``, entered in the page) new collections, uploads and deletes.

Everything goes through what the HTTP routes use, in-process: the file checks and staging of
:mod:`rag.uploads`, the admin-key check of :mod:`rag.api.auth`, the document bodies of
:mod:`rag.api.routers.documents`. An upload or a delete is a job of the server's
:class:`~rag.uploads.Jobs`; the page follows its progress until it is done. Any refusal is a
message in the page, never a stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from rag.api.auth import check_admin_key, uploads_off_reason
from rag.api.routers.documents import document_detail, document_list
from rag.collections import DEFAULT, Collections, check_name
from rag.config import Settings
from rag.errors import InputError, NotFoundError, RagError, UnauthorizedError, UploadsDisabledError
from rag.ingest.corpus import SUPPORTED
from rag.uploads import Jobs, check_files, check_writable

from .render import EMPTY_DOCUMENT, render_document, render_documents, render_job, render_message

log = logging.getLogger("rag.ui")
POLL_S = 0.2  # how often the page redraws a running job's progress
INTERNAL = "內部錯誤 Internal error; the server log has the details."
OFF_LEAD = "上載及刪除已關閉，文件只供瀏覽。"
REFUSED = "上載被拒，沒有儲存任何檔案 Upload refused, nothing was stored: "
NOT_DELETED = "未能刪除 Not deleted: "


def collection_choices(collections: Collections, extra: str | None = None) -> list[tuple[str, str]]:
    """The collections as dropdown choices (``default`` first); ``extra``: a new one not on disk yet."""
    names = collections.names()
    if extra and extra not in names:
        names.append(extra)
    return [("default 預設" if n == DEFAULT else n, n) for n in names]


def _message(exc: Exception, lead: str = "") -> str:
    """A refusal as the page shows it: ``lead`` and the product's own message, or a generic one
    (the error logged)."""
    if isinstance(exc, RagError):
        return render_message(f"{lead}{exc}")
    log.error("the documents page failed", exc_info=exc)
    return render_message(INTERNAL)


class DocumentsUI:
    """Event handlers of the documents page; ``state`` (per browser session) holds the admin key
    that was accepted and the delete waiting for its confirmation."""

    def __init__(self, collections: Collections, jobs: Jobs, settings: Settings, admin_keys: list[str]) -> None:
        self.collections = collections
        self.jobs = jobs
        self.settings = settings
        self.admin_keys = admin_keys

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"key": None, "pending": None}

    @property
    def off(self) -> str | None:
        """Why uploads and deletes are off (no admin keys), or None."""
        return uploads_off_reason(self.admin_keys, self.settings.host)

    def notice(self) -> str:
        off = self.off
        return render_message(f"{OFF_LEAD} {off}", "info") if off else ""

    def _require_admin(self, state: dict[str, Any] | None) -> None:
        """Uploads are on and this session logged in with an admin key, else the reason."""
        off = self.off
        if off is not None:
            raise UploadsDisabledError(off)
        if not self._admin(state):
            raise UnauthorizedError("請先以管理密鑰登入 Log in with an admin key first (RAG_ADMIN_KEYS).")

    def _admin(self, state: dict[str, Any] | None) -> bool:
        try:
            check_admin_key((state or {}).get("key"), self.admin_keys, self.settings.host)
        except RagError:
            return False
        return True

    def listing(self, collection: str | None, state: dict[str, Any] | None) -> str:
        """The document list of ``collection``, or why there is none (a new collection, not ready)."""
        name = collection or DEFAULT
        try:
            service = self.collections.service(check_name(name))
            body = document_list(service)
        except NotFoundError:
            return render_message(f"新集合 New collection “{name}”: 上載檔案即建立 it is created by its first upload.",
                                  "info")
        except Exception as exc:
            return _message(exc)
        pending = (state or {}).get("pending")
        writable = name != DEFAULT and self._admin(state)
        return render_documents(name, body["documents"], can_delete=writable,
                                pending=pending if pending and pending.get("collection") == name else None)

    # -- events -----------------------------------------------------------------------------------
    def open_page(self, collection: str | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """The page as a session first sees it: the notice, the collections, the list."""
        return (self.notice(), gr.Dropdown(choices=collection_choices(self.collections)),
                self.listing(collection, state))

    def choose(self, collection: str | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """Another collection: its list; the paragraph view, a pending delete and messages go."""
        state = {**(state or self.new_state()), "pending": None}
        return self.listing(collection, state), EMPTY_DOCUMENT, "", state

    def create(self, raw: str, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """A new collection's name (a slug, not ``default``), chosen; its first upload makes its
        folder. A name already in use just chooses that collection. Yields (documents dropdown,
        name box, message, list, paragraph view, state)."""
        skip = gr.skip()
        try:
            self._require_admin(state)
            name = check_writable((raw or "").strip())
        except RagError as exc:
            return skip, skip, render_message(str(exc)), skip, skip, skip
        state = {**(state or self.new_state()), "pending": None}
        return (gr.Dropdown(choices=collection_choices(self.collections, name), value=name), "",
                render_message(f"已選集合 Collection “{name}” chosen: 在上面上載檔案 upload files into it above.", "ok"),
                self.listing(name, state), EMPTY_DOCUMENT, state)

    def login(self, key: str, collection: str | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        """Check the key as the API does; an accepted one is kept in the session (never sent back)."""
        state = dict(state or self.new_state())
        try:
            if not (key or "").strip():
                raise InputError("請輸入管理密鑰 Enter an admin key (one of RAG_ADMIN_KEYS).")
            check_admin_key(key.strip(), self.admin_keys, self.settings.host)
        except RagError as exc:
            state["key"] = None
            return ("", render_message(str(exc)), state, *self._admin_view(False), self.listing(collection, state))
        state["key"] = key.strip()
        return ("", render_message("已登入管理員 Logged in as admin: 可上載及刪除 uploads and deletes are on.", "ok"),
                state, *self._admin_view(True), self.listing(collection, state))

    def logout(self, collection: str | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        state = {**(state or self.new_state()), "key": None, "pending": None}
        return ("", render_message("已登出 Logged out.", "info"), state, *self._admin_view(False),
                self.listing(collection, state))

    @staticmethod
    def _admin_view(admin: bool) -> tuple[Any, ...]:
        """The login row, the admin tools (new collection, upload) and the logout button."""
        return gr.Row(visible=not admin), gr.Group(visible=admin), gr.Button(visible=admin)

    def upload(self, collection: str | None, files: Sequence[Any] | None,
               state: dict[str, Any] | None) -> Iterator[tuple[Any, ...]]:
        """Check the files, stage them and follow the job to its end. Yields (job box, list,
        documents dropdown, chat dropdown, file picker)."""
        skip = gr.skip()
        name = collection or DEFAULT
        paths = [Path(str(f)) for f in files or ()]
        try:
            self._require_admin(state)
            name = check_writable(name)
            if not paths:
                raise InputError(f"請先選擇檔案 Choose files first ({', '.join(SUPPORTED)}).")
            if not all(p.is_file() for p in paths):
                raise InputError("請重新選擇檔案 Choose the files again: the server no longer has them.")
            names = check_files([(p.name, p.stat().st_size) for p in paths], self.settings)
            with contextlib.ExitStack() as stack:
                opened = [(n, stack.enter_context(open(p, "rb"))) for n, p in zip(names, paths, strict=True)]
                job_id, staged = self.jobs.stage_files(name, opened)
            job = self.jobs.upload(job_id, name, staged)
        except Exception as exc:
            yield _message(exc, REFUSED), skip, skip, skip, skip
            return
        for path in paths:  # staged: the browser's copies (in Gradio's cache) are no longer needed
            with contextlib.suppress(OSError):
                path.unlink()
        for body in self._follow(job.id):
            yield render_job(body), skip, skip, skip, skip
        choices = collection_choices(self.collections)
        yield (render_job(body), self.listing(name, state), gr.Dropdown(choices=choices, value=name),
               gr.Dropdown(choices=choices), None)

    def command(self, raw: str, collection: str | None, state: dict[str, Any] | None) -> Iterator[tuple[Any, ...]]:
        """``<act>:<nonce>:<doc_id>`` from chat.js: ``view``, ``delete`` (asks to confirm),
        ``confirm`` (deletes: a job followed to its end), ``cancel``. Yields (job box, list,
        paragraph view, state, chat dropdown)."""
        skip = gr.skip()
        state = dict(state or self.new_state())
        act, _, rest = (raw or "").partition(":")
        doc_id = rest.partition(":")[2]
        name = collection or DEFAULT
        try:
            if act == "view":
                yield skip, skip, render_document(document_detail(self.collections.service(name), doc_id)), state, skip
                return
            if act == "cancel":
                state["pending"] = None
                yield "", self.listing(name, state), skip, state, skip
                return
            if act not in ("delete", "confirm"):
                return
            self._require_admin(state)
            if act == "delete":
                file, gone = self.jobs.deletion(name, doc_id)
                state["pending"] = {"collection": name, "doc_id": doc_id, "file": file, "doc_ids": gone}
                yield "", self.listing(name, state), skip, state, skip
                return
            pending = state.get("pending") or {}
            if pending.get("collection") != name or pending.get("doc_id") != doc_id:
                raise InputError("請再按一次「刪除」 Press “Delete” again: the confirmation was for another document.")
            state["pending"] = None
            job = self.jobs.delete(name, doc_id)
        except Exception as exc:
            lead = NOT_DELETED if act in ("delete", "confirm") else ""
            yield _message(exc, lead), self.listing(name, state), skip, state, skip
            return
        for body in self._follow(job.id):
            yield render_job(body), skip, skip, state, skip
        yield (render_job(body), self.listing(name, state), EMPTY_DOCUMENT, state,
               gr.Dropdown(choices=collection_choices(self.collections)))

    def _follow(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's body now and every ``POLL_S`` until it is done or failed (that one last)."""
        while True:
            body = self.jobs.get(job_id).to_dict()
            yield body
            if body["status"] in ("done", "failed"):
                return
            time.sleep(POLL_S)


def build_page(docs: DocumentsUI, chat_collection: Any) -> dict[str, Any]:
    """The page's components inside the current Blocks context, wired; ``chat_collection``: the
    chat's collection dropdown, whose choices follow uploads and deletes. Returns the components
    that the chat's own events update (by name)."""
    state = gr.State(docs.new_state())
    off = docs.off is not None
    notice = gr.HTML(docs.notice(), elem_id="docs-notice", padding=False, visible=off)
    with gr.Row(elem_id="docs-top", equal_height=False):
        collection = gr.Dropdown(choices=collection_choices(docs.collections), value=DEFAULT,
                                 label="集合 Collection", elem_id="docs-collection", scale=2, min_width=220)
        with gr.Column(scale=3, min_width=260, elem_id="docs-login-col", visible=not off):
            with gr.Row(elem_id="docs-admin", equal_height=True) as login_row:
                key = gr.Textbox(type="password", label="管理員登入 Admin login",
                                 placeholder="管理密鑰 Admin key (RAG_ADMIN_KEYS)", elem_id="admin-key", scale=4)
                login = gr.Button("登入 Log in", elem_id="admin-login", scale=1, min_width=96)
            logout = gr.Button("登出管理員 Log out (admin)", elem_id="admin-logout", visible=False, size="sm")
    with gr.Group(visible=False, elem_id="docs-tools") as tools:
        with gr.Row(elem_id="docs-new-row", equal_height=True):
            new_name = gr.Textbox(show_label=False, placeholder="新集合名稱 New collection name, e.g. team-notes",
                                  elem_id="docs-new", scale=4, container=False, min_width=220)
            create = gr.Button("建立集合 New collection", elem_id="docs-create", scale=1, min_width=150)
        gr.HTML(f'<div class="docs-types"><strong>上載檔案到所選集合 Upload files into the chosen collection</strong>'
                f' · 可多選 several at once · {" ".join(SUPPORTED)} · 每檔最多 at most '
                f"{docs.settings.max_upload_mb} MB, {docs.settings.max_upload_files} 個 files</div>",
                padding=False, elem_id="docs-types")
        files = gr.File(file_count="multiple", show_label=False, label="上載檔案 Upload files", elem_id="docs-files",
                        height=120)
        send = gr.Button("上載並建立索引 Upload and index", variant="primary", elem_id="docs-upload")
    job = gr.HTML("", elem_id="docs-job", padding=False)
    with gr.Row(elem_id="docs-body", equal_height=False):
        with gr.Column(scale=3, min_width=300, elem_id="docs-list-col"):
            listing = gr.HTML("", elem_id="docs-list", padding=False)
        with gr.Column(scale=2, min_width=300, elem_id="docs-view-col"):
            view = gr.HTML(EMPTY_DOCUMENT, elem_id="docs-view", padding=False)
    # chat.js writes "<act>:<nonce>:<doc_id>" here and clicks the button.
    command = gr.Textbox(visible="hidden", elem_id="docs-cmd")
    run_command = gr.Button(visible="hidden", elem_id="docs-cmd-btn")

    admin_outputs = [key, job, state, login_row, tools, logout, listing]
    login.click(docs.login, [key, collection, state], admin_outputs, show_progress="hidden")
    key.submit(docs.login, [key, collection, state], admin_outputs, show_progress="hidden")
    logout.click(docs.logout, [collection, state], admin_outputs, show_progress="hidden")
    # .input, not .change: a handler setting the value (create, upload) must not clear the page.
    collection.input(docs.choose, [collection, state], [listing, view, job, state], show_progress="hidden")
    create_outputs = [collection, new_name, job, listing, view, state]
    create.click(docs.create, [new_name, state], create_outputs, show_progress="hidden")
    new_name.submit(docs.create, [new_name, state], create_outputs, show_progress="hidden")
    send.click(docs.upload, [collection, files, state], [job, listing, collection, chat_collection, files],
               show_progress="hidden")
    run_command.click(docs.command, [command, collection, state], [job, listing, view, state, chat_collection],
                      show_progress="hidden")
    return {"notice": notice, "collection": collection, "listing": listing, "state": state}
