"""The `rag` command: index, verify, search, ask, brief, serve, mcp, eval. Domain errors become one clean line."""

from __future__ import annotations

import json
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from rag.errors import InputError, NotFoundError, RagError

if TYPE_CHECKING:  # imported where used: `rag --help` stays quick
    from rag.config import Settings
    from rag.service import RagService


def _settings(index: str | None) -> Settings:
    from rag.config import get_settings

    settings = get_settings()
    if index:
        settings = settings.model_copy(update={"index_dir": Path(index)})
    return settings


def _fail(exc: BaseException | str) -> None:
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
    from rag.config import get_settings

    if get_settings().llm != "off":
        # Before any OpenMP runtime starts (torch's, which llama.cpp shares): threads that sleep
        # between parallel regions instead of spinning. With spinning, two cores and any other
        # busy thread, the language model ran 5-10x slower.
        os.environ.setdefault("OMP_WAIT_POLICY", "passive")


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
        from rag.index.freshness import (
            up_to_date,  # standard library only: no model, numpy or FAISS
        )

        fresh = up_to_date(targets, settings.index_dir, settings)
    if fresh is not None:
        for line in fresh.lines():
            click.echo(line)
    else:
        from rag.index.build import build_index

        summary = build_index(targets, settings.index_dir, settings, progress=not quiet and sys.stderr.isatty(),
                              full=full)
        for line in summary.lines():
            click.echo(line)
    if report:
        from rag.index.loaded import LoadedIndex

        loaded = LoadedIndex.open(settings.index_dir, verify="off")
        for doc in sorted(loaded.documents.values(), key=lambda d: d.doc_id):
            click.echo(f"\n== {doc.doc_id} ({len(doc.paragraph_ids)} paragraphs) {doc.title}")
            for flag in doc.flags:
                click.echo(f"  FLAG {flag}")
            for r in doc.removed:
                where = f"line {r.line}: " if r.line else ""
                click.echo(f"  removed [{r.kind}] {where}{r.text!r}")
        if loaded.gloss is not None:
            from rag.index.gloss import report_lines

            click.echo("")
            for line in report_lines(loaded.gloss):
                click.echo(line)


@main.command("verify")
@index_option
def verify_cmd(index: str | None) -> None:
    """Hash every index file against the manifest and check the tables line up.

    Opening an index skips hashing files unchanged since they were last hashed (same size,
    times, inode); this reads everything, e.g. after a disk error. Exit 0 when all is well.
    """
    import time

    from rag.index.loaded import LoadedIndex

    settings = _settings(index)
    t0 = time.perf_counter()
    loaded = LoadedIndex.open(settings.index_dir, verify="full", settings=settings)
    v = loaded.verified
    click.echo(
        f"ok: {settings.index_dir} ({loaded.manifest['data']}): {v['hashed_files']} files, "
        f"{v['hashed_bytes'] / 1e6:.1f} MB hashed, all match the manifest; {len(loaded.paragraphs)} paragraphs, "
        f"{len(loaded.chunk_ids)} chunks ({time.perf_counter() - t0:.1f} s)"
    )


