"""The local language model in this process: llama.cpp (llama-cpp-python), loaded once.

One :class:`LocalModel` per process and model file (:func:`get_local_model`). Every call takes
the model's lock, so concurrent requests queue instead of interleaving their tokens in one KV
cache. Two kinds of work:

- :meth:`LocalModel.next_token_logits`: a prompt-only pass for the answerability judge. The
  prompt is a *prefix* (the instructions and one paragraph) and a *suffix* (the question). The
  prefix's KV cache is kept per paragraph in a byte-capped LRU, so a paragraph seen before costs
  only the question's tokens.
- :meth:`LocalModel.stream`: greedy generation, token by token.

Prefix states are also looked up in stores on disk beside the indexes (``rag.llm.kvstore``,
``RAG_LLM_KV_DISK_MB``); a prefix evaluated for a question is saved in the first one attached,
and :meth:`LocalModel.preread` fills a store ahead of the questions (``rag.llm.preread``).

Thread counts are the caller's (``RAG_LLM_THREADS``). OpenMP's wait policy is the process's:
with the default (spinning) policy and two cores, any other busy thread made generation 5-10x
slower, so `rag serve`/`rag ask`/`rag eval` set ``OMP_WAIT_POLICY=passive`` at start when the
model is on (``rag.cli``); a program that embeds the library sets it in its own environment.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ModelError
from rag.llm.kvstore import PrefixStore, prefix_key

log = logging.getLogger(__name__)

N_CTX = 4096  # tokens: instructions + up to five paragraphs + question + answer
N_BATCH = 512


@dataclass
class EngineStats:
    """What the engine did since load (benchmarks and tests read it)."""

    load_seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    generated_tokens: int = 0
    generate_seconds: float = 0.0
    prefix_hits: int = 0
    prefix_misses: int = 0
    disk_hits: int = 0  # prefixes restored from a store on disk (rag.llm.kvstore)
    gave_way: int = 0  # pre-reads stopped between chunks for a question (LocalModel.preread)
    cache_bytes: int = 0


# The pre-read evaluates a paragraph in chunks of this many tokens and gives way to a question
# between them: ~1.4 s a chunk on 2 AVX2 cores (~0.1 s a call + ~0.02 s a token), so a question
# waits for one chunk instead of a whole paragraph (3-16 s), for ~7% more pre-read time.
PREREAD_CHUNK = 64


class LocalModel:
    """A GGUF model under llama.cpp; thread-safe by one lock (callers queue)."""

    def __init__(self, path: Path, *, threads: int, cache_mb: int = 512, n_ctx: int = N_CTX) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError(
                "RAG_LLM=local needs the llama.cpp engine: run `bash scripts/setup.sh --llm` "
                f"(builds llama-cpp-python for this CPU) ({exc})"
            ) from None
        self._lib = llama_cpp
        self.path = Path(path)
        self.threads = threads
        check_memory(self.path)
        t0 = time.perf_counter()
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=n_ctx, n_batch=N_BATCH, n_ubatch=N_BATCH,
                n_threads=threads, n_threads_batch=threads, seed=0, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {self.path}: {exc}") from None
        self.stats = EngineStats(load_seconds=time.perf_counter() - t0)
        self.lock = threading.Lock()
        self.n_vocab = self.llm.n_vocab()
        self.n_ctx = n_ctx
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_cap = cache_mb << 20
        self.stores: list[PrefixStore] = []  # on disk, beside indexes (rag.llm.kvstore)
        self.state_bytes_per_token = 0.0  # of a saved prefix state, once one was measured
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template")
        self._formatter: Callable[..., Any] | None = None  # llama.cpp's Jinja2ChatFormatter, built once
        st = self.path.stat()
        self.fingerprint = hashlib.sha256(f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]

    # -- tokens ---------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text``, special tokens (``<|im_start|>``) parsed, no BOS added."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def format_chat(self, messages: Sequence[dict[str, str]]) -> str:
        """``messages`` as the model's own chat template renders them, ready for the answer."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not self.chat_template:
            raise ModelError(f"{self.path.name} has no chat template (tokenizer.chat_template): use an instruct model")
        if self._formatter is None:
            vocab = self.llm
            self._formatter = Jinja2ChatFormatter(
                self.chat_template,
                eos_token=vocab.detokenize([vocab.token_eos()], special=True).decode("utf-8", "replace"),
                bos_token=vocab.detokenize([vocab.token_bos()], special=True).decode("utf-8", "replace"),
            )
        return self._formatter(messages=list(messages)).prompt

    def token_piece(self, token: int) -> bytes:
        return self.llm.detokenize([token], special=False)

    # -- prompt-only pass -----------------------------------------------------------------
    def next_token_logits(self, prefix: Sequence[int], suffix: Sequence[int]) -> np.ndarray:
        """The logits of the token after ``prefix + suffix`` (float32, one row of the vocabulary).

        ``prefix``'s KV cache is reused when it was evaluated before (kept in memory up to
        ``RAG_LLM_CACHE_MB``); only ``suffix`` is then evaluated.
        """
        if len(prefix) + len(suffix) >= self.n_ctx:
            raise ModelError(f"prompt of {len(prefix) + len(suffix)} tokens exceeds the context of {self.n_ctx}")
        with self.lock:
            self._load_prefix(list(prefix), asked=True)
            self._eval(list(suffix))
            ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _eval(self, tokens: list[int]) -> None:
        if not tokens:
            return
        t0 = time.perf_counter()
        self.llm.eval(tokens)
        self.stats.prompt_seconds += time.perf_counter() - t0
        self.stats.prompt_tokens += len(tokens)

    def _load_prefix(self, prefix: list[int], *, asked: bool = False, save_to: PrefixStore | None = None,
                     evict: bool = True, give_way: Callable[[], bool] | None = None) -> bool:
        """Leave the context holding exactly ``prefix`` (seq 0): from the context itself, the
        memory cache or a store on disk when possible, else evaluated (and then kept in memory
        and saved to ``save_to``, or to the first attached store). ``asked``: a question's use,
        counted for the pre-read's order. ``give_way``: evaluate in chunks of
        :data:`PREREAD_CHUNK` tokens and stop before a chunk when it returns True; then False is
        returned and the context holds only the chunks read (the pre-read tries again later)."""
        llm, lib = self.llm, self._lib
        n = len(prefix)
        key = prefix_key(prefix)
        if asked:
            for store in self.stores:  # only the store whose index holds the paragraph will ask for it
                store.note(key)
        if llm.n_tokens >= n and llm.input_ids[:n].tolist() == prefix:
            llm.n_tokens = n  # the last call's prompt starts with it: drop the rest (eval trims the KV)
            self.stats.prefix_hits += 1
            return True
        llm.reset()
        lib.llama_memory_clear(lib.llama_get_memory(llm.ctx), True)
        saved = self._cache.get(key)
        if saved is not None:
            if self._restore(saved, prefix):
                self._cache.move_to_end(key)
                self.stats.prefix_hits += 1
                return True
            log.debug("a cached prefix did not load; evaluating it again")
        for store in self.stores:
            data = store.get(key)
            if data is None:
                continue
            if self._restore(data, prefix):
                self.stats.disk_hits += 1
                self._remember(key, data)
                return True
            log.warning("a saved KV state in %s did not load; evaluating it again", store.folder)
            store.forget(key)
        step = n if give_way is None else PREREAD_CHUNK  # from scratch, whole or in chunks
        for start in range(0, n, max(step, 1)):
            if give_way is not None and give_way():
                self.stats.gave_way += 1
                return False
            self._eval(prefix[start:start + step])
        self.stats.prefix_misses += 1
        target = save_to if save_to is not None else (self.stores[0] if self.stores else None)
        size = lib.llama_state_seq_get_size(llm.ctx, 0)
        self.state_bytes_per_token = size / max(1, n)
        to_disk = target is not None and (evict or target.room_for(size))
        if size > self._cache_cap and not to_disk:
            return True
        data = self._state_data(size)
        if data is None:
            return True
        self._remember(key, data)
        if to_disk and target is not None:
            target.put(key, data, evict=evict)
        return True

    def _state_data(self, size: int | None = None) -> bytes | None:
        """The KV state of seq 0 (what the context holds), as bytes; None when llama.cpp gives none."""
        lib, ctx = self._lib, self.llm.ctx
        size = size or lib.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        got = lib.llama_state_seq_get_data(ctx, buf, size, 0)
        return bytes(buf)[:got] if got else None

    def _restore(self, data: bytes, prefix: list[int]) -> bool:
        """Load a saved state into seq 0 of the (cleared) context; False when it does not fit."""
        llm, lib = self.llm, self._lib
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if lib.llama_state_seq_set_data(llm.ctx, buf, len(data), 0):
            llm.input_ids[: len(prefix)] = prefix
            llm.n_tokens = len(prefix)
            return True
        lib.llama_memory_clear(lib.llama_get_memory(llm.ctx), True)
        return False

    def _remember(self, key: bytes, data: bytes) -> None:
        """Keep ``data`` in the memory cache (least recently used out past ``RAG_LLM_CACHE_MB``)."""
        if len(data) > self._cache_cap or key in self._cache:
            return
        self._cache[key] = data
        self.stats.cache_bytes += len(data)
        while self.stats.cache_bytes > self._cache_cap and self._cache:
            _, old = self._cache.popitem(last=False)
            self.stats.cache_bytes -= len(old)

    # -- stores on disk -------------------------------------------------------------------
    def attach_store(self, store: PrefixStore) -> PrefixStore:
        """Look prefixes up in ``store`` too; the first attached also saves questions' new ones.
        Attaching a folder twice returns the store already attached."""
        with self.lock:
            for have in self.stores:
                if have.folder == store.folder:
                    return have
            self.stores.append(store)
            return store

    def detach_store(self, store: PrefixStore) -> None:
        """Stop looking prefixes up in ``store`` (its files stay)."""
        with self.lock:
            self.stores = [s for s in self.stores if s.folder != store.folder]

    def forget_memory(self) -> None:
        """Drop the prefixes kept in memory and the context's tokens (as a restarted process has
        none): benchmarks and tests of the stores on disk."""
        with self.lock:
            self._cache.clear()
            self.stats.cache_bytes = 0
            self.llm.n_tokens = 0

    def preread(self, prefix: Sequence[int], store: PrefixStore, *,
                give_way: Callable[[], bool] | None = None) -> str:
        """Evaluate ``prefix`` and save its state in ``store`` unless it is there already:
        ``"had"`` (saved before), ``"saved"``, ``"full"`` (the store has no room for it; nothing
        was evaluated when its size could be told beforehand), or ``"gave way"``: ``give_way()``
        returned True before one of its chunks of :data:`PREREAD_CHUNK` tokens, so a question
        waits for one chunk at most, never for a whole paragraph (nothing saved; ask again)."""
        prefix = list(prefix)
        key = prefix_key(prefix)
        if key in store:
            return "had"
        if len(prefix) >= self.n_ctx:
            return "full"
        estimate = int(self.state_bytes_per_token * len(prefix))
        if estimate and not store.room_for(estimate):
            return "full"
        with self.lock:
            if not self._load_prefix(prefix, save_to=store, evict=False, give_way=give_way):
                return "gave way"
            if key not in store:  # it came from memory or another store, or did not fit
                data = self._cache.get(key) or self._state_data()
                if data is None or not store.put(key, data, evict=False):
                    return "full"
        return "saved"

    # -- generation -----------------------------------------------------------------------
    def stream(
        self, prompt: Sequence[int], *, max_tokens: int = 256, stop: Sequence[str] = (),
        deadline: float | None = None, cached_prefix: int = 0,
    ) -> Iterator[str]:
        """Greedy continuation of ``prompt``, yielded as text pieces as they are decoded.

        Holds the model's lock until the generator finishes or is closed. Stops at the end-of-
        generation token, at any of ``stop``, after ``max_tokens``, or at ``deadline``
        (``time.monotonic()``; then :class:`TimeoutError`). The first ``cached_prefix`` tokens
        (instructions shared by many prompts) are restored from the prefix cache when they were
        evaluated before, like a judge prefix.
        """
        prompt = list(prompt)
        if len(prompt) + max_tokens >= self.n_ctx:
            raise ModelError(f"prompt of {len(prompt)} tokens leaves no room to answer in {self.n_ctx}")
        llm = self.llm
        with self.lock:
            if 0 < cached_prefix < len(prompt):
                self._load_prefix(prompt[:cached_prefix])
            # Evaluate the rest, reusing whatever leading tokens the context already holds.
            same = 0
            held = llm.input_ids[: llm.n_tokens].tolist()
            while same < min(len(held), len(prompt) - 1) and held[same] == prompt[same]:
                same += 1
            llm.n_tokens = same
            self._eval(prompt[same:])
            text = b""
            shown = 0
            vocab = self._lib.llama_model_get_vocab(llm.model)
            t0 = time.perf_counter()
            try:
                for _ in range(max_tokens):
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError("the language model ran past RAG_LLM_TIMEOUT_S")
                    token = self._greedy()
                    if self._lib.llama_vocab_is_eog(vocab, token):  # end of generation (EOS among them)
                        break
                    text += self.token_piece(token)
                    llm.eval([token])
                    self.stats.generated_tokens += 1
                    decoded = _decodable(text)
                    hit = next((s for s in stop if s in decoded), None)
                    if hit is not None:
                        decoded = decoded[: decoded.index(hit)]
                        if len(decoded) > shown:
                            yield decoded[shown:]
                        return
                    # hold back a possible start of a stop string
                    safe = len(decoded) - max((len(s) - 1 for s in stop), default=0)
                    if safe > shown:
                        yield decoded[shown:safe]
                        shown = safe
                decoded = _decodable(text)
                if len(decoded) > shown:
                    yield decoded[shown:]
            finally:
                self.stats.generate_seconds += time.perf_counter() - t0

    def _greedy(self) -> int:
        ptr = self._lib.llama_get_logits_ith(self.llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))))


