"""Request bodies (validated by pydantic) and the JSON shapes of answers, hits and documents.

Requests ignore fields they do not know (OpenAI clients send `user`, `metadata`...), but reject
wrong types, out-of-range values and text that is not valid Unicode, so a client's mistake is a
400 that names the field. The OpenAI parameters this server does not implement (``n`` > 1, tools,
functions, a ``response_format`` other than text, log probabilities, penalties, ``logit_bias``)
are declared, so asking for one is a 400 ``unsupported_parameter`` naming it instead of an answer
that silently ignores it; their JSON schemas say which values are accepted. Responses are built
from the pipeline's dataclasses here, in one place, so the OpenAI and native routes describe a
passage the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rag.pipeline import AskOptions
from rag.settings import AnswerDefaults
from rag.types import Answer, Chunk, Hit, Message
from rag.variants import Variant, VariantConfig

# -- text fields ---------------------------------------------------------------------------------

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value: str) -> str:
    """JSON can spell a lone UTF-16 surrogate (``"\\ud800"``); no model or file can take one."""
    found = _LONE_SURROGATE.search(value)
    if found is not None:
        raise PydanticCustomError(
            "invalid_unicode",
            "holds a lone UTF-16 surrogate (U+{code}) at character {at}: send valid Unicode",
            {"code": f"{ord(found.group()):04X}", "at": found.start()},
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("invalid_value", "is empty: send some text")
    return value


#: Any text a client sends.
Text = Annotated[str, AfterValidator(_valid_unicode)]
#: Text that must say something (a question, a query): the schema says so too.
NonBlank = Annotated[
    str,
    AfterValidator(_valid_unicode),
    AfterValidator(_not_blank),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": "\\S"}),
]

# -- requests ----------------------------------------------------------------------------------


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts are accepted."""

    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None

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
    #: None: the server's default (its settings file, else 5); so for ``mode`` and ``shots``.
    k: int | None = Field(default=None, ge=0, le=100)
    source_glob: Text | None = Field(default=None, max_length=1_000)
    doc_ids: list[Annotated[Text, Field(max_length=1_000)]] = Field(
        default_factory=list, max_length=1_000
    )
    min_score: float | None = Field(default=None, allow_inf_nan=False)
    mmr: bool = False
    mode: Literal["hybrid", "dense", "keyword"] | None = None

    def _filters(self, defaults: AnswerDefaults) -> dict[str, Any]:
        return {
            "source_glob": self.source_glob,
            "doc_ids": tuple(self.doc_ids),
            "min_score": self.min_score,
            "mmr": self.mmr,
            "mode": self.mode or defaults.mode,
        }

    def _k(self, defaults: AnswerDefaults) -> int:
        return defaults.k if self.k is None else self.k

    def search_options(self, defaults: AnswerDefaults) -> AskOptions:
        return AskOptions(k=self._k(defaults), **self._filters(defaults))