def _service(index: str | None) -> RagService:
    """The service of a command that asks questions; the command owns the process's threads."""
    from rag.service import RagService
    from rag.threads import limit_process

    settings = _settings(index)
    limit_process()  # the service applies it to every thread that asks
    svc = RagService.open(settings.index_dir, settings, lean_fallback=True, kv_store=True)
    if svc.llm_error is not None:  # RAG_LLM=local, but the model could not be had: one line, then lean
        click.echo(f"warning: the language model is off, answering in the lean mode: {svc.llm_error}", err=True)
    return svc


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
    from rag.answer.display import search_body

    query = _checked(_read_text(query), k, index, field="query")
    svc = _service(index)
    question = svc.question(query, field="query")
    hits = svc.search(question, k)
    body = search_body(question, hits, script=script)
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
    """Answer QUESTION with cited source paragraphs (`-` reads standard input).

    With a language model writing the answer, its sentences are printed as they are written
    and checked."""
    question = _checked(_read_text(question), k, index, field="question")
    svc = _service(index)
    from rag.answer.steps import Final, Piece
    from rag.types import Answer

    answer: Answer | None = None
    streamed = ""
    for step in svc.ask_steps(question, k, script=script):
        match step:
            case Piece(text) if not as_json:  # a language model writes: each sentence once checked
                click.echo(text, nl=False)
                streamed += text
            case Final(answer):
                pass
    assert answer is not None
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if streamed and answer.mode == "generated":
        click.echo()
    else:
        click.echo(("\n" if streamed else "") + answer.answer)
    if answer.abstained and answer.abstain_reason:
        click.echo(f"(no source cited: {answer.abstain_reason})")
    for w in answer.warnings:
        click.echo(f"warning: {w.text}", err=True)
    for c in answer.citations:
        judged = f"  judge P(yes) {c.judge:.2f}" if c.judge is not None else ""
        click.echo(f"\n[{c.n}] {c.title} ({c.date or 'n.d.'}) {c.source}  {c.para_id}{judged}")
        click.echo(f"    {c.text}")


@main.command("brief")
@click.argument("questions", type=click.Path(path_type=Path, allow_dash=True))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("briefing.docx"), show_default=True,
              help="The file to write; its suffix (.docx or .md) sets the format.")
@click.option("--script", type=click.Choice(["original", "hant", "hans", "hk", "tw"]), default="original",
              help="Script of the answers and paragraphs.")
@click.option("-k", "k", default=5, show_default=True, help="Paragraphs to consider per question.")
@click.option("--title", default=None, help="Document title (default 簡報 Briefing).")
@index_option
def brief_cmd(questions: Path, output: Path, script: str, k: int, title: str | None, index: str | None) -> None:
    """Ask each question of QUESTIONS (one a line, `#` comments; `-` reads standard input) and
    write a briefing: each question, its answer and numbered references."""
    from dataclasses import replace

    from rag import briefing
    from rag.service import check_k, clean_question

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in briefing.FORMATS:
        raise click.UsageError(f"-o must end in .docx or .md, got {output.name!r}")
    text = sys.stdin.read() if str(questions) == "-" else questions.read_text(encoding="utf-8")
    asked = briefing.read_questions(text.splitlines())
    if not asked:
        raise click.UsageError(f"{questions} has no questions (one a line; blank lines and # comments are skipped)")
    settings = _settings(index)
    for i, q in enumerate(asked, 1):
        clean_question(q, settings, field=f"question {i}")
    check_k(k)
    doc = briefing.from_questions(_service(index), asked, script=script, k=k)
    if title:
        doc = replace(doc, title=title)
    output.write_bytes(briefing.render(doc, fmt))
    refs = sum(len(item.references) for item in doc.items)
    unanswered = sum(1 for item in doc.items if item.abstained)
    click.echo(f"wrote {output}: {len(doc.items)} questions, {refs} references"
               + (f", {unanswered} without a source" if unanswered else ""))


@main.command("mcp")
@index_option
def mcp_cmd(index: str | None) -> None:
    """Serve the corpus as an MCP server over stdio (tools: search, ask, get_paragraph, list_documents, list_collections).

    Point an MCP client at `rag mcp --index DIR`; the index and model load before it answers."""
    import logging

    from rag.mcp_server import build_server

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the protocol
    svc = _service(index)

    def one(collection: str | None) -> Any:
        if collection not in (None, "default"):
            raise NotFoundError(f"`rag mcp` serves one index (--index): no collection {collection!r}")
        return svc

    def listed() -> list[dict[str, Any]]:
        return [{"name": "default", "ready": True, "documents": len(svc.index.documents),
                 "paragraphs": len(svc.index.paragraphs)}]

    build_server(one, listed).run("stdio")


