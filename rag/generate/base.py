"""The generator interface: chat messages in, streamed text out.

One required method, ``stream``. The base class supplies ``generate`` (the joined stream) and
``generate_batch`` (a loop; backends that can batch override it).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.errors import ConfigError
from rag.types import Message


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode. ``temperature == 0`` means greedy (the default)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Delta:
    """A piece of streamed output.

    Every delta but the last carries text. The last one carries ``finish_reason`` (``"stop"`` or
    ``"length"``) and the token counts, and may carry text too.
    """

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    first_token_ms: float | None
    total_ms: float


class Generator(ABC):
    """A chat model. Cheap to construct; heavy state loads in ``warm_up()`` or on first use."""

    name: str = "generator"
    #: What decodes: ``transformers``, ``ctranslate2``, ``llama.cpp``, ``openai`` (logs, benches).
    engine: str = "generator"
    #: Tokens the model can attend to, prompt and answer together.
    context_window: int = 2048

    @abstractmethod
    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        """Yield the answer as it is decoded; the last delta has ``finish_reason`` set."""

    def warm_up(self) -> None:
        """Load weights now rather than on the first request."""

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as this model counts them (a rough estimate by default)."""
        return max(1, len(text) // 4)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the rendered chat prompt will take (template overhead included)."""
        return sum(self.count_tokens(m.content) + 4 for m in messages) + 2

    def generate(self, messages: Sequence[Message], config: GenerationConfig) -> GenerationResult:
        started = time.perf_counter()
        collected = DeltaCollector(started)
        for delta in self.stream(messages, config):
            collected.add(delta)
        return collected.result()

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        """Answer several prompts; backends that batch on the device override this."""
        return [self.generate(messages, config) for messages in batch]


class DeltaCollector:
    """The deltas of one stream joined into a ``GenerationResult``, timed from ``started``."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parts: list[str] = []
        self.first_ms: float | None = None
        self.last: Delta | None = None
        self.finished_at: float | None = None

    def add(self, delta: Delta) -> bool:
        """Take one delta; True when it was the last (it carries the finish reason)."""
        now = time.perf_counter()
        if delta.text:
            if self.first_ms is None:
                self.first_ms = (now - self.started) * 1000
            self.parts.append(delta.text)
        if delta.finish_reason is None:
            return False
        self.last, self.finished_at = delta, now
        return True

    def result(self) -> GenerationResult:
        last = self.last or Delta(finish_reason="stop")
        finished_at = self.finished_at or time.perf_counter()
        return GenerationResult(
            text="".join(self.parts),
            finish_reason=last.finish_reason or "stop",
            prompt_tokens=last.prompt_tokens or 0,
            completion_tokens=last.completion_tokens or 0,
            first_token_ms=self.first_ms,
            total_ms=(finished_at - self.started) * 1000,
        )
