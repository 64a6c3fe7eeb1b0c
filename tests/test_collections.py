"""Collections through a real uvicorn server (hashing encoder, no real model): the list, the
choice per request (HTTP, /v1, MCP), uploads and deletes as jobs behind the admin keys, bad
uploads refused with nothing stored, an index built beside a running server picked up."""

from __future__ import annotations

import errno
import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.api.app import create_app
from rag.collections import manifest_stamp
from rag.config import Settings
from rag.index.build import build_index
from tests.fakes import HashingEncoder
from tests.server_utils import Server, serve_app, tiny_hashing, wait_until

ADMIN = "admin-key-1"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
MEMO = "光伏電池廠在元朗落成。\n\n元朗光伏電池廠年產量達到五千萬片，僱用三百名員工。"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Settings, Any]:
    root = tmp_path_factory.mktemp("collections")
    return tiny_hashing(root, admin_keys=ADMIN, collections_dir=root / "collections", max_upload_mb=1)


@pytest.fixture(scope="module")
def server(tiny) -> Iterator[Server]:
    settings, service = tiny
    with serve_app(create_app(settings, service=service, ui=False)) as srv:
        yield srv


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def wait_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s: {job}")


def upload(client: httpx.Client, collection: str, *files: tuple[str, bytes], headers: dict[str, str] | None = None,
           ) -> httpx.Response:
    return client.post(f"/api/collections/{collection}/documents", headers=AUTH if headers is None else headers,
                       files=[("files", (name, data, "application/octet-stream")) for name, data in files])


def uploaded(client: httpx.Client, collection: str, *files: tuple[str, bytes]) -> dict[str, Any]:
    r = upload(client, collection, *files)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/api/jobs/{r.json()['job_id']}"
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "done", job
    return job


def error(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) == {"code", "message"} and "Traceback" not in r.text
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]


def cited(body: dict[str, Any]) -> list[str]:
    return [c["para_id"] for c in body["citations"]]


# -- list and choice ------------------------------------------------------------------------------


def test_upload_then_ask_then_delete(client):
    assert [c["name"] for c in client.get("/api/collections").json()["collections"]][0] == "default"
    job = uploaded(client, "notes", ("memo.txt", MEMO.encode()), ("extra.md", "# 標題\n\n另一段落：港口物流。".encode()))
    assert job["kind"] == "upload" and job["stage"] == "done" and job["error"] is None
    assert {f["name"] for f in job["files"]} == {"memo.txt", "extra.md"}
    assert job["progress"]["files_read"] == 2 and job["progress"]["encoded"] == job["progress"]["to_encode"] > 0
    assert job["result"]["new"] == ["extra", "memo"]

    listed = {c["name"]: c for c in client.get("/api/collections").json()["collections"]}
    assert listed["notes"]["ready"] and listed["notes"]["documents"] == 2 and listed["notes"]["uploads"]
    assert listed["notes"]["model"]["id"] == "test-hashing-encoder" and not listed["default"]["uploads"]

    body = client.post("/api/ask", json={"question": "元朗光伏電池廠年產量多少？", "collection": "notes"}).json()
    assert body["citations"] and all(p.startswith(("memo#", "extra#")) for p in cited(body))
    assert "memo#p2" in cited(body)
    default = client.post("/api/ask", json={"question": "元朗光伏電池廠年產量多少？"}).json()
    assert not any(p.startswith("memo#") for p in cited(default))  # the default collection is untouched

    docs = client.get("/api/collections/notes/documents").json()
    assert docs["count"] == 2 and {d["doc_id"]: d["paragraphs"] for d in docs["documents"]} == {"extra": 1, "memo": 2}
    assert {"file", "flags", "removed"} <= set(docs["documents"][0])
    assert client.get("/api/documents", params={"collection": "notes"}).json()["count"] == 2
    detail = client.get("/api/collections/notes/documents/memo").json()
    assert [p["para_id"] for p in detail["paragraphs"]] == ["memo#p1", "memo#p2"]
    assert client.get("/api/paragraphs/memo%23p2", params={"collection": "notes"}).json()["text"].startswith("元朗")
    error(client.get("/api/paragraphs/memo%23p2"), 404)  # not in default

    r = client.delete("/api/collections/notes/documents/memo", headers=AUTH)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "done" and job["kind"] == "delete" and job["result"]["deleted"] == ["memo"]
    body = client.post("/api/ask", json={"question": "元朗光伏電池廠年產量多少？", "collection": "notes"}).json()
    assert not any(p.startswith("memo#") for p in cited(body))
    assert [d["doc_id"] for d in client.get("/api/collections/notes/documents").json()["documents"]] == ["extra"]
    error(client.get("/api/collections/notes/documents/memo"), 404)
    error(client.delete("/api/collections/notes/documents/memo", headers=AUTH), 404)