WORKING_MB = 700  # besides the weights: the KV cache of N_CTX tokens, compute buffers (1.5B: RSS ~1.8 GB)


def check_memory(path: Path, available: int | None = None) -> None:
    """Refuse to load a model that does not fit in the memory available (``MemAvailable``, or the
    cgroup's limit when lower), with a message, instead of being killed for it later."""
    try:
        need = path.stat().st_size + (WORKING_MB << 20)
    except OSError as exc:
        raise ModelError(f"cannot read the language model file {path}: {exc.strerror or exc}; set "
                         "RAG_LLM_MODEL_PATH to a GGUF file, or run without it (RAG_LLM=off)") from None
    have = available if available is not None else memory_available()
    if have is not None and have < need:
        raise ModelError(
            f"too little memory for the language model: {path.name} needs about {need / 2**30:.1f} GB, "
            f"{have / 2**30:.1f} GB is available; free some, or run without it (RAG_LLM=off)")


def memory_available() -> int | None:
    """Bytes this process can still use: /proc/meminfo's MemAvailable, capped by a cgroup v2 limit."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            have = next(int(line.split()[1]) << 10 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            have = min(have, int(limit) - used)
    except (OSError, ValueError):
        pass
    return have


def _decodable(data: bytes) -> str:
    """``data`` decoded, leaving out an incomplete UTF-8 sequence at its end."""
    for cut in range(4):
        try:
            return data[: len(data) - cut].decode("utf-8") if cut else data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace")


_MODELS: dict[tuple[str, int, int], LocalModel] = {}
_MODELS_LOCK = threading.Lock()


def get_local_model(path: Path, *, threads: int, cache_mb: int = 512) -> LocalModel:
    """The one :class:`LocalModel` of this process for ``path`` (loaded on first call)."""
    key = (str(Path(path).resolve()), threads, cache_mb)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = LocalModel(path, threads=threads, cache_mb=cache_mb)
        return model
