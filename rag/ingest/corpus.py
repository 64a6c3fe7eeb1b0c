"""Files -> :class:`~rag.types.Document`: loaders, encoding detection, ids and metadata.

Supported: ``.txt``, ``.md``, ``.html``/``.htm``, ``.pdf`` (pypdf), ``.docx`` (python-docx)
and ``.jsonl`` of pre-split paragraphs (``{"id", "title", "text"}`` a line; the ``id`` is kept
as the ``para_id``). A file that cannot be read raises :class:`~rag.errors.IngestError` naming
the file and the reason; :func:`load_corpus` reports it as a :class:`~rag.types.SkippedFile` and
goes on with the rest.

``doc_id`` is a slug of the path under the corpus root (stable when the content changes);
``metadata.json`` in a file's folder or in the corpus root may give ``title``, ``date``,
``source`` (URL) and ``publisher`` per file name.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from rag.errors import IngestError
from rag.files import GLOSSARY_FILE, METADATA_FILE, corpus_files
from rag.ingest.clean import CleanResult, clean_document
from rag.types import Document, Paragraph, SkippedFile

MAX_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED = 256 * 1024 * 1024  # what a .docx may unpack to: past this it is a zip bomb, not a document
MAX_ZIP_ENTRIES = 10_000
TEXT_TYPES = {".txt", ".text", ".md", ".markdown", ".html", ".htm"}
SUPPORTED = sorted(TEXT_TYPES | {".pdf", ".docx", ".jsonl"})
TITLE_MAX = 120

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
_UNSAFE_ID = re.compile(r"[#/?\s]|\.\.")


# --- ids -----------------------------------------------------------------------------------------


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _slug(part: str) -> tuple[str, bool]:
    """(ASCII slug of one path part, whether letters/digits were lost on the way)."""
    ascii_part = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode().lower()
    lost = any(c.isalnum() and not c.isascii() for c in unicodedata.normalize("NFKD", part)
               if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9._-]+", "-", ascii_part)
    slug = re.sub(r"\.{2,}", ".", slug)
    slug = re.sub(r"-{2,}", "-", slug).strip("-.")
    return slug, lost


def doc_id_for(rel_path: str | PurePosixPath) -> str:
    """Stable id from a path under the corpus root: ``a/B c.txt`` -> ``a--b-c``.

    Lowercase ASCII ``[a-z0-9._-]``, folders joined by ``--``; a name whose letters are not all
    ASCII (a Chinese file name) gets a short hash of the path so that it stays unique.
    """
    rel = PurePosixPath(str(rel_path).replace("\\", "/"))
    parts = [*rel.parts[:-1], rel.stem if rel.suffix else rel.name]
    slugs, lost = [], False
    for part in parts:
        if part in ("", ".", "/"):
            continue
        s, part_lost = _slug(part)
        lost = lost or part_lost or not s
        if s:
            slugs.append(s)
    base = "--".join(slugs) or "doc"
    return f"{base}-{_short_hash(rel.as_posix())}" if lost else base


def _jsonl_doc_id(pid: str) -> str:
    if pid and not _UNSAFE_ID.search(pid) and pid not in (".", ".."):
        return pid
    return f"{doc_id_for(pid) if pid else 'doc'}-{_short_hash(pid)}"


# --- decoding ------------------------------------------------------------------------------------

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def decode_text(data: bytes, name: str = "<bytes>") -> tuple[str, str]:
    """(text, encoding) of a text file: BOM, then strict UTF-8, then charset detection.

    Raises :class:`IngestError` for binary data or bytes no encoding explains.
    """
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as exc:
                raise IngestError(f"{name}: undecodable ({enc} byte order mark, {exc.reason})") from exc
    if b"\x00" in data[:8192]:
        raise IngestError(f"{name}: binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or not best.encoding:
        raise IngestError(f"{name}: undecodable: not UTF-8 and no other encoding fits")
    text = str(best)
    odd = sum(1 for c in text if _CONTROL.match(c) and c not in "\t\n\r")
    if odd > max(8, len(text) // 20):
        raise IngestError(f"{name}: binary file, not text")
    return text, best.encoding


# --- format readers: bytes -> (text, cleaning mode, title hint) ---------------------------------


def _read_txt(data: bytes, name: str) -> tuple[str, str, str | None]:
    return decode_text(data, name)[0], "plain", None


def _read_md(data: bytes, name: str) -> tuple[str, str, str | None]:
    return decode_text(data, name)[0], "markdown", None


_DROP_TAGS = ("script", "style", "noscript", "nav", "footer", "aside", "form", "iframe", "svg",
              "template", "head")
_BLOCK_TAGS = ("p", "div", "section", "article", "main", "header", "blockquote", "pre", "table",
               "tr", "ul", "ol", "dl", "dd", "dt", "figure", "figcaption", "caption", "address")


def _read_html(data: bytes, name: str) -> tuple[str, str, str | None]:
    from bs4 import BeautifulSoup

    text = decode_text(data, name)[0]
    soup = BeautifulSoup(text, "lxml")
    title = None
    if soup.title and soup.title.get_text(strip=True):
        title = soup.title.get_text(" ", strip=True)
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):  # scraped pages separate paragraphs with <br>
        br.replace_with("\n\n")
    for h in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        if title is None:
            title = h.get_text(" ", strip=True) or None
        h.insert_before("\n\n# ")
        h.insert_after("\n\n")
    for li in soup.find_all("li"):
        li.insert_before("\n\n- ")
        li.insert_after("\n\n")
    for tag in soup.find_all(_BLOCK_TAGS + ("td", "th")):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    # Source newlines inside a block are not line breaks in HTML; markdown mode rejoins them.
    return soup.get_text(), "markdown", title


def _read_pdf(data: bytes, name: str) -> tuple[str, str, str | None]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{name}: encrypted PDF (no empty password); decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or None
    except IngestError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise IngestError(f"{name}: corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise IngestError(f"{name}: PDF has no extractable text (scanned images? run OCR first)")
    title = str(meta_title).strip() if meta_title else ""
    return text, "wrapped", title if title.lower() not in ("", "untitled", "anonymous") else None


def check_docx_archive(data: bytes, name: str) -> None:
    """Refuse a .docx that is not a zip, or that would unpack past :data:`MAX_UNZIPPED` (a zip
    bomb): the sizes are read from the zip's directory, before anything is decompressed."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise IngestError(f"{name}: corrupt or unreadable DOCX (not a zip archive: {exc})") from exc
    if len(infos) > MAX_ZIP_ENTRIES:
        raise IngestError(f"{name}: DOCX holds {len(infos)} files (> {MAX_ZIP_ENTRIES}): not a document")
    unpacked = sum(max(i.file_size, 0) for i in infos)
    if unpacked > MAX_UNZIPPED:
        raise IngestError(f"{name}: DOCX would unpack to {unpacked / 2**20:.0f} MB "
                          f"(> {MAX_UNZIPPED // 2**20} MB): refused as a zip bomb")


