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

from rag.errors import ConfigError
from rag.generate.base import GenerationConfig
from rag.generate.chat import MAX_CONTEXT
from rag.generate.native import NativeGenerator

log = logging.getLogger("rag.generate")

#: Sequences decoding at once by default: on two cores four share a pass over the weights
#: for little more than the cost of one (decoding is memory-bound), and the KV cache stays small.
DEFAULT_SLOTS = 4


class LlamaCppGenerator(NativeGenerator):
    """A registry model's GGUF on llama.cpp; ``adapter`` is a peft LoRA folder applied on top.

    ``slots`` requests decode together (more wait); ``threads`` defaults to every CPU this
    process may use; ``max_context`` caps the window read from the model's config.
    """

    engine = "llama.cpp"

    def __init__(
        self,
        name: str,
        *,
        cache_dir: Path,
        adapter: Path | None = None,
        slots: int = DEFAULT_SLOTS,
        threads: int | None = None,
        max_context: int = MAX_CONTEXT,
    ) -> None:
        super().__init__(name, cache_dir=cache_dir, max_context=max_context)
        if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(
                f"{adapter} is not a LoRA adapter folder (no adapter_config.json); "
                "pass the folder `rag finetune` wrote"
            )
        if slots < 1:
            raise ConfigError(f"slots must be >= 1, got {slots}")
        self.adapter = adapter
        self.slots = slots
        self.threads = threads
        self._engine: Any = None

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
