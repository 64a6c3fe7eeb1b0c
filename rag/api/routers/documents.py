"""Browsing: the indexed documents, one document with its paragraphs and audit, one paragraph.

Ids are looked up in the loaded index (a dict), never used as file paths, so a traversal
attempt such as ``..%2F..%2Fetc%2Fpasswd`` is just an unknown id (404).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from rag.api.deps import AllCollections
from rag.api.schemas import ERRORS, DocumentDetailOut, DocumentsOut, ParagraphOut

MAX_ID = 1000
router = APIRouter(prefix="/api", tags=["documents"], responses=ERRORS)
DocId = Annotated[str, Path(max_length=MAX_ID, description="doc_id from GET /api/documents")]
ParaId = Annotated[str, Path(max_length=MAX_ID, description="<doc_id>#p<n>; send '#' as %23")]
InCollection = Annotated[str | None, Query(max_length=64, description="The collection (GET /api/collections "
                                                                        "lists them); unset: default")]


def _paragraph(p: Any) -> dict[str, Any]:
    return {"para_id": p.para_id, "doc_id": p.doc_id, "n": p.n, "text": p.text, "heading": p.heading}


def document_list(service: Any) -> dict[str, Any]:
    """Every document with its paragraph count, its file, and what cleaning flagged or removed."""
    docs = []
    for d in service.documents():
        docs.append({**d.to_dict(), "file": d.path, "flags": list(d.flags), "removed": len(d.removed)})
    return {"documents": docs, "count": len(docs)}


def document_detail(service: Any, doc_id: str) -> dict[str, Any]:
    info = service.document(doc_id)
    body = info.to_dict(with_audit=True)
    body["path"] = info.path
    body["paragraphs"] = [_paragraph(service.paragraph(pid)) for pid in info.paragraph_ids]
    return body


@router.get("/documents", summary="List the indexed documents", responses={200: {"model": DocumentsOut}})
def documents(collections: AllCollections, collection: InCollection = None) -> dict[str, Any]:
    return document_list(collections.service(collection))


@router.get("/documents/{doc_id:path}", summary="One document: its paragraphs and the cleaning audit",
            responses={200: {"model": DocumentDetailOut}})
def document(doc_id: DocId, collections: AllCollections, collection: InCollection = None) -> dict[str, Any]:
    return document_detail(collections.service(collection), doc_id)


@router.get("/paragraphs/{para_id:path}", summary="One paragraph by para_id (URL-encode '#' as %23)",
            responses={200: {"model": ParagraphOut}})
def paragraph(para_id: ParaId, collections: AllCollections, collection: InCollection = None) -> dict[str, Any]:
    service = collections.service(collection)
    p = service.paragraph(para_id)
    body = _paragraph(p)
    try:
        doc = service.document(p.doc_id)
    except KeyError:  # a paragraph whose document row is missing: still show the paragraph
        return body
    body.update(title=doc.title, source=doc.source, date=doc.date)
    return body