def test_replace_is_the_same_name_again(client):
    uploaded(client, "replace", ("r.txt", "舊版本：碼頭啟用。".encode()))
    job = uploaded(client, "replace", ("r.txt", "新版本：機場擴建。".encode()))
    assert job["files"][0]["replaces"] and job["result"]["changed"] == ["r"]
    texts = [p["text"] for p in client.get("/api/collections/replace/documents/r").json()["paragraphs"]]
    assert texts == ["新版本：機場擴建。"]


def test_collection_chosen_in_search_briefing_v1_and_mcp(client, server):
    uploaded(client, "choice", ("c.txt", "沙田數據中心啟用，提供雲端服務。".encode()))
    hits = client.post("/api/search", json={"query": "沙田數據中心", "collection": "choice"}).json()["hits"]
    assert hits and hits[0]["para_id"] == "c#p1"
    r = client.post("/api/briefing", json={"questions": ["沙田數據中心"], "format": "md", "collection": "choice"})
    assert r.status_code == 200 and "c#p1" in r.text

    models = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert models[0] == "rag-bilingual" and "rag-bilingual:choice" in models
    chat = {"messages": [{"role": "user", "content": "沙田數據中心"}]}
    r = client.post("/v1/chat/completions", json={**chat, "model": "rag-bilingual:choice"})
    assert r.status_code == 200 and r.json()["citations"][0]["para_id"] == "c#p1"
    assert r.json()["model"] == "rag-bilingual:choice"
    r = client.post("/v1/chat/completions", json={**chat, "model": "gpt-4o"})  # any other name: default
    assert r.status_code == 200 and not any(c["para_id"].startswith("c#") for c in r.json()["citations"])
    error(client.post("/v1/chat/completions", json={**chat, "model": "rag-bilingual:nope"}), 404, "not_found")

    import asyncio

    from mcp import Client

    async def tools() -> tuple[Any, Any, Any, Any]:
        async with Client(server.base_url + "/mcp") as mcp:
            ask = await mcp.call_tool("ask", {"question": "沙田數據中心", "collection": "choice"})
            docs = await mcp.call_tool("list_documents", {"collection": "choice"})
            cols = await mcp.call_tool("list_collections", {})
            bad = await mcp.call_tool("search", {"query": "x", "collection": "nope"})
            return ask, docs, cols, bad

    ask, docs, cols, bad = asyncio.run(tools())
    assert ask.structured_content["citations"][0]["para_id"] == "c#p1"
    assert [d["doc_id"] for d in docs.structured_content["documents"]] == ["c"]
    assert "choice" in [c["name"] for c in cols.structured_content["collections"]]
    assert bad.is_error and "no collection named 'nope'" in bad.content[0].text


