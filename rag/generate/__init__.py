"""Generators: one interface (`Generator.stream`), local transformers and OpenAI-compatible HTTP."""

from rag.generate.base import Delta, GenerationConfig, GenerationResult, Generator

__all__ = ["Delta", "GenerationConfig", "GenerationResult", "Generator"]