@main.command("serve")
@click.option("--host", default=None, help="Bind address (default 127.0.0.1, RAG_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 7860, RAG_PORT).")
@index_option
def serve_cmd(host: str | None, port: int | None, index: str | None) -> None:
    """Serve the HTTP API and the chat UI."""
    settings = _settings(index)
    host = host or settings.host
    port = port or settings.port
    from rag.api.state import ServiceHolder
    from rag.threads import limit_process

    limit_process()  # the service applies it to each request thread

    # Index and model load in the app's lifespan, after FastAPI, uvicorn and Gradio have
    # imported: starting the load before those imports (to overlap them) was measured slower to
    # /readyz (benchmarks/README.md, "Start-up"): both need the GIL, and the imports, many small
    # file reads, queue behind the loader.
    settings = settings.model_copy(update={"host": host})  # what the app checks (MCP, uploads) is the bind
    holder = ServiceHolder(settings)
    import uvicorn

    from rag.api.app import create_app

    app = create_app(settings, holder=holder)
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1") else host
    click.echo(f"serving the chat UI at http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


class EvalExit(IntEnum):
    """The exit codes of ``rag eval`` (stable: CI scripts branch on them)."""

    PASSED = 0  # the gate passed (or --update-baseline wrote the baseline)
    GATE_FAILED = 1  # a threshold rule failed, a metric dropped significantly, or (CI) a set or the baseline is missing
    BAD_INPUT = 2  # a bad option or argument, an unreadable gold set, thresholds or baseline file, a bad RAG_* setting
    BASELINE_REFUSED = 3  # --update-baseline refused: a sampled or partial run, or a threshold rule fails
    COULD_NOT_RUN = 4  # no index or corpus, a model or index that does not load, a file that cannot be written
    INTERRUPTED = 130  # Ctrl-C


@main.command("eval", epilog="""\b
Exit codes:
  0    the gate passed (with --update-baseline: the baseline was written)
  1    the gate failed: a threshold rule, a significant drop against the
       baseline, or under CI (CI=true) a set not run or no baseline
  2    bad input: an option or argument, the gold set, the thresholds or
       baseline file, a RAG_* setting
  3    --update-baseline refused (sampled or partial run, a rule fails)
  4    could not run: no index or corpus, a model or index that does not
       load, a report file that cannot be written
  130  interrupted""")
@click.argument("gold", nargs=-1, type=click.Path(path_type=Path))
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=Path("reports/eval"),
              show_default=True, help="Folder for results.json, report.md and the plot.")
@click.option("--sets", default=None,
              help="Comma-separated sets to run instead of the default ones (gold, drcd/dev, cmrc2018/dev, "
                   "xquad/zh-dev, xquad/en-zh-dev), or 'all' for every external set.")
@click.option("--max-queries", type=int, default=None, help="Sample at most N queries per external set (fixed seed).")
@click.option("--gold-sample", type=int, default=None,
              help="Run a fixed-seed sample of about N gold questions, the same share of each language "
                   "(CI's RAG_LLM=local run).")
@click.option("--answers", "answers", is_flag=True,
              help="Also score the answers on each external set: a fixed-seed sample asked through the answer "
                   "path (answer in text, by value too, CMRC 2018 EM/F1, answer in citations) and asked again "
                   "against an index without its gold paragraphs (near-miss abstention). Measured, not gated.")
@click.option("--answer-sample", type=int, default=None, metavar="N",
              help="Questions per external set for --answers (fixed seed; implies --answers) [default: 100].")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Stored run to compare with, question by question [default: evals/baseline/results.json "
                   "of the project].")
@click.option("--thresholds", type=click.Path(path_type=Path), default=None,
              help="Threshold rules [default: evals/thresholds.toml of the project].")
@click.option("--junit", "junit", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Also write the verdict as JUnit XML: a test case per gated metric (per set and group) and "
                   "per threshold rule; skipped sets as skipped cases.")
@click.option("--summary", "summary", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="FILE",
              help="Also write a Markdown summary (verdict, metrics and their change, failures, worsened "
                   "questions) [default: appended to $GITHUB_STEP_SUMMARY when that is set].")