def _read_docx(data: bytes, name: str) -> tuple[str, str, str | None]:
    check_docx_archive(data, name)
    try:
        import docx

        d = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for p in d.paragraphs:
            style = (p.style.name if p.style is not None else "") or ""
            text = p.text.strip()
            if not text:
                continue
            if style.startswith(("Heading", "Title")):
                blocks.append("# " + text)
            elif style.startswith("List"):
                blocks.append("- " + text)
            else:
                blocks.append(text)
        for table in d.tables:
            for row in table.rows:
                cells = [c.text.strip() for c in row.cells if c.text.strip()]
                if cells:
                    blocks.append(" | ".join(dict.fromkeys(cells)))
        title = (d.core_properties.title or "").strip() or None
    except Exception as exc:  # zipfile/lxml/docx errors for damaged files
        raise IngestError(f"{name}: corrupt or unreadable DOCX ({type(exc).__name__}: {exc})") from exc
    return "\n\n".join(blocks), "markdown", title


_READERS: dict[str, Callable[[bytes, str], tuple[str, str, str | None]]] = {
    ".txt": _read_txt,
    ".text": _read_txt,
    ".md": _read_md,
    ".markdown": _read_md,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
}


# --- loading -------------------------------------------------------------------------------------


def _rel(path: Path, root: Path | None) -> PurePosixPath:
    if root is not None:
        try:
            return PurePosixPath(path.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            pass
    return PurePosixPath(path.name)


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if size > MAX_BYTES:
        raise IngestError(f"{name}: too large ({size / 2**20:.1f} MB > {MAX_BYTES // 2**20} MB); split it")
    if size == 0:
        raise IngestError(f"{name}: empty file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{name}: cannot read ({exc.strerror or exc})") from exc


def _title(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text[:TITLE_MAX].rstrip() or None


def load_file(
    path: Path,
    root: Path | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    skipped: list[SkippedFile] | None = None,
) -> list[Document]:
    """The documents of one file (one, or one per line of a ``.jsonl``).

    ``root`` is the corpus root the ``doc_id`` is relative to (default: the file's folder);
    ``metadata`` the file's entry of ``metadata.json``. Bad ``.jsonl`` lines are appended to
    ``skipped`` (as ``path:line``). Raises :class:`IngestError` when the file cannot be used.
    """
    path = Path(path)
    rel = _rel(path, root)
    name = rel.as_posix()
    meta = dict(metadata or {})
    ext = path.suffix.lower()
    if ext == ".jsonl":
        return _load_jsonl(path, rel, meta, skipped)
    reader = _READERS.get(ext)
    if reader is None:
        raise IngestError(f"{name}: unsupported file type {ext or '(none)'!r}; supported: {', '.join(SUPPORTED)}")
    data = _read_bytes(path, name)
    text, mode, title_hint = reader(data, name)
    result: CleanResult = clean_document(text, mode=mode)
    if not result.paragraphs:
        raise IngestError(f"{name}: no text left after cleaning")
    doc_id = doc_id_for(rel)
    paragraphs = tuple(
        Paragraph(para_id=f"{doc_id}#p{n}", doc_id=doc_id, n=n, text=p.text, heading=p.heading)
        for n, p in enumerate(result.paragraphs, start=1)
    )
    title = _title(meta.get("title")) or _title(title_hint) or _title(result.title) or path.stem
    return [
        Document(
            doc_id=doc_id,
            title=title,
            source=str(meta.get("source") or name),
            sha256=hashlib.sha256(data).hexdigest(),
            paragraphs=paragraphs,
            date=meta.get("date") or None,
            path=name,
            removed=result.removed,
            flags=result.flags,
        )
    ]


def _load_jsonl(path: Path, rel: PurePosixPath, meta: dict[str, Any],
                skipped: list[SkippedFile] | None) -> list[Document]:
    name = rel.as_posix()
    data = _read_bytes(path, name)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    docs: list[Document] = []
    bad: list[SkippedFile] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            bad.append(SkippedFile(where, f"not a JSON line ({exc})"))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("id"), str | int) or not isinstance(row.get("text"), str):
            bad.append(SkippedFile(where, 'expected an object with "id" and "text" strings'))
            continue
        pid = str(row["id"]).strip()
        text = _CONTROL.sub("", row["text"]).strip()
        if not pid or not text:
            bad.append(SkippedFile(where, "empty id or text"))
            continue
        if pid in seen:
            bad.append(SkippedFile(where, f"duplicate id {pid!r}"))
            continue
        seen.add(pid)
        doc_id = _jsonl_doc_id(pid)
        title = row.get("title")
        docs.append(Document(
            doc_id=doc_id,
            title=_title(title if isinstance(title, str) else None) or pid,
            source=str(meta.get("source") or name),
            sha256=hashlib.sha256(raw).hexdigest(),
            paragraphs=(Paragraph(para_id=pid, doc_id=doc_id, n=1, text=text),),
            date=meta.get("date") or None,
            path=name,
        ))
    if skipped is not None:
        skipped.extend(bad)
    if not docs:
        reason = f"no usable lines ({len(bad)} bad)" if bad else "empty file"
        raise IngestError(f"{name}: {reason}")
    return docs


def _read_metadata(folder: Path, cache: dict[Path, dict[str, Any]],
                   skipped: list[SkippedFile]) -> dict[str, Any]:
    if folder in cache:
        return cache[folder]
    data: dict[str, Any] = {}
    f = folder / METADATA_FILE
    if f.is_file():
        try:
            loaded = json.loads(f.read_text(encoding="utf-8-sig"))
            if not isinstance(loaded, dict):
                raise ValueError("top level must be an object keyed by file name")
            data = {str(k): v for k, v in loaded.items() if isinstance(v, dict)}
        except (OSError, ValueError) as exc:
            skipped.append(SkippedFile(str(f), f"metadata ignored: {exc}"))
    cache[folder] = data
    return data


def load_corpus(
    paths: Sequence[Path],
    *,
    reuse: Callable[[Path, PurePosixPath], list[Document] | None] | None = None,
    origins: list[str] | None = None,
) -> tuple[list[Document], list[SkippedFile]]:
    """Documents of files and folders (recursive, sorted); failures come back as skipped.

    Hidden files/folders (``.x``) and ``metadata.json`` are not documents. Never raises
    for a bad file. ``reuse(file, rel)`` may return a file's documents as an earlier load made
    them (an unchanged file is then neither read nor cleaned); ``origins``, when given, is
    filled with the resolved path of each returned document's file.
    """
    docs: list[Document] = []
    came_from: list[str] = []
    skipped: list[SkippedFile] = []
    meta_cache: dict[Path, dict[str, Any]] = {}
    for given in paths:
        given = Path(given)
        if given.is_dir():
            root, files = given, corpus_files(given)
        elif given.is_file():
            root, files = given.parent, [given]
        else:
            skipped.append(SkippedFile(str(given), "does not exist"))
            continue
        for f in files:
            rel = _rel(f, root)
            if f.name in (METADATA_FILE, GLOSSARY_FILE):
                continue
            meta = dict(_read_metadata(root, meta_cache, skipped).get(rel.as_posix(), {}))
            meta.update(_read_metadata(f.parent, meta_cache, skipped).get(f.name, {}))
            try:
                known = reuse(f, rel) if reuse is not None else None
                got = known if known is not None else load_file(f, root, meta, skipped=skipped)
                docs.extend(got)
                came_from.extend([str(f.resolve())] * len(got))
            except IngestError as exc:
                skipped.append(SkippedFile(rel.as_posix() if given.is_dir() else str(f), _reason(exc, rel)))
            except Exception as exc:  # a loader bug must not stop the corpus: report it
                skipped.append(SkippedFile(str(f), f"unexpected {type(exc).__name__}: {exc}"))
    out, kept = _unique_ids(docs, skipped)
    if origins is not None:
        origins[:] = [came_from[i] for i in kept]
    return out, skipped


def _reason(exc: IngestError, rel: PurePosixPath) -> str:
    msg = str(exc)
    prefix = f"{rel.as_posix()}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def _unique_ids(docs: list[Document], skipped: list[SkippedFile]) -> tuple[list[Document], list[int]]:
    """Two files whose names slug alike get the path hash; a repeated ``.jsonl`` id is skipped.

    Returns the documents and the position in ``docs`` of each."""
    out: list[Document] = []
    kept: list[int] = []
    seen: set[str] = set()
    for i, d in enumerate(docs):
        if d.doc_id in seen:
            if (d.path or "").endswith(".jsonl"):  # its id is a para_id that gold sets refer to
                skipped.append(SkippedFile(d.path or d.doc_id, f"duplicate id {d.doc_id!r}"))
                continue
            new_id = f"{d.doc_id}-{_short_hash(d.path or d.doc_id)}"
            paras = tuple(Paragraph(f"{new_id}#p{p.n}", new_id, p.n, p.text, p.heading) for p in d.paragraphs)
            d = Document(new_id, d.title, d.source, d.sha256, paras, d.date, d.path, d.removed, d.flags)
        seen.add(d.doc_id)
        out.append(d)
        kept.append(i)
    return out, kept