def test_unknown_and_bad_collection_names(client):
    error(client.post("/api/ask", json={"question": "香港", "collection": "nope"}), 404, "not_found")
    for bad in ("Bad Name", "../x", "UPPER", "-dash", "a" * 65):
        error(client.post("/api/search", json={"query": "香港", "collection": bad}), 422)
    error(client.get("/api/documents", params={"collection": "a/b"}), 422)
    error(upload(client, "Bad%20Name", ("a.txt", b"abc")), 422, "invalid_input")
    error(upload(client, "default", ("a.txt", "一段文字。".encode())), 409, "conflict")


# -- admin keys ----------------------------------------------------------------------------------


def test_uploads_need_an_admin_key(client):
    error(upload(client, "keys", ("a.txt", "一段文字。".encode()), headers={}), 401, "unauthorized")
    error(upload(client, "keys", ("a.txt", "一段文字。".encode()), headers={"X-API-Key": "wrong"}), 401)
    error(client.get("/api/jobs/whatever", headers={}), 401)
    error(client.get("/api/jobs/whatever", headers=AUTH), 404)
    assert upload(client, "keys", ("a.txt", "一段文字。".encode()), headers={"X-API-Key": ADMIN}).status_code == 202


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_without_admin_keys_uploads_are_off(tiny, host):
    settings, service = tiny
    off = settings.model_copy(update={"admin_keys": None, "api_keys": "reader", "host": host})
    with serve_app(create_app(off, service=service, ui=False)) as srv, srv.client() as c:
        for r in (upload(c, "x", ("a.txt", b"abc"), headers={"X-API-Key": "reader"}),
                  c.delete("/api/collections/x/documents/a", headers={"X-API-Key": "reader"}),
                  c.get("/api/jobs/1", headers={"X-API-Key": "reader"})):
            message = error(r, 403, "uploads_disabled")
            assert "RAG_ADMIN_KEYS" in message
            assert ("0.0.0.0" in message) == (host == "0.0.0.0")
        assert c.get("/api/collections", headers={"X-API-Key": "reader"}).status_code == 200


def test_an_admin_key_also_reads_when_api_keys_are_set(tiny):
    settings, service = tiny
    keyed = settings.model_copy(update={"api_keys": "reader"})
    with serve_app(create_app(keyed, service=service, ui=False)) as srv, srv.client() as c:
        assert c.get("/api/collections", headers=AUTH).status_code == 200
        assert c.get("/api/collections", headers={"X-API-Key": "reader"}).status_code == 200
        error(c.get("/api/collections"), 401)
        error(upload(c, "x", ("a.txt", b"abc"), headers={"X-API-Key": "reader"}), 401)  # a reader is no admin


# -- bad input: a 4xx, nothing stored, the live index untouched ---------------------------------


