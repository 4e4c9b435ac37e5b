"""Request bodies (validated by pydantic) and the JSON shapes of answers, hits and documents.

Requests ignore fields they do not know (OpenAI clients send `n`, `user`, `top_p`...), but reject
wrong types, so a client's mistake is a 400 that names the field. Responses are built from the
pipeline's dataclasses here, in one place, so the OpenAI and native routes describe a passage the
same way.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.pipeline import AskOptions
from rag.types import Answer, Chunk, Hit, Message
from rag.variants import Variant, VariantConfig

# -- requests ----------------------------------------------------------------------------------


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts are accepted."""

    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def to_message(self) -> Message:
        role = "system" if self.role == "developer" else self.role
        return Message(role=role, content=self.text())


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class Filters(BaseModel):
    """Retrieval settings: of `/v1/search`, and of every answer (chat completions take them as
    extensions, which OpenAI clients send with ``extra_body``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    k: int = Field(default=5, ge=0, le=100)
    source_glob: str | None = None
    doc_ids: list[str] = Field(default_factory=list)
    min_score: float | None = None
    mmr: bool = False
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"

    def _filters(self) -> dict[str, Any]:
        return {
            "source_glob": self.source_glob,
            "doc_ids": tuple(self.doc_ids),
            "min_score": self.min_score,
            "mmr": self.mmr,
            "mode": self.mode,
        }

    def search_options(self) -> AskOptions:
        return AskOptions(k=self.k, **self._filters())


class AnswerSettings(Filters):
    """What both answering routes take besides the question: the variant and how to answer."""

    #: A variant name (`GET /v1/models`); none means the default.
    model: str | None = None
    #: Demonstrations for the variants that show them (the zero-shot ones show none).
    shots: int | None = Field(default=None, ge=0, le=20)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)

    def options(
        self, variant: Variant, *, max_tokens: int | None, stop: tuple[str, ...] = ()
    ) -> tuple[VariantConfig, AskOptions]:
        """The configuration ``variant`` runs with for this request, and the pipeline's options
        (the one builder of both answering routes)."""
        defaults = AskOptions()
        config = variant.configure(
            shots=defaults.shots if self.shots is None else self.shots, k=self.k
        )
        options = config.options(
            **self._filters(),
            max_new_tokens=max_tokens or defaults.max_new_tokens,
            temperature=self.temperature or 0.0,
            stop=stop,
        )
        return config, options


class ChatRequest(AnswerSettings):
    """OpenAI's chat completion request, the fields this server honours."""

    model_config = ConfigDict(extra="ignore", strict=True)
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)


class AskRequest(AnswerSettings):
    question: str
    history: list[ChatMessage] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)


class SearchRequest(Filters):
    query: str


# -- responses ---------------------------------------------------------------------------------


def chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.id,
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "source": chunk.source,
        "page": chunk.page,
        "heading_path": list(chunk.heading_path),
        "text": chunk.text,
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        **chunk_json(hit.chunk),
        "score": hit.score,
        "scores": dict(hit.scores),
        "ranks": dict(hit.ranks),
    }


def sources_json(answer: Answer) -> list[dict[str, Any]]:
    """The cited passages, by marker: what the chat page opens when a `[n]` is clicked."""
    return [
        {"marker": c.marker, "inferred": c.inferred, **chunk_json(c.chunk)}
        for c in answer.citations
    ]


def answer_json(answer: Answer, *, variant: VariantConfig) -> dict[str, Any]:
    return {
        "model": variant.name,
        "variant": variant.to_dict(),
        "answer": answer.text,
        "refused": answer.refused,
        "citations": sources_json(answer),
        "hits": [hit_json(h) for h in answer.hits],
        "query": answer.query,
        "timings": asdict(answer.timings),
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "finish_reason": answer.finish_reason,
        "dropped": list(answer.dropped),
        "invalid_markers": list(answer.invalid_markers),
        "warnings": list(answer.warnings),
    }


def usage_json(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }
