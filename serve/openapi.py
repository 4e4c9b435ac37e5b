"""The OpenAPI document says what the server does: its answers' shapes and its error statuses.

FastAPI documents a 422 for every invalid request; this server answers 400 in OpenAI's error
shape, so the document is rewritten to say that, and every route lists the other statuses it can
answer (401 with keys set, 413 past the body limit, 503 while loading, and its own). The answers'
shapes are pydantic models used for the document only (the routes build plain dicts, see
`serve.schemas`); the fuzz test (Schemathesis) holds live answers against them.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

# The dataclasses the routes serialize with asdict() describe themselves.
from rag.store import DocumentInfo
from rag.types import Timings
from rag.variants import VariantConfig

# -- answers -----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error, in OpenAI's shape."""

    error: ErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    description: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Passage(BaseModel):
    chunk_id: int
    doc_id: str
    title: str
    source: str
    page: int | None
    heading_path: list[str]
    text: str


class Source(Passage):
    """A cited passage: what a ``[marker]`` in the answer points at."""

    marker: int
    inferred: bool


class ScoredPassage(Passage):
    score: float
    scores: dict[str, float]
    ranks: dict[str, int]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str
    refusal: None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: str


class CompletionTimings(BaseModel):
    retrieve_ms: float
    first_token_ms: float | None
    total_ms: float


class ChatCompletion(BaseModel):
    """OpenAI's chat completion, plus ``sources``, ``variant``, ``refused``, ``warnings`` and
    ``timings``. With ``stream`` the answer is ``text/event-stream`` chunks instead."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[Choice]
    usage: Usage
    sources: list[Source]
    variant: VariantConfig
    refused: bool
    warnings: list[str]
    timings: CompletionTimings


class AskAnswer(BaseModel):
    model: str
    variant: VariantConfig
    answer: str
    refused: bool
    citations: list[Source]
    hits: list[ScoredPassage]
    query: str
    timings: Timings
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    dropped: list[str]
    invalid_markers: list[int]
    warnings: list[str]


class SearchResults(BaseModel):
    query: str
    hits: list[ScoredPassage]
    retrieve_ms: float


class DocumentList(BaseModel):
    object: Literal["list"]
    data: list[DocumentInfo]
    generation: str


class FileFailure(BaseModel):
    path: str
    reason: str


class IngestTotals(BaseModel):
    added: int
    updated: int
    removed: int
    unchanged: int
    failed: list[FileFailure]
    chunks: int
    embedded: int
    seconds: float


class UploadedFile(BaseModel):
    name: str
    status: Literal["added", "updated", "unchanged", "failed"]
    #: The documents it became (``uploads/<name>``; JSON files: one per record).
    ids: list[str]
    reason: str | None = None


class UploadSummary(BaseModel):
    object: Literal["ingest.summary"]
    files: list[UploadedFile]
    summary: IngestTotals


class DeletedDocument(BaseModel):
    object: Literal["document.deleted"]
    id: str
    summary: IngestTotals


#: One server-sent event of a streamed completion (an OpenAPI 3.1 event-stream schema describes
#: each event): its data is a `chat.completion.chunk` (or an error) as JSON, and the last is
#: ``[DONE]``.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
    "required": ["data"],
}

# -- statuses ----------------------------------------------------------------------------------

_SAID = {
    400: "Invalid request: a wrong type, an out-of-range or unsupported parameter, bad Unicode",
    401: "Missing or wrong API key (when the server has keys)",
    404: "No such model or document",
    409: "The index is busy with another writer, or the server has no index folder",
    413: "Request body (or upload) over the server's limit",
    429: "Every generation slot and queue place is taken (see Retry-After)",
    500: "A bug: the server log has the details",
    503: "The model is still loading (or failed to load)",
}
#: Every route can answer these (validation, keys, body limit, bugs, loading).
_EVERYWHERE = (400, 401, 413, 500, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can also answer ``statuses``, each in the error shape."""
    return {status: {"model": ErrorResponse, "description": _SAID[status]} for status in statuses}


def answers(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route whose success is ``model`` and whose own errors ``statuses``."""
    return {200: {"model": model}, **errors(*statuses)}


def install_openapi(app: FastAPI) -> None:
    """Serve an OpenAPI document with 400 (not 422) and the shared error statuses on every
    operation."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        error_schema = ErrorResponse.model_json_schema(ref_template=_REF)
        schemas.update(error_schema.pop("$defs", {}))
        schemas.setdefault("ErrorResponse", error_schema)
        error_ref = {"$ref": _REF.format(model="ErrorResponse")}
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status in _EVERYWHERE:
                    responses.setdefault(
                        str(status),
                        {
                            "description": _SAID[status],
                            "content": {"application/json": {"schema": error_ref}},
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = document  # type: ignore[method-assign]


_REF = "#/components/schemas/{model}"