def _model_named(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise PydanticCustomError(
            "invalid_value",
            "is empty: name a model from GET /v1/models, or leave the field out for the default",
        )
    return value


class AnswerSettings(Filters):
    """What both answering routes take besides the question: the variant and how to answer."""

    #: A variant name (`GET /v1/models`); none means the default.
    model: Annotated[
        Text | None,
        AfterValidator(_model_named),
        WithJsonSchema({"type": "string", "minLength": 1, "pattern": "\\S"}),
    ] = None
    #: Demonstrations for the variants that show them (the zero-shot ones show none).
    shots: int | None = Field(default=None, ge=0, le=20)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = None

    def options(
        self,
        variant: Variant,
        *,
        max_tokens: int | None,
        stop: tuple[str, ...] = (),
        answering: AnswerDefaults,
    ) -> tuple[VariantConfig, AskOptions]:
        """The configuration ``variant`` runs with for this request, and the pipeline's options
        (the one builder of both answering routes); what the request leaves out, ``answering``
        (the server's settings) fills in."""
        defaults = AskOptions()
        config = variant.configure(
            shots=answering.shots if self.shots is None else self.shots, k=self._k(answering)
        )
        options = config.options(
            **self._filters(answering),
            max_new_tokens=max_tokens or defaults.max_new_tokens,
            temperature=self.temperature or 0.0,
            top_p=defaults.top_p if self.top_p is None else self.top_p,
            seed=self.seed,
            stop=stop,
        )
        return config, options


def _off(value: Any) -> bool:
    return not value


def _one(value: Any) -> bool:
    return value in (None, 1)


def _none_choice(value: Any) -> bool:
    return value in (None, "none")


def _text_format(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and value.get("type") == "text")


_NOT_IMPLEMENTED = {
    "n": "this server returns one choice per request: send n=1 or leave it out",
    "tools": "tool calling is not supported: send no tools",
    "tool_choice": "tool calling is not supported: send no tool_choice (or 'none')",
    "functions": "function calling is not supported: send no functions",
    "function_call": "function calling is not supported: send no function_call (or 'none')",
    "response_format": "answers are plain text: send no response_format (or type 'text')",
    "logprobs": "log probabilities are not returned: send logprobs=false or leave it out",
    "top_logprobs": "log probabilities are not returned: leave top_logprobs out",
    "presence_penalty": "penalties are not implemented: send 0 or leave it out",
    "frequency_penalty": "penalties are not implemented: send 0 or leave it out",
    "logit_bias": "logit_bias is not implemented: leave it out",
}
_ACCEPTS: dict[str, Callable[[Any], bool]] = {
    "n": _one,
    "tool_choice": _none_choice,
    "function_call": _none_choice,
    "response_format": _text_format,
}


def _refused(
    name: str, schema: dict[str, Any], *, ge: float | None = None, le: float | None = None
) -> Any:
    """A declared OpenAI parameter of which this server implements only the values ``schema``
    allows (what the OpenAPI document shows); `ChatRequest._implemented` refuses the others."""
    return Field(
        default=None, ge=ge, le=le, description=_NOT_IMPLEMENTED[name], json_schema_extra=schema
    )


class ChatRequest(AnswerSettings):
    """OpenAI's chat completion request: the fields this server honours, and the ones it refuses
    (400 ``unsupported_parameter``) rather than ignore."""

    model_config = ConfigDict(extra="ignore", strict=True)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: Text | list[Text] | None = Field(default=None, max_length=4)
    n: int | None = _refused("n", {"maximum": 1}, ge=1)
    tools: list[Any] | None = _refused("tools", {"maxItems": 0})
    tool_choice: Any = _refused("tool_choice", {"enum": ["none", None]})
    functions: list[Any] | None = _refused("functions", {"maxItems": 0})
    function_call: Any = _refused("function_call", {"enum": ["none", None]})
    response_format: dict[str, Any] | None = _refused(
        "response_format", {"properties": {"type": {"const": "text"}}, "required": ["type"]}
    )
    logprobs: bool | None = _refused("logprobs", {"enum": [False, None]})
    top_logprobs: int | None = _refused("top_logprobs", {"maximum": 0}, ge=0, le=20)
    presence_penalty: float | None = _refused("presence_penalty", {"enum": [0, None]}, ge=-2, le=2)
    frequency_penalty: float | None = _refused(
        "frequency_penalty", {"enum": [0, None]}, ge=-2, le=2
    )
    logit_bias: dict[str, Any] | None = _refused("logit_bias", {"maxProperties": 0})

    @field_validator(*_NOT_IMPLEMENTED)
    @classmethod
    def _implemented(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        assert name is not None
        if not _ACCEPTS.get(name, _off)(value):
            raise PydanticCustomError(
                "unsupported_parameter", "unsupported: {why}", {"why": _NOT_IMPLEMENTED[name]}
            )
        return value

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)


class AskRequest(AnswerSettings):
    question: NonBlank
    history: list[ChatMessage] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)


class SearchRequest(Filters):
    query: NonBlank


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
