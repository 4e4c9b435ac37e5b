"""llama.cpp on the CPU: one context, several sequences decoding together, one worker thread.

Why: transformers in fp32 decodes a 0.5B model at ~9 tok/s on two cores; llama.cpp runs the GGUF
as it ships (4-6 bit weights, int8 dot products) several times faster, and one ``llama_decode``
call can carry tokens of several sequences, so concurrent requests share each pass over the
weights instead of queueing (decoding is memory-bound: four sequences cost little more than one).

The worker thread owns the context. Each step it admits waiting requests into free sequence
slots, then sends one batch holding the next token of every decoding sequence plus a chunk
(at most ``prefill_chunk`` tokens) of the prompts still being read, and samples the new tokens.
Chunking keeps a long prompt from stalling the streams already decoding. A slot keeps the tokens
of its last request in its KV cache, and the next request that starts with the same tokens (the
system message and demonstrations, or a conversation's history) only reads what differs.

Only token ids cross this module: chat templates, text and stop strings stay with the caller.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import random
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rag.errors import ConfigError, GenerationError
from rag.generate.chat import checked_prompt, drain
from rag.generate.token_sampler import Sampler

log = logging.getLogger("rag.generate")

#: Tokens of prompts read per ``llama_decode`` call (with every decoding sequence's next token).
PREFILL_CHUNK = 512


@dataclass(eq=False)
class Request:
    """One prompt's decoding; the caller reads ``out`` (token ids, then None or an error)."""

    prompt: list[int]
    max_new_tokens: int
    eos: frozenset[int]
    sampler: Sampler
    out: queue.SimpleQueue[list[int] | BaseException | None] = field(
        default_factory=queue.SimpleQueue
    )
    #: Prompt tokens already in the slot's KV cache (the prompt is read from here on).
    read: int = 0
    produced: int = 0
    #: The token sampled last, fed back at the next step.
    last: int | None = None
    cancelled: bool = False
    done: bool = False

    def emit(self, token: int) -> None:
        self.produced += 1
        self.last = token
        self.out.put([token])
        if token in self.eos or self.produced >= self.max_new_tokens:
            self.done = True
            self.out.put(None)


@dataclass
class _Slot:
    """A sequence id of the context and the tokens its KV cache holds."""

    seq: int
    cached: list[int] = field(default_factory=list)
    request: Request | None = None


def system_info() -> str:
    import llama_cpp

    return bytes(llama_cpp.llama_print_system_info()).decode(errors="replace")


