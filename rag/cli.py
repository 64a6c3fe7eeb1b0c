"""The `rag` command: index, verify, search, ask, serve, eval. Domain errors become one clean line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from rag.errors import RagError


def _settings(index: str | None):
    from rag.config import get_settings

    settings = get_settings()
    if index:
        settings = settings.model_copy(update={"index_dir": Path(index)})
    return settings


def _fail(exc: BaseException) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def settings_error(exc: ValidationError) -> str:
    """One line naming each bad ``RAG_*`` setting, its value and what it must be."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "?"
        value = err.get("input")
        shown = f"={value!r}" if isinstance(value, (str, int, float)) else ""
        parts.append(f"RAG_{field.upper()}{shown}: {err['msg']}")
    return "invalid setting " + "; ".join(parts) + " (fix the environment or .env)"


class _Group(click.Group):
    """Turns every RagError (and a Ctrl-C) into a one-line message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:  # a bad RAG_* value in the environment or .env
            _fail(settings_error(exc))
        except RagError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            _fail(exc)


index_option = click.option(
    "--index",
    "index",
    envvar="RAG_INDEX_DIR",
    default=None,
    metavar="DIR",
    help="Index folder (default: index/, or RAG_INDEX_DIR).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rag-bilingual")
def main() -> None:
    """Bilingual (繁體 / 简体 / English) question answering that cites its source paragraphs."""


@main.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_option
@click.option("--report", is_flag=True, help="Also print what cleaning removed or flagged, per document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--full", is_flag=True, help="Redo every document (vectors still come from the embedding cache).")
def index_cmd(paths: tuple[Path, ...], index: str | None, report: bool, quiet: bool, full: bool) -> None:
    """Build or update the index from files/folders (default: corpus/). Incremental and atomic.

    Unchanged corpus (every file's size, mtime and sha256) and settings: says so and does
    nothing. Otherwise only new and changed files are read and only new and changed documents
    are cleaned, chunked and embedded; a changed model, precision, chunking or normaliser
    setting rebuilds everything.
    """
    settings = _settings(index)
    targets = list(paths) or [settings.corpus_dir]
    fresh = None
    if not full:
        from rag.freshness import up_to_date  # standard library only: no model, numpy or FAISS

        fresh = up_to_date(targets, settings.index_dir, settings)
    if fresh is not None:
        for line in fresh.lines():
            click.echo(line)
    else:
        from rag.indexer import build_index

        summary = build_index(targets, settings.index_dir, settings, progress=not quiet and sys.stderr.isatty(),
                              full=full)
        for line in summary.lines():
            click.echo(line)
    if report:
        from rag.index import LoadedIndex

        loaded = LoadedIndex.open(settings.index_dir, verify=False)
        for doc in sorted(loaded.documents.values(), key=lambda d: d.doc_id):
            click.echo(f"\n== {doc.doc_id} ({len(doc.paragraph_ids)} paragraphs) {doc.title}")
            for flag in doc.flags:
                click.echo(f"  FLAG {flag}")
            for r in doc.removed:
                where = f"line {r.line}: " if r.line else ""
                click.echo(f"  removed [{r.kind}] {where}{r.text!r}")


@main.command("verify")
@index_option
def verify_cmd(index: str | None) -> None:
    """Hash every index file against the manifest and check the tables line up.

    Opening an index skips hashing files unchanged since they were last hashed (same size,
    times, inode); this reads everything, e.g. after a disk error. Exit 0 when all is well.
    """
    import time

    from rag.index import LoadedIndex

    settings = _settings(index)
    t0 = time.perf_counter()
    loaded = LoadedIndex.open(settings.index_dir, verify="full", settings=settings)
    v = loaded.verified
    click.echo(
        f"ok: {settings.index_dir} ({loaded.manifest['data']}): {v['hashed_files']} files, "
        f"{v['hashed_bytes'] / 1e6:.1f} MB hashed, all match the manifest; {len(loaded.paragraphs)} paragraphs, "
        f"{len(loaded.chunk_ids)} chunks ({time.perf_counter() - t0:.1f} s)"
    )


def _service(index: str | None):
    from rag.service import RagService

    settings = _settings(index)
    return RagService.open(settings.index_dir, settings)


def _read_text(text: str) -> str:
    """`-` reads the question from standard input."""
    return sys.stdin.read() if text == "-" else text


def _checked(text: str, k: int, index: str | None, *, field: str) -> str:
    """The question read and validated (with ``k``) before the index and model are loaded."""
    from rag.service import check_k, clean_question

    clean_question(text, _settings(index), field=field)
    check_k(k)
    return text


@main.command("search")
@click.argument("query")
@click.option("-k", "k", default=10, show_default=True, help="Number of paragraphs.")
@click.option("--json", "as_json", is_flag=True, help="Print the body of POST /api/search.")
@click.option("--script", type=click.Choice(["original", "hant", "hans", "hk", "tw"]), default="original")
@index_option
def search_cmd(query: str, k: int, as_json: bool, script: str, index: str | None) -> None:
    """Rank paragraphs for QUERY (`-` reads standard input)."""
    from rag.answer import search_body

    query = _checked(_read_text(query), k, index, field="query")
    svc = _service(index)
    hits = svc.search(query, k)
    body = search_body(query, hits, script=script)
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("no paragraphs found")
    for c in body["hits"]:
        click.echo(f"[{c['n']}] {c['score']:.3f}  {c['para_id']}  {c['title']}")
        click.echo(f"    {c['text'][:200]}")


@main.command("ask")
@click.argument("question")
@click.option("-k", "k", default=5, show_default=True, help="Paragraphs to consider.")
@click.option("--json", "as_json", is_flag=True, help="Print the body of POST /api/ask.")
@click.option("--script", type=click.Choice(["original", "hant", "hans", "hk", "tw"]), default="original",
              help="Script of the shown answer and paragraphs.")
@index_option
def ask_cmd(question: str, k: int, as_json: bool, script: str, index: str | None) -> None:
    """Answer QUESTION with cited source paragraphs (`-` reads standard input)."""
    question = _checked(_read_text(question), k, index, field="question")
    svc = _service(index)
    answer = svc.ask(question, k, script=script)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(answer.answer)
    for c in answer.citations:
        click.echo(f"\n[{c.n}] {c.title} ({c.date or 'n.d.'}) {c.source}  {c.para_id}")
        click.echo(f"    {c.text}")


@main.command("serve")
@click.option("--host", default=None, help="Bind address (default 127.0.0.1, RAG_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 7860, RAG_PORT).")
@index_option
def serve_cmd(host: str | None, port: int | None, index: str | None) -> None:
    """Serve the HTTP API and the chat UI."""
    settings = _settings(index)
    host = host or settings.host
    port = port or settings.port
    os.environ["RAG_INDEX_DIR"] = str(settings.index_dir)
    from rag.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    from rag.api.state import ServiceHolder

    # Index and model load in the app's lifespan, after FastAPI, uvicorn and Gradio have
    # imported: starting the load before those imports (to overlap them) was measured slower to
    # /readyz (benchmarks/README.md, "Start-up"): both need the GIL, and the imports, many small
    # file reads, queue behind the loader.
    holder = ServiceHolder(settings)
    import uvicorn

    from rag.api.app import create_app

    app = create_app(settings, holder=holder)
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host
    click.echo(f"serving the chat UI at http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command("eval")
@click.argument("gold", nargs=-1, type=click.Path(path_type=Path))
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=Path("reports/eval"),
              show_default=True, help="Folder for results.json, report.md and the plot.")
@click.option("--sets", default=None, help="Comma-separated: gold, drcd/dev, cmrc2018/dev, xquad/zh-dev, xquad/en-zh-dev, ...")
@click.option("--max-queries", type=int, default=None, help="Sample at most N queries per external set (fixed seed).")
@click.option("--baseline", type=click.Path(path_type=Path), default=Path("evals/baseline/results.json"), show_default=True)
@click.option("--thresholds", type=click.Path(path_type=Path), default=None)
@index_option
def eval_cmd(gold: tuple[Path, ...], report_dir: Path, sets: str | None, max_queries: int | None,
             baseline: Path, thresholds: Path | None, index: str | None) -> None:
    """Run the gold set (and external sets) through the answer path; non-zero exit below thresholds."""
    from rag.evaluation.runner import run_eval

    settings = _settings(index)
    result = run_eval(
        list(gold) or [Path("evals/gold.jsonl")],
        index_dir=settings.index_dir,
        report_dir=report_dir,
        sets=[s.strip() for s in sets.split(",")] if sets else None,
        max_queries=max_queries,
        baseline=baseline if baseline and baseline.exists() else None,
        thresholds=thresholds,
        settings=settings,
    )
    for line in result.summary_lines():
        click.echo(line)
    sys.exit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