@click.option("--update-baseline", is_flag=True,
              help="Write this run as the new baseline (commit it with the change). Refused for sampled or "
                   "partial runs and when a threshold fails; regressions against the old baseline are "
                   "accepted, and listed.")
@index_option
def eval_cmd(gold: tuple[Path, ...], report_dir: Path, sets: str | None, max_queries: int | None,
             gold_sample: int | None, baseline: Path | None, thresholds: Path | None, junit: Path | None,
             summary: Path | None, update_baseline: bool, answers: bool, answer_sample: int | None,
             index: str | None) -> None:
    """Run the gold set and the external dev sets through the answer path and gate the result.

    Exits 1 when a threshold rule fails or a metric dropped significantly against the baseline.
    Under CI (CI=true) a skipped set or a missing baseline also fails. --junit and --summary
    write what CI shows (a test report, a job summary); when the run cannot complete they say why.
    """
    if answers and answer_sample is None:
        from rag.evaluation.answers import DEFAULT_ANSWER_SAMPLE

        answer_sample = DEFAULT_ANSWER_SAMPLE
    summary_path, append = summary, False
    if summary_path is None and os.environ.get("GITHUB_STEP_SUMMARY"):
        summary_path, append = Path(os.environ["GITHUB_STEP_SUMMARY"]), True
    try:
        code = _eval(gold, report_dir, sets, max_queries, gold_sample, baseline, thresholds, junit,
                     (summary_path, append), update_baseline, index, answer_sample)
    except (ValidationError, InputError, NotFoundError) as exc:
        code = _eval_failed(settings_error(exc) if isinstance(exc, ValidationError) else str(exc),
                            EvalExit.BAD_INPUT, junit, (summary_path, append))
    except (RagError, OSError) as exc:
        code = _eval_failed(str(exc), EvalExit.COULD_NOT_RUN, junit, (summary_path, append))
    sys.exit(int(code))


def _eval_failed(message: str, code: EvalExit, junit: Path | None, summary: tuple[Path | None, bool]) -> EvalExit:
    """Say why the run could not complete, on standard error and in the CI files asked for."""
    from rag.evaluation import ci

    click.echo(f"error: {message}", err=True)
    try:
        if junit is not None:
            ci.write_junit(junit, ci.junit_error(message))
        if summary[0] is not None:
            ci.write_summary(summary[0], ci.summary_error(message), append=summary[1])
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
    return code


def _eval(gold: tuple[Path, ...], report_dir: Path, sets: str | None, max_queries: int | None,
          gold_sample: int | None, baseline: Path | None, thresholds: Path | None, junit: Path | None,
          summary: tuple[Path | None, bool], update_baseline: bool, index: str | None,
          answer_sample: int | None = None) -> EvalExit:
    from rag.evaluation import ci
    from rag.evaluation.report import write_baseline
    from rag.evaluation.runner import default_baseline, default_sets, eval_mode, in_ci, run_eval
    from rag.threads import limit_process

    settings = _settings(index)
    limit_process()  # questions run on this thread
    baseline = baseline or default_baseline(eval_mode(settings))
    chosen = [s.strip() for s in sets.split(",")] if sets else None
    result = run_eval(
        list(gold) or None,
        index_dir=settings.index_dir,
        report_dir=report_dir,
        sets=chosen,
        max_queries=max_queries,
        gold_sample=gold_sample,
        baseline=baseline,
        thresholds=thresholds,
        settings=settings,
        strict=in_ci(),
        answer_sample=answer_sample,
    )
    for line in result.summary_lines():
        click.echo(line)
    if junit is not None:
        ci.write_junit(junit, ci.junit_xml(result))
        click.echo(f"JUnit report: {junit}")
    if summary[0] is not None:
        ci.write_summary(summary[0], ci.render_summary(result), append=summary[1])
    if not update_baseline:
        return EvalExit.PASSED if result.passed else EvalExit.GATE_FAILED
    res = result.results
    ran = set(res["sets"])
    problems = []
    if max_queries is not None:
        problems.append("it sampled the external sets (--max-queries)")
    if gold_sample is not None:
        problems.append("it sampled the gold set (--gold-sample)")
    if res["skipped"]:
        problems.append(f"sets were skipped: {', '.join(res['skipped'])}")
    wanted = default_sets(eval_mode(settings))
    if not set(wanted) <= ran:
        problems.append(f"it did not run every default set ({', '.join(s for s in wanted if s not in ran)})")
    if result.rule_failures:
        problems.append(f"{len(result.rule_failures)} threshold rule(s) fail")
    if problems:
        click.echo(f"error: baseline not updated: {'; '.join(problems)}", err=True)
        return EvalExit.BASELINE_REFUSED
    write_baseline(result, baseline)
    regressions = [c for c in result.changes if c.regressed]
    if regressions:
        click.echo(f"accepted {len(regressions)} regression(s) against the old baseline (listed above)")
    click.echo(f"baseline updated: {baseline} (commit it with the change)")
    return EvalExit.PASSED