def blank_pdf() -> bytes:
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(200, 200)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _zip_bomb_docx() -> bytes:
    """A small zip whose directory says its document unpacks to 2 GB (as a real bomb's does)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * 1000)
    data = bytearray(out.getvalue())
    at = data.index(b"PK\x01\x02", 0)
    at = data.index(b"PK\x01\x02", at + 4)  # the second entry's central directory record
    data[at + 24: at + 28] = (2**31 - 1).to_bytes(4, "little")  # its uncompressed size
    return bytes(data)


BAD_FILES = [
    ("big.txt", ("一" * 400_000).encode(), 413, "RAG_MAX_UPLOAD_MB"),
    ("program.exe", b"MZ\x90\x00", 415, "unsupported file type '.exe'"),
    ("noext", b"abc", 415, "unsupported file type '(none)'"),
    ("scan.pdf", blank_pdf(), 422, "PDF has no extractable text (scanned images? run OCR first)"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R\nthis is not a pdf", 422,
     "corrupt or unreadable PDF"),
    ("bomb.docx", _zip_bomb_docx(), 422, "refused as a zip bomb"),
    ("notzip.docx", b"PK\x03\x04 definitely not a zip archive", 422, "corrupt or unreadable DOCX"),
    ("binary.txt", b"\x00\x01\x02\x03" * 100, 422, "binary file"),
    ("empty.txt", b"", 422, "empty file"),
    ("lines.jsonl", b"not json\n{\"no\": 1}\n", 422, "no usable lines"),
    ("../x.txt", b"abc", 422, "path parts"),
    ("/etc/passwd.txt", b"abc", 422, "path parts"),
    ("..\\x.txt", b"abc", 422, "path parts"),
    ("C:x.txt", b"abc", 422, "path parts"),
    (".hidden.txt", b"abc", 422, "hidden"),
]


@pytest.fixture
def live(client) -> None:
    """A collection with one document (``_state`` shows that nothing in it changed)."""
    uploaded(client, "guarded", ("keep.txt", "保留的段落：旺角行人專用區。".encode()))


def _state(root: Path) -> tuple[Any, list[str], list[str]]:
    col = root / "guarded"
    return (manifest_stamp(col / "index"), sorted(p.name for p in (col / "sources").iterdir()),
            sorted(p.name for p in col.glob(".staging/*")))


@pytest.mark.parametrize(("name", "data", "status", "says"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_refused_and_nothing_changes(client, tiny, live, name, data, status, says):
    root = tiny[0].collections_root()
    before = _state(root)
    # A good file beside the bad one: the upload is all or nothing.
    r = upload(client, "guarded", ("fine.txt", "好的段落：西九文化區。".encode()), (name, data))
    assert says in error(r, status)
    assert _state(root) == before
    body = client.post("/api/ask", json={"question": "旺角行人專用區", "collection": "guarded"}).json()
    assert cited(body) == ["keep#p1"]


def test_undecodable_text_is_named(client, tiny, live):
    root = tiny[0].collections_root()
    before = _state(root)
    # a UTF-16 byte order mark before a lone surrogate: no decoding explains it
    message = error(upload(client, "guarded", ("weird.txt", b"\xff\xfe\x00\xd8" + "文字".encode("utf-16-le"))), 422,
                    "unreadable_file")
    assert message.startswith("weird.txt: undecodable (utf-16 byte order mark")
    assert _state(root) == before


def test_a_full_disk_stores_nothing(client, tiny, live, monkeypatch):
    import rag.uploads

    def full(out: Any, block: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    root = tiny[0].collections_root()
    before = _state(root)
    monkeypatch.setattr(rag.uploads, "write_block", full)
    message = error(upload(client, "guarded", ("fine.txt", "好的段落：西九文化區。".encode())), 507,
                    "insufficient_storage")
    assert "disk is full" in message and "nothing was stored" in message
    assert _state(root) == before


def test_a_full_disk_during_the_build_fails_the_job_and_puts_sources_back(client, tiny, live, monkeypatch):
    import rag.index.build

    root = tiny[0].collections_root()
    before = _state(root)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rag.index.build, "_fsync_file", full)
    r = upload(client, "guarded", ("keep.txt", "換掉的段落。".encode()), ("fine.txt", "好的段落：西九文化區。".encode()))
    job = wait_job(client, r.json()["job_id"])
    assert job["status"] == "failed" and "disk is full" in job["error"]
    assert _state(root)[:2] == before[:2]
    assert (root / "guarded" / "sources" / "keep.txt").read_text(encoding="utf-8").startswith("保留的段落")
    assert not list((root / "guarded" / ".pending").iterdir())
    body = client.post("/api/ask", json={"question": "旺角行人專用區", "collection": "guarded"}).json()
    assert cited(body) == ["keep#p1"]


def test_too_many_files_and_a_body_without_files(client):
    many = [(f"f{i}.txt", b"abc") for i in range(25)]
    error(upload(client, "many", *many), 413, "payload_too_large")
    error(client.post("/api/collections/many/documents", headers=AUTH, data={"x": "1"}), 422)
    error(client.post("/api/collections/many/documents", headers=AUTH, json={"files": []}), 422)
    error(upload(client, "many", ("a.txt", b"abc"), ("a.txt", b"abc")), 422)


# -- one writer per collection; readers never see half an index ---------------------------------


def test_uploads_queue_behind_each_other(client):
    r1 = upload(client, "queue", *[(f"q{i}.txt", f"第{i}號文件：隊列測試段落。".encode()) for i in range(5)])
    r2 = upload(client, "queue", ("q9.txt", "第九號文件：最後一個。".encode()))
    j1, j2 = wait_job(client, r1.json()["job_id"]), wait_job(client, r2.json()["job_id"])
    assert j1["status"] == j2["status"] == "done"
    assert j1["finished"] <= j2["started"]
    assert client.get("/api/collections/queue/documents").json()["count"] == 6
    recent = client.get("/api/jobs", headers=AUTH, params={"collection": "queue"}).json()["jobs"]
    assert [j["job_id"] for j in recent[:2]] == [j2["job_id"], j1["job_id"]]


def test_eight_askers_while_two_uploads_run(client, server):
    from concurrent.futures import ThreadPoolExecutor

    uploaded(client, "busy", ("base.txt", "基礎段落：將軍澳創新園。".encode()))
    first = [(f"a{i}.txt", f"第一批第{i}篇：將軍澳創新園擴建計劃。".encode()) for i in range(4)]
    second = [(f"b{i}.txt", f"第二批第{i}篇：將軍澳創新園新廠房。".encode()) for i in range(4)]
    # The three complete indexes: before, after the first upload, after the second. Every
    # paragraph scores above the floor, so a search with k=20 sees a whole index: exactly one of these.
    states = [{"base#p1"}]
    states.append(states[0] | {f"a{i}#p1" for i in range(4)})
    states.append(states[1] | {f"b{i}#p1" for i in range(4)})
    versions = states[2]
    stop = time.monotonic() + 60
    done = {"uploads": False}

    def ask(_: int) -> list[str]:
        problems = []
        n = 0
        with server.client() as c:
            while n < 3 or (not done["uploads"] and time.monotonic() < stop):
                n += 1
                r = c.post("/api/ask", json={"question": "將軍澳創新園", "collection": "busy", "k": 10})
                if r.status_code != 200:
                    problems.append(f"ask {r.status_code} {r.text[:200]}")
                elif not set(cited(r.json())) <= versions or not r.json()["answer"]:
                    problems.append(f"ask cited {cited(r.json())}")
                r = c.post("/api/search", json={"query": "將軍澳創新園", "collection": "busy", "k": 20})
                if r.status_code != 200:
                    problems.append(f"search {r.status_code} {r.text[:200]}")
                elif {h["para_id"] for h in r.json()["hits"]} not in states:
                    problems.append(f"half an index: {sorted(h['para_id'] for h in r.json()['hits'])}")
        return problems

    with ThreadPoolExecutor(8) as pool:
        askers = [pool.submit(ask, i) for i in range(8)]
        j1 = upload(client, "busy", *first).json()["job_id"]
        j2 = upload(client, "busy", *second).json()["job_id"]
        jobs = [wait_job(client, j1, 120), wait_job(client, j2, 120)]
        done["uploads"] = True
        problems = [p for f in askers for p in f.result(timeout=120)]
    assert [j["status"] for j in jobs] == ["done", "done"]
    assert problems == []
    final = client.post("/api/search", json={"query": "將軍澳創新園", "collection": "busy", "k": 20}).json()
    assert {h["para_id"] for h in final["hits"]} == versions


# -- an index built beside a running server ------------------------------------------------------


def test_a_running_server_picks_up_an_index_built_beside_it(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", cache_dir=tmp_path / "cache",
                        embed_model="test-hashing", min_score=0.0, collections_dir=tmp_path / "cols")
    encoder = HashingEncoder()
    from rag.api.state import ServiceHolder
    from rag.collections import Models

    holder = ServiceHolder(settings, models=Models(settings))
    holder.models._encoder = encoder  # the fake stands in for the real model
    with serve_app(create_app(settings, holder=holder, ui=False)) as srv, srv.client() as c:
        wait_until(srv.base_url + "/readyz", status=503)
        error(c.post("/api/search", json={"query": "荃灣"}), 503, "index_not_loaded")
        (corpus / "one.txt").write_text("荃灣海濱長廊開放。", encoding="utf-8")
        build_index([corpus], settings.index_dir, settings, encoder=encoder)
        ready = wait_until(srv.base_url + "/readyz", status=200, timeout=30).json()
        assert ready["documents"] == 1
        assert c.post("/api/search", json={"query": "荃灣"}).json()["hits"][0]["para_id"] == "one#p1"

        # A replaced index (a new manifest) is opened while the old one keeps answering.
        (corpus / "two.txt").write_text("屯門醫院新翼落成。", encoding="utf-8")
        build_index([corpus], settings.index_dir, settings, encoder=encoder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = c.post("/api/search", json={"query": "屯門醫院", "k": 2})
            assert r.status_code == 200, r.text  # never a gap while the new one opens
            if r.json()["hits"][0]["para_id"] == "two#p1":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the new index was never served")
        assert c.get("/readyz").json()["documents"] == 2


def test_recover_rolls_back_a_job_cut_short(tmp_path):
    """The journal a killed job leaves: its files are put back, unless its index had been swapped in."""
    from rag.collections import Collections, IndexHolder
    from rag.uploads import PENDING, _apply, _Change, recover

    settings = Settings(_env_file=None, index_dir=tmp_path / "index", collections_dir=tmp_path / "cols")
    sources = tmp_path / "cols" / "c" / "sources"
    sources.mkdir(parents=True)
    (sources / "old.txt").write_text("old", encoding="utf-8")
    staged = tmp_path / "new.txt"
    staged.write_text("new", encoding="utf-8")
    pending = tmp_path / "cols" / "c" / PENDING / "job1"
    _apply(pending, sources, [_Change("old.txt", staged)])
    assert (sources / "old.txt").read_text(encoding="utf-8") == "new"
    lines = recover(Collections(settings, IndexHolder(settings)))
    assert lines == ["c: job job1 was cut short; its files were put back"]
    assert (sources / "old.txt").read_text(encoding="utf-8") == "old" and not pending.exists()
    assert json.dumps(lines)


# -- fuzz ------------------------------------------------------------------------------------------

EXTS = [".txt", ".md", ".html", ".pdf", ".docx", ".jsonl", ".exe", "", ".TXT", ".tar.gz", ".txt/..", ".pdf\\"]
names = st.tuples(st.text(min_size=0, max_size=30), st.sampled_from(EXTS)).map(lambda t: t[0] + t[1])
contents = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"%PDF-1.4\n%%EOF", b"PK\x03\x04", b"\xef\xbb\xbf", b"\xff\xfe", b"{\"id\": 1, \"text\": \"x\"}\n"]),
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(files=st.lists(st.tuples(names, contents), min_size=1, max_size=3),
       collection=st.sampled_from(["fuzz", "fuzz-2", "Fuzz", "../fuzz", "default", "f" * 70]))
def test_fuzz_the_upload_route(client, files, collection):
    """Any names, bytes and collections: a 202 whose job ends (done or failed), or a 4xx with
    the error body; never a 5xx; the default collection keeps answering."""
    try:
        r = upload(client, collection, *files)
    except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
        return  # a name the client itself cannot send
    assert r.status_code in (202, 400, 404, 409, 413, 415, 422), r.text
    if r.status_code == 202:
        job = wait_job(client, r.json()["job_id"])
        assert job["status"] in ("done", "failed")
        assert job["status"] == "done", job["error"]  # checked in the request: a job fails only on the disk
    else:
        error(r, r.status_code)
    assert client.post("/api/search", json={"query": "香港"}).status_code == 200


def test_collections_share_the_models_and_the_one_model_queue(tiny):
    """A collection's service is a sibling of the first one opened: the same encoder, judge,
    writer and bounded queue, so questions about every collection wait in one queue."""
    from rag.collections import Collections, IndexHolder, Models
    from rag.service import RagService
    from tests.test_model_queue import BlockingJudge

    settings, plain = tiny
    judged = RagService(plain.index, plain.encoder, settings, judge=BlockingJudge(), on_request_thread=None)
    every = Collections(settings, IndexHolder(settings, judged))
    assert every.models.base is judged
    folder = settings.collections_root() / "shared-models"
    (folder / "sources").mkdir(parents=True)
    (folder / "sources" / "s.txt").write_text("觀塘海濱花園。", encoding="utf-8")
    build_index([folder / "sources"], folder / "index", settings, encoder=plain.encoder)
    other = every.holder("shared-models").get()  # opened on first use, synchronously: the models are loaded
    assert other.index.index_dir == folder / "index" and other is not judged
    for svc in (other, judged.sibling(plain.index)):
        assert svc.encoder is judged.encoder and svc.judge is judged.judge
        assert svc.model_queue is judged.model_queue is not None and svc.writer is judged.writer
    assert Models(settings).loaded is False


def test_a_failure_while_moving_files_puts_everything_back(tmp_path, monkeypatch):
    """The disk fills up half-way through moving an upload's files into sources/: the files
    already moved go back, those replaced come back, and the job's journal is gone (the writer
    calls _roll_back on any OSError of _apply)."""
    import os as os_

    import rag.uploads
    from rag.uploads import PENDING, _apply, _Change, _roll_back

    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "a.txt").write_text("old a", encoding="utf-8")
    staged = [tmp_path / "a.txt.new", tmp_path / "b.txt.new"]
    for p, text in zip(staged, ("new a", "new b"), strict=True):
        p.write_text(text, encoding="utf-8")
    real = os_.replace
    moves = {"n": 0}

    def replace(src: Any, dst: Any) -> None:
        moves["n"] += 1
        if moves["n"] == 4:  # journal, backup of a.txt, new a.txt, then b.txt: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(rag.uploads.os, "replace", replace)
    pending = tmp_path / PENDING / "job"
    with pytest.raises(OSError):
        _apply(pending, sources, [_Change("a.txt", staged[0]), _Change("b.txt", staged[1])])
    monkeypatch.setattr(rag.uploads.os, "replace", real)
    _roll_back(pending, sources)
    assert sorted(p.name for p in sources.iterdir()) == ["a.txt"]
    assert (sources / "a.txt").read_text(encoding="utf-8") == "old a" and not pending.exists()


def test_the_builder_reports_its_progress(tmp_path):
    """build_index's on_progress: the stages in order, and the encoder's count rising to its total."""
    sources = tmp_path / "src"
    sources.mkdir()
    for i in range(6):
        (sources / f"d{i}.txt").write_text("\n\n".join(f"第{i}篇第{j}段：進度測試文字。" for j in range(50)),
                                           encoding="utf-8")
    settings = Settings(_env_file=None, index_dir=tmp_path / "index", cache_dir=tmp_path / "cache",
                        embed_model="test-hashing")
    seen: list[tuple[str, dict[str, int]]] = []
    build_index([sources], settings.index_dir, settings, encoder=HashingEncoder(),
                on_progress=lambda stage, counts: seen.append((stage, dict(counts))))
    stages = list(dict.fromkeys(stage for stage, _ in seen))
    assert stages == ["read", "encoding", "writing", "swapped"]
    assert seen[0][1] == {"files_read": 6, "documents": 6, "paragraphs": 300}
    encoded = [c["encoded"] for s, c in seen if s == "encoding"]
    total = next(c["to_encode"] for s, c in seen if s == "encoding")
    assert total >= 300 and encoded[0] == 0 and encoded[-1] == total and encoded == sorted(encoded)
    assert len(encoded) > 3  # reported as it goes, not only at the end
