"""The CPU generator: OpenVINO GenAI on the registry's GGUF re-quantized to 8-bit blocks (Q8_0).

Measured on these 2-core Xeons (`bench/cpu_generate.py`, `bench/answer.py`), it reads a
qwen2.5-0.5b prompt 2.2x faster than CTranslate2 int8 and 3.4x faster than transformers (its
products run in bfloat16, on the CPU's AMX tiles where there are some) and decodes a little
faster than CTranslate2; for qwen2.5-1.5b the two answer in about the same time. A RAG answer is
mostly prompt. Prompts and text are the transformers backend's (``NativeGenerator``): same chat
template, same token ids, same ``TextStream``; only the weights differ
(``rag.generate.openvino_convert``).

One continuous-batching pipeline serves every request: requests join the running batch at
the next step (so a second client starts at once instead of queueing behind the first, and the
evaluation's batches decode together), and the KV cache is paged with prefix caching, so a
prompt that opens like an earlier one (the system turn every prompt starts with, a chat's
earlier turns) reads only what is new. One thread steps the pipeline while any request runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from rag.errors import GenerationError
from rag.generate.base import GenerationConfig
from rag.generate.native import NativeGenerator

log = logging.getLogger("rag.generate")

#: Requests decoding together by default; more wait for a free place. Four keeps the
#: evaluation's batches whole; a step costs about the same for one sequence or four.
DEFAULT_SLOTS = 4
#: The KV cache, in GB: room for ~80,000 tokens of qwen2.5-0.5b (~35,000 of the 1.5B) in 16 bits.
KV_CACHE_GB = 1
#: Prompt tokens read in one step at most (longer prompts are read in chunks of this size).
STEP_TOKENS = 4096


class OpenVINOGenerator(NativeGenerator):
    """A registry model on OpenVINO (8-bit weights); ``adapter`` (peft LoRA) merged into it.

    ``slots`` requests decode together in one batch (more wait for a place).
    """

    engine = "openvino"
    default_slots = DEFAULT_SLOTS
    _pipeline: Any = None

    def warm_up(self) -> None:
        if self._pipeline is not None:
            return
        import openvino_genai

        from rag.generate.openvino_convert import openvino_gguf

        started = time.perf_counter()
        self.context_window  # noqa: B018 - loads the tokenizer (and converts it) first
        gguf = openvino_gguf(self.name, self.cache_dir, self.adapter)
        scheduler = openvino_genai.SchedulerConfig()
        scheduler.cache_size = KV_CACHE_GB
        scheduler.max_num_seqs = self.slots
        scheduler.max_num_batched_tokens = STEP_TOKENS
        scheduler.dynamic_split_fuse = True
        scheduler.enable_prefix_caching = True
        properties = {"INFERENCE_NUM_THREADS": self.threads}
        try:
            pipeline = openvino_genai.ContinuousBatchingPipeline(
                str(gguf), scheduler, "CPU", properties
            )
        except RuntimeError as error:
            raise GenerationError(
                f"OpenVINO could not load {self.name} from {gguf}: {error}. "
                "Remove the folder to convert it again, or pick another engine (--engine)"
            ) from error
        self._steps = _Stepper(pipeline)
        self._pipeline = pipeline
        log.info(
            "generator %s: OpenVINO on the CPU, 8-bit weights (%d threads, %d slots%s), "
            "ready in %.1f s",
            self.name,
            self.threads,
            self.slots,
            f", LoRA {self.adapter} merged" if self.adapter else "",
            time.perf_counter() - started,
        )

    def _tokens(self, prompt: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        self.warm_up()
        import numpy as np
        import openvino

        ids = openvino.Tensor(np.asarray([prompt], dtype=np.int64))
        request = self._steps.submit(ids, request_options(budget, config, self.eos))
        return _token_ids(request, self._steps, budget, self.eos)


def request_options(budget: int, config: GenerationConfig, eos: set[int]) -> Any:
    """OpenVINO's generation config for one request: ``budget`` new tokens at most, stopping
    at any of ``eos``, greedy or sampled (seeded) as ``config`` says."""
    import openvino_genai

    options = openvino_genai.GenerationConfig()
    options.max_new_tokens = budget
    options.stop_token_ids = set(eos)
    options.eos_token_id = min(eos)
    if config.temperature > 0:
        options.do_sample = True
        options.temperature = config.temperature
        options.top_p = config.top_p
        if config.seed is not None:
            options.rng_seed = config.seed
    return options


class _Request:
    """One sequence: what to add to the pipeline, its handle there, and the ids it produced."""

    def __init__(self, prompt: Any, options: Any) -> None:
        self.prompt, self.options = prompt, options
        self.key = 0
        self.handle: Any = None
        #: New ids; then None at the end, or the exception that ended the request.
        self.ids: queue.SimpleQueue[int | BaseException | None] = queue.SimpleQueue()


class _Stepper:
    """Steps ``pipeline`` on its own thread while any request runs.

    Only that thread touches the pipeline: a new request (or a cancelled one) is handed over
    and joins (or leaves) the batch before the next step, so a second client starts within one
    step of the first instead of waiting for a lock the stepping thread keeps taking back.
    """

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self._handover = threading.Condition()
        self._new: list[_Request] = []
        self._cancelled: list[_Request] = []
        #: The requests in the pipeline, by key (the stepping thread's own).
        self._live: dict[int, _Request] = {}
        self._last_key = 0
        threading.Thread(target=self._run, name="openvino-steps", daemon=True).start()

    def submit(self, prompt: Any, options: Any) -> _Request:
        request = _Request(prompt, options)
        with self._handover:
            self._new.append(request)
            self._handover.notify()
        return request

    def cancel(self, request: _Request) -> None:
        """Stop ``request`` (its reader went away); its KV blocks free at the next step."""
        with self._handover:
            self._cancelled.append(request)
            self._handover.notify()

    def _run(self) -> None:
        import openvino_genai

        running = openvino_genai.GenerationStatus.RUNNING
        while True:
            with self._handover:
                while not (self._new or self._cancelled or self._live):
                    self._handover.wait()
                new, self._new = self._new, []
                cancelled, self._cancelled = self._cancelled, []
            for request in new:
                self._last_key += 1
                try:
                    request.handle = self._pipeline.add_request(
                        self._last_key, request.prompt, request.options
                    )
                except Exception as error:  # its reader gets the error
                    request.ids.put(error)
                    continue
                request.key = self._last_key
                self._live[request.key] = request
            for request in cancelled:
                if request.key in self._live:
                    request.handle.cancel()
            if not self._live:
                continue
            try:
                self._pipeline.step()
            except Exception as error:  # every reader gets the error
                for request in self._live.values():
                    request.ids.put(error)
                self._live.clear()
                continue
            for key, request in list(self._live.items()):
                handle = request.handle
                finished = handle.get_status() != running
                if handle.can_read():
                    for output in handle.read().values():
                        for token in output.generated_ids:
                            request.ids.put(int(token))
                if finished:
                    request.ids.put(None)
                    del self._live[key]


def _token_ids(request: _Request, steps: _Stepper, budget: int, eos: set[int]) -> Iterator[int]:
    """The request's ids as the pipeline makes them, with an EOS id after an early end that
    did not produce one; closing this before the end stops the request."""
    produced, last, ended = 0, None, False
    try:
        while (token := request.ids.get()) is not None:
            if isinstance(token, BaseException):
                ended = True  # the pipeline dropped it already
                raise GenerationError(f"OpenVINO failed while generating: {token}") from token
            produced, last = produced + 1, token
            yield token
        ended = True
        if produced < budget and last not in eos:
            yield min(eos)
    finally:
        if not ended:
            steps.cancel(request)