@main.group("gold")
def gold_group() -> None:
    """Build a gold set for your own corpus: `draft` questions with the local model, then `review` them.

    The reviewed file is a gold set for `rag eval FILE --index DIR --sets gold` (evals/README.md)."""


@gold_group.command("draft")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_option
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("drafts.jsonl"),
              show_default=True, help="The drafts file (JSONL), written as drafts are made; an existing one is "
                                      "continued (delete it to start over).")
@click.option("--per-doc", type=int, default=None, metavar="N", help="Draft from N paragraphs of each document.")
@click.option("--sample", type=int, default=None, metavar="N",
              help="Draft from N paragraphs in all, the documents in turn [default: 30, unless --per-doc].")
@click.option("--langs", default=",".join(("zh-Hant", "zh-Hans", "en")), show_default=True,
              help="Languages of the questions, taken in turn (one question per paragraph).")
@click.option("--near-misses", type=int, default=0, show_default=True, metavar="M",
              help="Also draft M unanswerable questions on the sampled paragraphs' topics, kept when the judge "
                   "finds them unanswered by the paragraph, its neighbours and, drafting from an index, the "
                   "3 other paragraphs a search for them finds first.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the paragraph sample.")
@click.option("--floor", type=click.FloatRange(0.0, 1.0), default=None,
              help="Self-check floor: drafts whose judge P(yes) is below it are flagged, near misses at or above "
                   "it dropped [default: the judge's floor, RAG_JUDGE_FLOOR or 0.45].")
