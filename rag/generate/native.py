"""The part of a native (non-torch) backend that is not the engine: prompts in, text out.

A native engine takes token ids and returns token ids. Everything around that is here and is
the transformers backend's own code: the prompt is rendered and tokenized by the model's Hugging
Face tokenizer (same chat template, same system message), prompt tokens are counted with it for
the budget, the window comes from the model's config, and ids become text through the same
``TextStream`` (whole characters, stop strings held back across token boundaries). So every
backend sees the same prompt token for token.

A subclass loads its engine in ``warm_up`` and implements ``_tokens``.
"""

from __future__ import annotations

import json
import os
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import rag.generate.chat as chat
from rag.errors import ConfigError
from rag.generate.base import (
    Delta,
    DeltaCollector,
    GenerationConfig,
    GenerationResult,
    Generator,
)
from rag.generate.detokenize import TextStream
from rag.types import Message


class NativeGenerator(chat.ChatPrompts, Generator):
    """A registry model decoded by a native engine, with the registry's tokenizer around it.

    ``adapter`` is a peft LoRA folder; ``slots`` requests decode at once (more wait);
    ``threads`` per request defaults to every CPU this process may use; ``max_context`` caps
    the window read from the model's config.
    """

    #: The engine's name, as logs and `rag models` show it.
    engine = "native"
    #: Requests decoding at once when ``slots`` is not given.
    default_slots = 1

    def __init__(
        self,
        name: str,
        *,
        cache_dir: Path,
        slots: int | None = None,
        threads: int | None = None,
        adapter: Path | None = None,
        max_context: int = chat.MAX_CONTEXT,
    ) -> None:
        from rag.models import get_spec

        spec = get_spec(name)
        if spec.kind != "generator":
            raise ConfigError(f"{name} is an embedder, not a generator (try: smollm2-135m)")
        chat.check_local_options(adapter, max_context)
        for label, value in (("slots", slots), ("threads", threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{label} must be >= 1, got {value}")
        self.name = name
        self.cache_dir = cache_dir
        self.adapter = adapter
        self.slots = slots or self.default_slots
        self.threads = threads or len(os.sched_getaffinity(0))
        self._max_context = max_context
        self._tokenizer: Any = None
        self._window: int | None = None
        self.eos: set[int] = set()

    @abstractmethod
    def _tokens(self, prompt: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        """Start decoding ``prompt`` now; the new ids (an EOS id ends it); closing stops it."""

    # -- the tokenizer side ------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._load_tokenizer()
        return self._tokenizer

    @property
    def context_window(self) -> int:
        """The model's trained context (``max_position_embeddings``), capped at max_context."""
        if self._window is None:
            self._load_tokenizer()
        assert self._window is not None
        return self._window

    @context_window.setter
    def context_window(self, tokens: int) -> None:
        """Cap the window (an engine already loaded keeps its own, and refuses longer)."""
        self._max_context = tokens
        self._window = None

    def _load_tokenizer(self) -> None:
        from transformers import AutoTokenizer

        from rag.models import tokenizer_folder

        folder = tokenizer_folder(self.name, self.cache_dir)
        config = json.loads((folder / "config.json").read_text())
        generation_file = folder / "generation_config.json"
        generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        trained = int(config.get("max_position_embeddings") or 2048)
        eos = generation.get("eos_token_id", config.get("eos_token_id"))
        self.eos = chat.eos_ids(eos, tokenizer)
        self._window = min(trained, self._max_context)
        self._tokenizer = tokenizer

    # -- generation --------------------------------------------------------------------------

    def _start(self, prompt: list[int], config: GenerationConfig) -> Iterator[Delta]:
        window = self.context_window
        budget = chat.answer_budget(self.name, window, len(prompt), config.max_new_tokens)
        tokens = self._tokens(prompt, budget, config)
        return chat.stream_deltas(tokens, TextStream(self.tokenizer, config.stop), self.eos, prompt)

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        yield from self._start(self.encode(messages), config)

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        """Start every prompt at once, then read the streams in turn, one delta each.

        An engine that decodes concurrent requests together advances them all at once, so each
        answer's first-token and finish times are those of its own stream.
        """
        started = time.perf_counter()
        # ``_start`` calls ``_tokens`` at once: every prompt is queued before any is read.
        streams = [self._start(self.encode(messages), config) for messages in batch]
        collected = [DeltaCollector(started) for _ in streams]
        live = list(range(len(streams)))
        while live:
            for row in list(live):
                delta = next(streams[row], None)
                if delta is None or collected[row].add(delta):
                    live.remove(row)
        return [c.result() for c in collected]
