"""Collections: the list, each one's documents, and (behind RAG_ADMIN_KEYS) documents uploaded
into one or deleted from it, as jobs a client follows at GET /api/jobs/{id}.

An upload is checked whole in the request (names, types, sizes, and each file read by the
loader `rag index` uses): a bad file is a 4xx naming it, and nothing is stored. The accepted
files are staged, and a job moves them into the collection's sources and updates its index.
"""

from __future__ import annotations

from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.api import auth
from rag.api.deps import AllCollections, AllJobs
from rag.api.routers.documents import DocId, document_detail, document_list
from rag.api.schemas import ERRORS, DocumentDetailOut
from rag.collections import check_name
from rag.config import Settings
from rag.errors import InputError, UploadTooLargeError
from rag.uploads import check_files, check_writable, too_many_files

router = APIRouter(prefix="/api", tags=["collections"], responses=ERRORS)
admin = APIRouter(prefix="/api", tags=["collections"], dependencies=[Depends(auth.require_admin_key)],
                  responses={**ERRORS, 403: ERRORS[401], 409: ERRORS[401], 413: ERRORS[401], 415: ERRORS[401],
                             507: ERRORS[401]})


@router.get("/collections", summary="The collections: name, document and paragraph counts, ready state, model")
def list_collections(collections: AllCollections, jobs: AllJobs) -> dict[str, Any]:
    out = [{**c, "busy": jobs.busy(c["name"])} for c in collections.summaries()]
    return {"collections": out, "count": len(out)}


@router.get("/collections/{name}/documents", summary="A collection's documents: paragraph counts, file, cleaning flags")
def collection_documents(name: str, collections: AllCollections) -> dict[str, Any]:
    return {"collection": check_name(name), **document_list(collections.service(name))}


@router.get("/collections/{name}/documents/{doc_id:path}", summary="One document of a collection, with its paragraphs",
            responses={200: {"model": DocumentDetailOut}})
def collection_document(name: str, doc_id: DocId, collections: AllCollections) -> dict[str, Any]:
    return document_detail(collections.service(check_name(name)), doc_id)


# -- behind the admin keys -------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


def _limited(receive: Any, limit: int) -> Any:
    """The request's ``receive``, failing once the body passes ``limit`` bytes (a body with no
    Content-Length, or one that lies, still stops there)."""
    seen = 0

    async def wrapped() -> Any:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return wrapped


def _job_body(job: Any) -> dict[str, Any]:
    return {**job.to_dict(), "url": f"/api/jobs/{job.id}"}


_MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"],
    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                             "description": "txt, md, html, pdf, docx or jsonl files; the same name again replaces"}}}}}}}


@admin.post("/collections/{name}/documents", status_code=202, openapi_extra=_MULTIPART,
            summary="Upload files into a collection (multipart, field `files`, several at once): a job")
async def upload(name: str, request: Request, jobs: AllJobs) -> JSONResponse:
    settings: Settings = request.app.state.settings
    name = check_writable(name)
    limit = settings.max_upload_mb * 2**20
    body_limit = settings.max_upload_files * (limit + 65536) + 65536
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > body_limit:
        raise UploadTooLargeError(f"the request carries {int(length) / 2**20:.1f} MB: at most "
                                  f"{settings.max_upload_files} files of {settings.max_upload_mb} MB each "
                                  "(RAG_MAX_UPLOAD_FILES, RAG_MAX_UPLOAD_MB)")
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InputError("send the files as multipart/form-data, each in a field named `files`")
    guarded = Request(request.scope, receive=_limited(request.receive, body_limit))
    try:
        form = await guarded.form(max_files=settings.max_upload_files, max_fields=20)
    except _BodyTooLarge:
        raise UploadTooLargeError(f"the request is larger than {settings.max_upload_files} files of "
                                  f"{settings.max_upload_mb} MB each (RAG_MAX_UPLOAD_FILES, RAG_MAX_UPLOAD_MB)") from None
    except StarletteHTTPException as exc:  # a malformed body, or too many files or fields
        detail = str(exc.detail)
        if "Too many files" in detail:
            raise too_many_files(settings) from None
        raise InputError(f"the multipart body could not be read: {detail}") from None
    try:
        files = _files(form, settings)
        job_id, staged = await run_in_threadpool(jobs.stage_files, name, files)
    finally:
        await form.close()
    job = jobs.upload(job_id, name, staged)
    return JSONResponse(_job_body(job), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


def _files(form: FormData, settings: Settings) -> list[tuple[str, IO[bytes]]]:
    """The uploaded files, each name, type and size checked (nothing read yet)."""
    uploads = [v for _, v in form.multi_items() if not isinstance(v, str)]
    if not uploads:
        raise InputError("no files: send them as multipart/form-data, each in a field named `files`")
    names = check_files([(up.filename, up.size) for up in uploads], settings)
    return [(name, up.file) for name, up in zip(names, uploads, strict=True)]


@admin.delete("/collections/{name}/documents/{doc_id:path}", status_code=202,
              summary="Delete a document (its file; every document of that file goes): a job")
def delete_document(name: str, doc_id: DocId, jobs: AllJobs) -> JSONResponse:
    job = jobs.delete(check_writable(name), doc_id)
    return JSONResponse(_job_body(job), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


@admin.get("/jobs/{job_id}", summary="An upload or delete job: status, stage, progress, error")
def job(job_id: Annotated[str, PathParam(max_length=64)], jobs: AllJobs) -> dict[str, Any]:
    return _job_body(jobs.get(job_id))


@admin.get("/jobs", summary="Recent jobs, newest first")
def recent_jobs(jobs: AllJobs, collection: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    found = [_job_body(j) for j in jobs.recent(check_name(collection) if collection else None)]
    return {"jobs": found, "count": len(found)}