def gold_draft_cmd(paths: tuple[Path, ...], index: str | None, out: Path, per_doc: int | None, sample: int | None,
                   langs: str, near_misses: int, seed: int, floor: float | None) -> None:
    """Draft candidate gold questions from the corpus of an index (or of PATHS) with the local model,
    or with the model server of RAG_LLM_BASE_URL when it is set (it must return logprobs).

    Each draft: a question in one of --langs, the answer copied from its paragraph (checked to be
    there, script-blind), the paragraph's para_id as gold, and a self-check (the judge's P(yes)
    that the paragraph answers). Progress goes to standard error; Ctrl-C keeps what was written
    and the same command continues it. Review the drafts with `rag gold review`."""
    import time

    from rag.evaluation import drafting
    from rag.llm.judge import DEFAULT_FLOOR
    from rag.text.normalise import Normaliser

    settings = _settings(index)
    chosen = drafting.parse_langs(langs)
    if paths:
        corpus = drafting.CorpusText.from_paths(list(paths))
        opencc = settings.opencc_config
    else:
        from rag.index.manifest import read_manifest

        corpus = drafting.CorpusText.from_index(settings.index_dir)
        opencc = (read_manifest(settings.index_dir) or {}).get("normaliser", {}).get("opencc", settings.opencc_config)
    tasks = drafting.plan(corpus, per_doc=per_doc, sample=sample, langs=chosen, near_misses=near_misses, seed=seed)
    if not tasks:
        raise InputError("no paragraph long enough to ask about")
    asked = sum(t.kind == "answerable" for t in tasks)
    if sample is not None and asked < sample:
        click.echo(f"note: only {asked} paragraphs are long enough to ask about", err=True)
    floor = floor if floor is not None else settings.judge_floor if settings.judge_floor is not None else DEFAULT_FLOOR
    where = f"the model server at {settings.llm_base_url}" if settings.llm_base_url else "the local language model"
    click.echo(f"loading {where} ({len(tasks)} drafts to make)...", err=True)
    search = None
    if near_misses and not paths:  # a near miss is also judged against what a search for it finds
        from rag.service import RagService

        finder = RagService.open(settings.index_dir, settings.model_copy(update={"llm": "off"}))

        def search(question: str, k: int) -> list[str]:
            return [h.para_id for h in finder.search(question, k)]
    elif near_misses:
        click.echo("note: near misses are judged against their paragraph and its neighbours only; drafted "
                   "from an index (no PATHS), they are also judged against the paragraphs a search finds", err=True)
    model = drafting.draft_model(settings)
    drafter = drafting.Drafter(corpus, model, floor=floor, normaliser=Normaliser(opencc), search=search)

    def progress(i: int, n: int, task: drafting.Task, outcome: str, seconds: float) -> None:
        said = outcome if outcome in ("kept", "flagged") else f"dropped: {drafting.DROPPED[outcome]}"
        kind = "near miss, " if task.kind == "unanswerable" else ""
        click.echo(f"[{i}/{n}] {kind}{task.lang} {task.para_id}: {said} ({seconds:.1f} s)", err=True)

    t0 = time.perf_counter()
    try:
        tally = drafting.write_drafts(drafter, tasks, out, progress=progress)
    except KeyboardInterrupt:
        click.echo(f"interrupted: the drafts made so far are in {out}; run the same command to continue", err=True)
        sys.exit(130)
    for line in tally.lines(out, floor):
        click.echo(line)
    made = sum(tally.kept.values()) + sum(tally.dropped.values())
    if made:
        click.echo(f"{time.perf_counter() - t0:.0f} s, {(time.perf_counter() - t0) / made:.1f} s per draft tried; "
                   f"next: rag gold review {out} --out gold_mine.jsonl")


@gold_group.command("review")
@click.argument("drafts", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The gold file accepted drafts are appended to (the input of `rag eval OUT`).")
@click.option("--accept-all", is_flag=True, help="Accept every draft not decided yet, without asking (scripts).")
def gold_review_cmd(drafts: Path, out: Path, accept_all: bool) -> None:
    """Review DRAFTS one by one: [a]ccept, [e]dit question/answer, [d]rop, [s]kip for later, [q]uit.

    Each draft is shown with its paragraph (the answer highlighted) and its self-check. Decisions
    are saved as they are made (OUT and OUT.review.json): a rerun goes on with the drafts not
    decided yet, the skipped ones among them."""
    from rag.evaluation.review import Review, run_review
    from rag.text.normalise import Normaliser

    if drafts.resolve() == out.resolve():
        raise click.UsageError("--out must be another file than DRAFTS")
    review = Review.open(drafts, out)
    left = len(review.pending())
    if not left:
        click.echo(f"nothing left to review in {drafts} (decisions: {out}.review.json)")
    counts = run_review(review, accept_all=accept_all, normaliser=Normaliser(_settings(None).opencc_config),
                        styled=sys.stdout.isatty())
    click.echo(f"{out}: {counts['accepted']} accepted, {counts['dropped']} dropped, {counts['left']} left to review"
               + (" (rerun to go on)" if counts["left"] else ""))
    if counts["accepted"]:
        click.echo(f"evaluate with: rag eval {out} --index DIR --sets gold --thresholds RULES.toml "
                   f"--baseline BASELINE.json (evals/README.md)")


if __name__ == "__main__":
    main()
