"""Engines' own high-level calls behind rag's ``NativeGenerator``, for the bench: llama-cpp-python's
``Llama`` and OpenVINO GenAI's ``LLMPipeline``.

What a user would run instead of rag, on the same weights and the same prompt token ids: the
yardstick for rag's overhead around an engine. Only the engine differs from rag's backends; the
tokenizer, EOS ids and text handling are rag's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.errors import GenerationError
from rag.generate.base import GenerationConfig, GenerationResult
from rag.generate.native import NativeGenerator
from rag.types import Message


class BareLlamaGenerator(NativeGenerator):
    engine = "llama-cpp-python Llama"

    def __init__(self, name: str, *, cache_dir: Path, threads: int | None = None) -> None:
        super().__init__(name, cache_dir=cache_dir)
        self.threads = threads or len(os.sched_getaffinity(0))
        self._llama: Any = None

    def warm_up(self) -> None:
        if self._llama is not None:
            return
        import llama_cpp.llama_cpp as low_level
        from llama_cpp import Llama

        from rag.generate.llamacpp_engine import system_info
        from rag.models import gguf_path

        if "AMX_INT8 = 1" in system_info():
            # rag's guard (see LlamaModel): Llama exposes no use_extra_bufts, so its default
            # params are patched; without this a build with AMX kernels crashes in these VMs.
            defaults = low_level.llama_model_default_params

            def without_extra_buffers() -> Any:
                params = defaults()
                params.use_extra_bufts = False
                return params

            low_level.llama_model_default_params = without_extra_buffers
        self._llama = Llama(
            str(gguf_path(self.name, self.cache_dir)),
            n_ctx=self.context_window,
            n_batch=512,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )

    def _tokens(self, prompt: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        self.warm_up()
        if config.seed is not None:
            self._llama.set_seed(config.seed)
        tokens = self._llama.generate(
            prompt, temp=config.temperature, top_p=config.top_p, top_k=0, reset=True
        )
        for produced, token in enumerate(tokens, 1):
            yield int(token)
            if produced >= budget or token in self.eos:
                return

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        """One after the other: a ``Llama`` holds one sequence (interleaving would mix them)."""
        return [self.generate(messages, config) for messages in batch]


class BareOpenVINOGenerator(NativeGenerator):
    """OpenVINO GenAI's own ``LLMPipeline`` on the Q8_0 GGUF rag's backend reads: one request at
    a time, no continuous batching or prefix cache, the engine call a user would make."""

    engine = "openvino LLMPipeline"

    def __init__(self, name: str, *, cache_dir: Path) -> None:
        super().__init__(name, cache_dir=cache_dir)
        self._pipeline: Any = None

    def warm_up(self) -> None:
        if self._pipeline is not None:
            return
        import openvino_genai

        from rag.generate.openvino_convert import openvino_gguf

        self.context_window  # noqa: B018 - loads the tokenizer first
        gguf = openvino_gguf(self.name, self.cache_dir)
        self._pipeline = openvino_genai.LLMPipeline(
            str(gguf), "CPU", INFERENCE_NUM_THREADS=self.threads
        )

    def _tokens(self, prompt: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        import queue
        import threading

        import numpy as np
        import openvino
        import openvino_genai

        from rag.generate.openvino_backend import request_options

        self.warm_up()
        options = request_options(budget, config, self.eos)
        ids: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        # Closing this stream (at an EOS id or a stop string) stops the pipeline at its next token
        # and waits for it: the pipeline takes one request at a time, and a call left running in
        # the background would overlap the next one (or still be running when the process exits).
        closed = threading.Event()

        class Streamer(openvino_genai.StreamerBase):
            def write(self, token: Any) -> Any:
                for one in token if isinstance(token, list) else [token]:
                    ids.put(int(one))
                if closed.is_set():
                    return openvino_genai.StreamingStatus.STOP
                return openvino_genai.StreamingStatus.RUNNING

            def end(self) -> None:
                ids.put(None)

        inputs = openvino.Tensor(np.asarray([prompt], dtype=np.int64))
        failed: list[BaseException] = []

        def run() -> None:
            try:
                self._pipeline.generate(inputs, options, Streamer())
            except BaseException as error:  # the reader raises it
                failed.append(error)
            finally:
                ids.put(None)  # after end()'s, or instead of it

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        produced = 0
        try:
            while (token := ids.get()) is not None:
                produced += 1
                yield token
        finally:
            closed.set()
            worker.join()
        if failed:
            raise GenerationError(f"OpenVINO's LLMPipeline failed: {failed[0]}") from failed[0]
        if produced < budget:
            yield min(self.eos)

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        """One after the other: the pipeline answers one request at a time."""
        return [self.generate(messages, config) for messages in batch]
