"""The CPU generator: the registry's GGUF run as it ships by llama.cpp.

Prompts and text are the transformers backend's (``NativeGenerator``); only the arithmetic
differs: 4-6 bit GGUF blocks with int8 dot products, against the de-quantized fp32 copy.
Requests from several threads decode together in one llama.cpp context (``LlamaCppEngine``),
and ``generate_batch`` queues all its prompts at once. A LoRA adapter from ``rag finetune`` is
converted to a GGUF adapter once (cached by its content hash) and applied on the fly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.generate.base import GenerationConfig
from rag.generate.native import NativeGenerator

log = logging.getLogger("rag.generate")

#: Sequences decoding at once by default: on two cores four share a pass over the weights
#: for little more than the cost of one (decoding is memory-bound), and the KV cache stays small.
DEFAULT_SLOTS = 4


class LlamaCppGenerator(NativeGenerator):
    """A registry model's GGUF on llama.cpp; ``adapter`` (peft LoRA) applied on the fly.

    ``slots`` requests decode together in one batch (more wait for a slot).
    """

    engine = "llama.cpp"
    default_slots = DEFAULT_SLOTS
    _engine: Any = None

    @property
    def engine_core(self) -> Any:
        """The ``LlamaCppEngine`` (loaded on first use)."""
        self.warm_up()
        return self._engine

    def warm_up(self) -> None:
        if self._engine is not None:
            return
        from rag.generate.llamacpp_engine import LlamaCppEngine
        from rag.models import gguf_path

        started = time.perf_counter()
        window = self.context_window
        gguf = gguf_path(self.name, self.cache_dir)
        lora = None
        if self.adapter is not None:
            from rag.generate.lora_gguf import converted_adapter

            lora = converted_adapter(Path(self.adapter), gguf, self.cache_dir)
        self._engine = LlamaCppEngine(
            gguf, window=window, slots=self.slots, threads=self.threads, lora=lora
        )
        log.info(
            "generator %s: llama.cpp on the CPU (%s, %d threads, %d slots of %d tokens%s), "
            "loaded in %.1f s",
            self.name,
            gguf.name,
            self._engine.threads,
            self.slots,
            window,
            f", LoRA {self.adapter}" if self.adapter else "",
            time.perf_counter() - started,
        )

    def _tokens(self, prompt: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        return self.engine_core.generate(
            prompt,
            max_new_tokens=budget,
            eos=sorted(self.eos),
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
        )
