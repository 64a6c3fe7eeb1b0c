"""Does an index fit these settings? The one module that decides, and the version numbers it keys on.

Every question of fit is answered here:

* :func:`format_fits`: can this version read the manifest at all (its ``format_version``);
* :func:`build_key` / :func:`expected_key`: what a build is keyed by; the same key means the
  index is up to date (``rag.index.freshness``) or its rows can be taken over
  (:func:`can_take_over`), another key means a full rebuild;
* :func:`check` / :func:`require_fit`: can a server search this index with these settings
  (model, normaliser, chunking, English gloss; :func:`store_mismatches` for the store kind,
  :func:`model_id_mismatch` once the encoder is loaded). Each :class:`Mismatch` says how to fix it.

Standard library only at import time (like ``rag.index.freshness``, which `rag index` uses to
answer "nothing to do" in a fraction of a second); the few lookups that need more import lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import IndexStateError
from rag.profiles import profile_of_settings

# The index format: what the data folder's files and the manifest's keys are. A manifest of
# another format is not read at all (`rag index` then builds afresh).
FORMAT_VERSION = 3
# Bump when reading, cleaning or chunking changes what an unchanged file becomes: documents of
# unchanged files are otherwise taken over as the previous build made them (a full rebuild).
PIPELINE_VERSION = 1
# How paragraphs are glossed into English (rag.index.gloss, which reads it from here): part of
# the build key, and recorded in the manifest's ``gloss`` entry that a server checks. Bump it
# when glossing or pair mining changes what a text becomes: an update takes over the gloss term
# counts and mined pairs of every known paragraph text (rag/index/glossrows.py).
GLOSS_VERSION = 1
STORE_KINDS = ("faiss", "milvus")
# Only a local FAISS store keeps its vectors in the data folder, so only its rows can be taken
# over by the next build (rag.store.factory.build_backend).
TAKE_OVER_KINDS = ("faiss",)


@dataclass(frozen=True)
class Mismatch:
    """One way an index does not fit the settings: what differs, and a message that says the fix."""

    what: str  # "format", "model", "model_id", "gloss", "normaliser", "chunking" or "store"
    message: str


def _fix(index_dir: Path | str) -> str:
    return f"re-index with `rag index --index {index_dir}` (or set the RAG_ settings the index was built with)"


# -- what the settings expect ------------------------------------------------------------------


def expected_config(settings: Any) -> dict[str, Any]:
    """The settings an index is built for, as the manifest records them; a loaded index must match."""
    from rag.text.normalise import normaliser_config

    return {
        "model": settings.embed_model,
        "normaliser": normaliser_config(settings.opencc_config),
        "chunking": {
            "max_chars": settings.chunk_max_chars,
            "overlap_chars": settings.chunk_overlap_chars,
            "embed_title": settings.embed_title,
            "sentence_vectors": profile_of_settings(settings).sentence_vectors,
        },
    }


def passage_dtype_for(settings: Any) -> str:
    """The passage precision the settings give on this machine (without loading the model)."""
    from rag.hardware import cpu_has_native_bfloat16, pick_dtype

    requested = settings.embed_passage_dtype
    return pick_dtype(requested, settings.embed_device, requested == "auto" and cpu_has_native_bfloat16())


def build_key(settings: Any, *, passage_dtype: str | None = None, model_id: str | None = None) -> dict[str, Any]:
    """Everything whose change makes a full rebuild necessary (a different index, not an update).

    ``model_id`` defaults to a packaged model's id (known without loading it); for another
    model the name stands for it, as in the manifest's ``model.id`` of such a model.
    """
    from rag.modelid import packaged_model_id

    store: dict[str, Any] = {"kind": settings.store}
    if settings.store == "milvus":
        store.update(uri=settings.milvus_uri, collection=settings.milvus_collection)
    return {
        "format_version": FORMAT_VERSION,
        "pipeline_version": PIPELINE_VERSION,
        **expected_config(settings),
        "model_id": model_id or packaged_model_id(settings.embed_model) or settings.embed_model,
        "passage_dtype": passage_dtype or passage_dtype_for(settings),
        "store": store,
        "gloss": {"version": GLOSS_VERSION, "glossaries": settings.glossary or None},
    }


def expected_key(settings: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """The build key ``settings`` give, for comparing with ``manifest``'s.

    Another model than the default has an id only once it is loaded; while its name is the one
    recorded, the recorded id stands for it (as the name does for the vectors it made).
    """
    from rag.modelid import packaged_model_id

    recorded = manifest.get("build_key") or {}
    model_id = None
    if packaged_model_id(settings.embed_model) is None and recorded.get("model") == settings.embed_model:
        model_id = recorded.get("model_id")
    return build_key(settings, model_id=model_id)


# -- the checks --------------------------------------------------------------------------------


def format_fits(manifest: Any) -> bool:
    """The manifest is a JSON object of the index format this version reads."""
    return isinstance(manifest, dict) and manifest.get("format_version") == FORMAT_VERSION


def format_mismatch(manifest: Any, path: Path, index_dir: Path | str) -> Mismatch | None:
    """A manifest of another index format (or not an object at all), with the command that rebuilds it."""
    if format_fits(manifest):
        return None
    found = manifest.get("format_version") if isinstance(manifest, dict) else "?"
    return Mismatch("format", f"{path} has index format {found}, this version reads {FORMAT_VERSION}; "
                              f"rebuild with `rag index --index {index_dir}`")


def key_fits(manifest: dict[str, Any], key: dict[str, Any]) -> bool:
    """The manifest was built with exactly this build key."""
    return manifest.get("build_key") == key


def can_take_over(manifest: dict[str, Any] | None, key: dict[str, Any], settings: Any) -> bool:
    """A build may take over the rows of the live index: same build key, a store that keeps its rows."""
    return manifest is not None and key_fits(manifest, key) and settings.store in TAKE_OVER_KINDS


def store_mismatches(kind: str, settings: Any, index_dir: Path | str) -> list[Mismatch]:
    """An index of another store than RAG_STORE, or of one this version does not know."""
    out = []
    if settings is not None and settings.store != kind:
        out.append(Mismatch("store", f"the index in {index_dir} was built with store {kind!r} but RAG_STORE is "
                                     f"{settings.store!r}: re-index with `rag index --index {index_dir}` "
                                     f"(or set RAG_STORE={kind})"))
    if kind not in STORE_KINDS:
        out.append(Mismatch("store", f"the index in {index_dir} uses an unknown store {kind!r}; "
                                     "re-index with `rag index`"))
    return out


def gloss_query_config() -> dict[str, Any]:
    """The parts of a gloss config a question's terms depend on (checked when an index opens)."""
    from rag.text.english import stemmer_name  # loads the stemmer: only when an index opens

    return {"version": GLOSS_VERSION, "stemmer": stemmer_name().split(" (")[0], "spelling": "british->american"}