class LlamaModel:
    """A GGUF loaded once (memory-mapped); contexts and LoRA adapters are made from it."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _loaded: ClassVar[dict[Path, LlamaModel]] = {}

    def __init__(self, path: Path) -> None:
        import llama_cpp

        _quiet_logs()
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        # A library built for this CPU with AMX kernels crashes in them (SIGSEGV at the first
        # decode) on the VMs these tests run on, though AMX itself works there (torch's bfloat16
        # products run on it): llama.cpp issue 20824, machine-dependent and unfixed upstream.
        # So skip the AMX and repacked weight buffers (plain kernels, still int8 dots).
        params.use_extra_bufts = "AMX_INT8 = 1" not in system_info()
        pointer = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not pointer:
            raise GenerationError(
                f"llama.cpp could not load {path}: check the file is a complete GGUF "
                "(`rag models pull NAME --force` re-creates it)"
            )
        self.path = path
        self.pointer = pointer
        self.vocab = llama_cpp.llama_model_get_vocab(pointer)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(pointer))
        self.extra_buffers = bool(params.use_extra_bufts)

    @classmethod
    def shared(cls, path: Path) -> LlamaModel:
        """The loaded model for ``path`` (loaded on first use, then shared by every engine)."""
        path = Path(path).resolve()
        with cls._lock:
            model = cls._loaded.get(path)
            if model is None:
                model = cls._loaded[path] = cls(path)
            return model

    def lora(self, path: Path) -> Any:
        import llama_cpp

        adapter = llama_cpp.llama_adapter_lora_init(self.pointer, str(path).encode())
        if not adapter:
            raise GenerationError(f"llama.cpp could not load the LoRA adapter {path}")
        return adapter


class LlamaCppEngine:
    """Decode token ids with llama.cpp for any number of callers (thread-safe).

    ``slots`` sequences decode at once, each attending to at most ``window`` tokens (prompt and
    answer); the KV cache holds ``slots * window`` tokens in f16. More requests wait for a
    slot. ``threads`` defaults to the CPUs this process may use. ``lora`` is a GGUF LoRA
    adapter applied to every sequence of this engine.
    """

    def __init__(
        self,
        gguf: Path,
        *,
        window: int,
        slots: int = 4,
        threads: int | None = None,
        lora: Path | None = None,
        prefill_chunk: int = PREFILL_CHUNK,
    ) -> None:
        for name, value in (("window", window), ("slots", slots), ("prefill_chunk", prefill_chunk)):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.gguf = Path(gguf)
        self.window = window
        self.slots = slots
        self.threads = threads or len(os.sched_getaffinity(0))
        self.lora = lora
        self.prefill_chunk = prefill_chunk
        self._lock = threading.Lock()
        self._pending: deque[Request] = deque()
        self._slots = [_Slot(seq) for seq in range(slots)]
        self._worker: threading.Thread | None = None
        self._context: Any = None
        self._batch: Any = None
        self.model = LlamaModel.shared(self.gguf)
        self._open()

    # -- the context -------------------------------------------------------------------------

    def _open(self) -> None:
        import llama_cpp

        params = llama_cpp.llama_context_default_params()
        # One KV stream per sequence, ``window`` tokens each: a sequence attends only to its
        # own cells (a unified cache would make every sequence scan all of them).
        params.n_ctx = self.window * self.slots
        params.n_seq_max = self.slots
        params.kv_unified = False
        params.n_batch = params.n_ubatch = self.prefill_chunk + self.slots
        params.n_threads = params.n_threads_batch = self.threads
        params.no_perf = True
        context = llama_cpp.llama_init_from_model(self.model.pointer, params)
        if not context:
            raise GenerationError(
                f"llama.cpp could not create a context of {params.n_ctx} tokens for "
                f"{self.gguf.name}: lower the slots or the context window"
            )
        self._context = context
        self._memory = llama_cpp.llama_get_memory(context)
        if self.lora is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self.model.lora(self.lora))
            scales = (ctypes.c_float * 1)(1.0)
            if llama_cpp.llama_set_adapters_lora(context, adapters, 1, scales) != 0:
                raise GenerationError(f"llama.cpp could not apply the LoRA adapter {self.lora}")
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._capacity = int(params.n_batch)

    def close(self) -> None:
        """Free the context (the shared model stays loaded)."""
        import llama_cpp

        with self._lock:
            busy = self._worker is not None
        if busy:
            raise GenerationError("the engine is still decoding: close it after the requests end")
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._context is not None:
            llama_cpp.llama_free(self._context)
            self._context = None

    # -- requests ----------------------------------------------------------------------------

    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        eos: Sequence[int] = (),
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[int]:
        """Queue ``prompt`` now; iterate over its new token ids (an EOS id ends it, yielded).

        Closing the iterator early frees the slot at the next step.
        """
        tokens = checked_prompt(
            prompt,
            vocab=self.model.n_vocab,
            max_new_tokens=max_new_tokens,
            limit=self.window,
            what=f"the engine's window of {self.window} tokens",
        )
        sampler = Sampler(temperature, top_p, random.getrandbits(32) if seed is None else seed)
        request = Request(tokens, max_new_tokens, frozenset(eos), sampler)
        with self._lock:
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="llama-cpp", daemon=True)
                self._worker.start()
        return self._drain(request)

    @staticmethod
    def _drain(request: Request) -> Iterator[int]:
        return drain(request, "llama.cpp failed while decoding")

    # -- the worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    busy = any(slot.request is not None for slot in self._slots)
                    if not self._pending and not busy:
                        self._worker = None
                        return
                self._admit()
                self._step()
        except BaseException as error:
            self._fail(error)

    def _admit(self) -> None:
        """Give waiting requests the free slots whose cache shares the longest prefix."""
        import llama_cpp

        while True:
            free = [slot for slot in self._slots if slot.request is None]
            with self._lock:
                while self._pending and self._pending[0].cancelled:
                    self._pending.popleft()
                if not free or not self._pending:
                    return
                request = self._pending.popleft()
            slot = max(free, key=lambda s: _common_prefix(s.cached, request.prompt))
            # Keep the shared prefix, but always read at least the last prompt token: its
            # logits give the first new token.
            keep = min(_common_prefix(slot.cached, request.prompt), len(request.prompt) - 1)
            if not llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, keep, -1):
                keep = 0  # this memory cannot cut a sequence short: start it afresh
                llama_cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.cached = slot.cached[:keep]
            request.read = keep
            slot.request = request

    def _step(self) -> None:
        """One ``llama_decode``: each decoding sequence's next token, then prompt chunks."""
        import llama_cpp

        batch = self._batch
        rows: list[tuple[_Slot, int]] = []  # (slot, batch row) whose logits give a token
        n = 0

        def add(slot: _Slot, token: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = len(slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot.seq
            batch.logits[n] = logits
            if logits:
                rows.append((slot, n))
            slot.cached.append(token)
            n += 1

        for slot in self._slots:
            request = slot.request
            if request is not None and (request.cancelled or request.done):
                slot.request = None  # the cache stays, for a later request with this prefix
        decoding = [s for s in self._slots if s.request is not None and s.request.last is not None]
        reading = [s for s in self._slots if s.request is not None and s.request.last is None]
        for slot in decoding:
            assert slot.request is not None and slot.request.last is not None
            add(slot, slot.request.last, True)
        room = self._capacity - n
        for slot in reading:
            request = slot.request
            assert request is not None
            take = min(room, len(request.prompt) - request.read)
            for i in range(request.read, request.read + take):
                add(slot, request.prompt[i], i == len(request.prompt) - 1)
            request.read += take
            room -= take
            if room == 0:
                break
        if n == 0:
            return
        batch.n_tokens = n
        status = llama_cpp.llama_decode(self._context, batch)
        if status != 0:
            raise GenerationError(f"llama_decode returned {status}")
        for slot, row in rows:
            request = slot.request
            assert request is not None
            logits = llama_cpp.llama_get_logits_ith(self._context, row)
            request.emit(request.sampler.pick(_as_array(logits, self.model.n_vocab)))

    def _fail(self, error: BaseException) -> None:
        """Hand the error to every caller and start the next request on a clean cache."""
        import llama_cpp

        with self._lock:
            victims = [s.request for s in self._slots if s.request is not None]
            victims += list(self._pending)
            self._pending.clear()
            for slot in self._slots:
                slot.request, slot.cached = None, []
            llama_cpp.llama_memory_clear(self._memory, True)
            self._worker = None
        log.error("llama.cpp decoding failed: %s", error)
        for request in victims:
            request.out.put(error)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _as_array(pointer: Any, size: int) -> Any:
    import numpy as np

    return np.ctypeslib.as_array(pointer, shape=(size,))


_log_callback: Any = None
_GGML_LOG_ERROR = 4  # enum ggml_log_level


def _quiet_logs() -> None:
    """Route llama.cpp's log lines (hundreds per load) to nowhere but errors to our logger."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    def forward(level: int, text: bytes, _: Any) -> None:
        if level == _GGML_LOG_ERROR:
            log.error("llama.cpp: %s", text.decode(errors="replace").rstrip())

    # Kept in a global: llama.cpp holds the pointer, a collected callback would crash it.
    _log_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p())
