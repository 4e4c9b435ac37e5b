"""The CPU generator: the registry's GGUF run as it ships by llama.cpp, prompts from transformers.

The prompt is rendered and tokenized by the model's Hugging Face tokenizer, exactly as the
transformers backend does it (same chat template, same system message), and the token ids go to
llama.cpp; text comes back through the same ``TextStream`` (whole characters, stop strings held
back across token boundaries). So the two backends see the same prompt token for token and
differ only in the arithmetic of the weights (4-6 bit GGUF blocks, int8 dot products, against
the de-quantized fp32 copy).

Requests from several threads decode together in one llama.cpp context (``LlamaCppEngine``);
``generate_batch`` submits all its prompts at once. A LoRA adapter from ``rag finetune`` is
converted to a GGUF adapter once (cached by its content hash) and applied on the fly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.generate.base import (
    Delta,
    DeltaCollector,
    GenerationConfig,
    GenerationResult,
    Generator,
)
from rag.generate.chat import (
    MAX_CONTEXT,
    answer_budget,
    encode_text,
    eos_ids,
    render_chat,
    stream_deltas,
)
from rag.generate.detokenize import TextStream
from rag.types import Message

log = logging.getLogger("rag.generate")

#: Sequences decoding at once by default: on two cores four share a pass over the weights
#: for little more than the cost of one (decoding is memory-bound), and the KV cache stays small.
DEFAULT_SLOTS = 4


class LlamaCppGenerator(Generator):
    """A registry model's GGUF on llama.cpp; ``adapter`` is a peft LoRA folder applied on top.

    ``slots`` requests decode together (more wait); ``threads`` defaults to every CPU this
    process may use; ``max_context`` caps the window read from the model's metadata.
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
        from rag.models import get_spec

        spec = get_spec(name)
        if spec.kind != "generator":
            raise ConfigError(f"{name} is an embedder, not a generator (try: smollm2-135m)")
        if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(
                f"{adapter} is not a LoRA adapter folder (no adapter_config.json); "
                "pass the folder `rag finetune` wrote"
            )
        if slots < 1:
            raise ConfigError(f"slots must be >= 1, got {slots}")
        if max_context < 16:
            raise ConfigError(f"max_context must be >= 16, got {max_context}")
        self.name = name
        self.cache_dir = cache_dir
        self.adapter = adapter
        self.slots = slots
        self.threads = threads
        self._max_context = max_context
        self._tokenizer: Any = None
        self._window: int | None = None
        self._eos: set[int] = set()
        self._engine: Any = None

    # -- loading -----------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._load_tokenizer()
        return self._tokenizer

    @property
    def context_window(self) -> int:
        """The model's trained context (its ``max_position_embeddings``), capped at max_context."""
        if self._window is None:
            self._load_tokenizer()
        assert self._window is not None
        return self._window

    @context_window.setter
    def context_window(self, tokens: int) -> None:
        if self._engine is not None:
            raise ConfigError("the context window is fixed once the engine is loaded")
        self._max_context = tokens
        self._window = None

    @property
    def engine_core(self) -> Any:
        """The ``LlamaCppEngine`` (loaded on first use)."""
        self.warm_up()
        return self._engine

    def _load_tokenizer(self) -> None:
        from transformers import AutoTokenizer

        from rag.models import tokenizer_folder

        folder = tokenizer_folder(self.name, self.cache_dir)
        config = json.loads((folder / "config.json").read_text())
        generation_file = folder / "generation_config.json"
        generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        trained = int(config.get("max_position_embeddings") or 2048)
        self._eos = eos_ids(generation.get("eos_token_id", config.get("eos_token_id")), tokenizer)
        self._window = min(trained, self._max_context)
        self._tokenizer = tokenizer

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

    # -- prompts -----------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text: the chat template, always with a system message."""
        return render_chat(self.tokenizer, messages)

    def encode(self, messages: Sequence[Message]) -> list[int]:
        return encode_text(self.tokenizer, self.render(messages))

    def count_tokens(self, text: str) -> int:
        return len(encode_text(self.tokenizer, text))

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.encode(messages))

    # -- generation --------------------------------------------------------------------------

    def _submit(self, prompt: list[int], config: GenerationConfig) -> Iterator[int]:
        budget = answer_budget(self.name, self.context_window, len(prompt), config.max_new_tokens)
        return self.engine_core.generate(
            prompt,
            max_new_tokens=budget,
            eos=sorted(self._eos),
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed,
        )

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        prompt = self.encode(messages)
        text = TextStream(self.tokenizer, config.stop)
        yield from stream_deltas(self._submit(prompt, config), text, self._eos, prompt)

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        """Submit every prompt at once (they decode together) and collect the answers."""
        started = time.perf_counter()
        prompts = [self.encode(messages) for messages in batch]
        streams = [
            stream_deltas(
                self._submit(prompt, config),
                TextStream(self.tokenizer, config.stop),
                self._eos,
                prompt,
            )
            for prompt in prompts
        ]
        collected = [DeltaCollector(started) for _ in prompts]
        live = list(range(len(prompts)))
        # Read the streams in turn, one delta each: they advance together in the engine, so
        # each answer's first-token and finish times are those of its own stream.
        while live:
            for row in list(live):
                delta = next(streams[row], None)
                if delta is None or collected[row].add(delta):
                    live.remove(row)
        return [c.result() for c in collected]
