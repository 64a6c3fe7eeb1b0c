"""Shared fixtures. The real embedding model is loaded once per test session.

A test that loads a real model (the embedding model or the language model) must be marked
``model``: anywhere else the loaders raise, so ``pytest -m "not model"`` loads none.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXTERNAL = Path(os.environ.get("RAG_EXTERNAL_DIR", SHARED / "data" / "external"))

# The suite runs in the lean mode whatever the environment or .env says (run.sh's default is
# RAG_LLM=local): a test of the language model asks for it in its own settings.
os.environ["RAG_LLM"] = "off"

# A model folder holding a file this large holds real weights; the tests' tiny models are a few KB.
REAL_WEIGHTS_BYTES = 8 << 20
_running: list[pytest.Item] = []  # the test being run (set up, called, torn down)
_LOADED = pytest.StashKey[list[str]]()  # what a test without the marker tried to load
# The fixtures below that hold a real model; a test using one (even through another fixture) loads it.
MODEL_FIXTURES = frozenset({"encoder", "st_encoder", "corpus_service", "local_judge"})


def _profile_for_the_fakes() -> None:
    """The tests' hashing encoder (tests/fakes.py) is served with the default model's relevance
    model and floor, so that their abstention tests keep the product's numbers; a model id the
    product does not know stays uncalibrated (tests/test_calibration.py)."""
    from dataclasses import replace

    import rag.profiles as profiles

    fake = replace(profiles.E5_SMALL, model="test-hashing-encoder")
    profiles.PROFILES = (*profiles.PROFILES, ("test-hashing-encoder", fake))


_profile_for_the_fakes()


class RealModelInUnmarkedTest(AssertionError):
    """A test without the ``model`` marker (or a fixture it uses) loaded a real model."""


def _is_real_embedding_model(model: Any) -> bool:
    """A folder with real weights (a hub name needs the network, which the tests never reach)."""
    folder = Path(str(model)).expanduser()
    try:
        return folder.is_dir() and any(f.is_file() and f.stat().st_size >= REAL_WEIGHTS_BYTES
                                       for f in folder.iterdir())
    except OSError:
        return False


def _refuse(what: str) -> None:
    """Raise when the running test lacks the ``model`` marker (and remember it, should the test
    swallow the error)."""
    item = _running[-1] if _running else None
    if item is None or item.get_closest_marker("model") is not None:
        return
    message = (f"{item.nodeid} loads {what} without the `model` marker: mark it "
               "@pytest.mark.model (or use tests/fakes.py) so that `pytest -m \"not model\"` loads no model")
    item.stash.setdefault(_LOADED, []).append(message)
    raise RealModelInUnmarkedTest(message)


def _guard(cls: type, what: str, is_real: Callable[[Any], bool]) -> None:
    """Wrap ``cls.__init__``: building a real model outside a ``model`` test raises."""
    init = cls.__init__
    first = list(inspect.signature(init).parameters)[1]  # the model (a folder or a file)

    @functools.wraps(init)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> None:
        model = args[0] if args else kwargs.get(first)
        if is_real(model):
            _refuse(f"{what} ({model})")
        init(self, *args, **kwargs)

    cls.__init__ = guarded  # type: ignore[misc]


def pytest_configure(config: pytest.Config) -> None:
    """Guard the model loaders for the whole session, session-scoped fixtures included."""
    from rag.embedding import LeanEncoder, SentenceTransformerEncoder
    from rag.llm.engine import LocalModel

    _guard(LeanEncoder, "the real embedding model", _is_real_embedding_model)
    _guard(SentenceTransformerEncoder, "the real embedding model", _is_real_embedding_model)
    _guard(LocalModel, "the language model", lambda _path: True)  # every GGUF the tests load is real


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Know which test is running while its fixtures are set up (the guard reads its markers)."""
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test without the marker may not ask for a real-model fixture, even one already built
    (the guard on the loaders catches only the first build)."""
    wanted = sorted(MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    if wanted:
        _refuse(f"the real model through the fixture(s) {', '.join(wanted)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test that loaded a real model without the marker even if it caught the error."""
    result = yield
    if item.stash.get(_LOADED, None):
        raise RealModelInUnmarkedTest(item.stash[_LOADED][0])
    return result


@pytest.fixture(scope="session", autouse=True)
def _thread_limits():
    """The suite runs questions as `rag serve` and the CLI do: with their thread limits (the
    library leaves threads alone; tests/test_process_state.py checks that in a fresh process)."""
    from rag.threads import limit_process

    limit_process()


@pytest.fixture(scope="session")
def encoder():
    """The default encoder (converted multilingual-e5-small), built into the cache once.

    Its backend follows RAG_EMBED_BACKEND (auto: the lean one).
    """
    from rag.config import get_settings
    from rag.embedding import get_encoder

    return get_encoder(get_settings())


@pytest.fixture(scope="session")
def st_encoder():
    """The default model through sentence-transformers, all in float32 (the parity reference)."""
    from rag.config import get_settings
    from rag.embedding import get_encoder

    return get_encoder(get_settings(), backend="sentence-transformers", query_dtype="float32", passage_dtype="float32")


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory):
    """Settings pointing at a session-wide index of the default corpus (real model)."""
    from rag.config import get_settings

    base = get_settings()
    index_dir = tmp_path_factory.mktemp("corpus-index")
    return base.model_copy(update={"index_dir": index_dir, "corpus_dir": ROOT / "corpus"})


@pytest.fixture(scope="session")
def corpus_service(encoder, corpus_settings):
    """The default corpus indexed once per session with the real model, opened as a service."""
    from rag.index.build import build_index
    from rag.service import RagService

    build_index([ROOT / "corpus"], corpus_settings.index_dir, corpus_settings, encoder=encoder)
    return RagService.open(corpus_settings.index_dir, corpus_settings, encoder=encoder)


def _unavailable(why: str) -> None:
    """Skip locally; under CI (CI=true) the language model was set up, so its absence fails."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"the language model is not set up under CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def local_model_path():
    """The assembled default GGUF (``bash scripts/setup.sh --llm``); skipped when not set up."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        _unavailable("llama-cpp-python is not installed: run `bash scripts/setup.sh --llm`")
    from rag.config import get_settings
    from rag.errors import ModelError
    from rag.llm.weights import resolve_model_path

    settings = get_settings()
    try:
        return resolve_model_path(settings.llm_model_path, settings.cache_dir)
    except ModelError as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def local_judge(local_model_path):
    """The answerability judge on the real model, loaded once per session."""
    from rag.answer.written.factory import judge_from_settings
    from rag.config import Settings

    return judge_from_settings(Settings(llm="local", llm_model_path=local_model_path))