def gloss_fits(config: dict[str, Any]) -> bool:
    """A gloss built with ``config`` is scored the way this version scores a question's terms."""
    want = gloss_query_config()
    return (config.get("version") == want["version"]
            and str(config.get("stemmer", "")).split(" (")[0] == want["stemmer"]
            and config.get("spelling") == want["spelling"])


def check(manifest: dict[str, Any], settings: Any, index_dir: Path | str) -> list[Mismatch]:
    """Every way ``manifest``'s index does not fit a server of ``settings`` (empty: it fits).

    Model name, English gloss (present when RAG_GLOSS_WEIGHT asks for it, and scored the way this
    version scores questions), normaliser and chunking, in that order.
    """
    want = expected_config(settings)
    fix = _fix(index_dir)
    out: list[Mismatch] = []
    built_with = manifest.get("model", {}).get("name")
    if built_with != want["model"]:
        out.append(Mismatch("model", f"the index in {index_dir} was built with model {built_with!r} "
                                     f"but RAG_EMBED_MODEL is {want['model']!r}: {fix}"))
    gloss = manifest.get("gloss")
    if gloss is None and profile_of_settings(settings).gloss_weight > 0:
        out.append(Mismatch("gloss", f"the index in {index_dir} has no English gloss (it was built by an older "
                                     f"version): re-index with `rag index --index {index_dir}` (or set "
                                     "RAG_GLOSS_WEIGHT=0 to serve it without one)"))
    if gloss is not None and not gloss_fits(gloss):
        out.append(Mismatch("gloss", f"the index in {index_dir} has an English gloss built with "
                                     f"{gloss.get('stemmer')!r}, version {gloss.get('version')}; this version "
                                     f"scores questions with {gloss_query_config()}: {fix}"))
    for key in ("normaliser", "chunking"):
        if manifest.get(key) != want[key]:
            out.append(Mismatch(key, f"the index in {index_dir} was built with {key} {manifest.get(key)} but the "
                                     f"current settings give {want[key]}: {fix}"))
    return out


def model_id_mismatch(manifest: dict[str, Any], model_id: str, index_dir: Path | str) -> Mismatch | None:
    """The loaded encoder is not the model whose vectors the index holds (an index without an id fits)."""
    built_with = manifest.get("model", {}).get("id")
    if built_with in (None, model_id):
        return None
    return Mismatch("model_id", f"the index in {index_dir} was built with model id {built_with!r}, the loaded "
                                f"encoder is {model_id!r}: re-index with `rag index --index {index_dir}`")


# -- raising forms, for the callers that refuse -------------------------------------------------


def _raise_first(mismatches: list[Mismatch]) -> None:
    if mismatches:
        raise IndexStateError(mismatches[0].message)


def require_fit(manifest: dict[str, Any], settings: Any, index_dir: Path | str) -> None:
    """Refuse (IndexStateError) an index built for another model, normaliser, chunking or gloss."""
    _raise_first(check(manifest, settings, index_dir))


def require_store(kind: str, settings: Any, index_dir: Path | str) -> None:
    """Refuse (IndexStateError) an index of another store than RAG_STORE, or an unknown one."""
    _raise_first(store_mismatches(kind, settings, index_dir))


def require_model_id(manifest: dict[str, Any], model_id: str, index_dir: Path | str) -> None:
    """Refuse (IndexStateError) an index whose vectors another model made."""
    _raise_first([m for m in [model_id_mismatch(manifest, model_id, index_dir)] if m is not None])
