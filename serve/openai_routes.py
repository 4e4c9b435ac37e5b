"""The OpenAI-compatible API: `POST /v1/chat/completions` (streaming or not) and `GET /v1/models`.

Any OpenAI client works against it. The ``model`` field picks a variant by the name the
evaluation's report uses (`rag-few-shot` when absent; `GET /v1/models` lists them). Two extra
top-level fields ride along: ``sources`` (the cited passages) and ``variant`` (the configuration
the answer ran with: retrieval, shots, k, adapter), on the response and on the last streamed
chunk (the one carrying ``finish_reason``), where OpenAI clients keep them as extra attributes
and otherwise ignore them. Retrieval settings (``k``, ``shots``, ``mode``, ``min_score``,
``mmr``, ``source_glob``, ``doc_ids``) are accepted as extensions (``extra_body``).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from rag.errors import RagError
from rag.types import Answer
from rag.variants import VariantConfig
from serve.answering import AnswerStream, ClientGone, complete_answer, open_answer
from serve.deps import AppMetrics, State
from serve.http_errors import ApiError, error_body, log, rag_error_fields
from serve.openapi import SSE_EVENT, ChatCompletion, ModelList, answers, errors
from serve.schemas import ChatRequest, sources_json, usage_json

router = APIRouter()

#: Said when the client left before the answer was ready (nginx's "client closed request").
CLIENT_CLOSED = 499
DONE = "data: [DONE]\n\n"
#: Completion ids: unique per process start, cheap to make (no system call per request).
_ID_PREFIX = uuid.uuid4().hex[:12]
_ids = itertools.count(1)


@router.get("/v1/models", responses=answers(ModelList))
def list_models(state: State) -> dict[str, Any]:
    created = int(state.loaded_at or time.time())
    return {
        "object": "list",
        "data": [
            {
                "id": v.name,
                "object": "model",
                "created": created,
                "owned_by": "rag",
                "description": f"{state.config.model_name}: {v.description}",
            }
            for v in state.variants()
        ],
    }


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={
        200: {
            "model": ChatCompletion,
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
            "description": "The answer; with `stream`, server-sent chunks ending in [DONE]",
        },
        **errors(404, 429),
    },
)
async def chat_completions(
    body: ChatRequest, request: Request, state: State, metrics: AppMetrics
) -> Response:
    limits = state.config.limits
    limits.check_conversation([m.text() for m in body.messages])
    max_tokens = body.max_completion_tokens or body.max_tokens
    limits.check_max_tokens(max_tokens)
    last = body.messages[-1]
    if last.role != "user":
        raise ApiError(
            400,
            f"The last message must come from the user (got role '{last.role}').",
            param="messages",
        )
    question = last.text()
    if not question.strip():
        raise ApiError(400, "The last message is empty: ask something.", param="messages")
    variant = state.variant(body.model)
    config, options = body.options(
        variant,
        max_tokens=max_tokens,
        stop=body.stop_strings(),
        answering=state.config.answering,
    )
    history = [m.to_message() for m in body.messages[:-1]]
    completion = _Completion(config)
    try:
        if not body.stream:
            final = await complete_answer(
                request, state, metrics, variant, question, history=history, options=options
            )
            return JSONResponse(completion.response(final))
        answer, first = await open_answer(
            request, state, metrics, variant, question, history=history, options=options
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    return StreamingResponse(
        _sse(answer, first, completion, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    answer: AnswerStream, first: str | Answer | None, completion: _Completion, include_usage: bool
) -> AsyncIterator[str]:
    """OpenAI's chunk sequence: role, content deltas, finish (+ sources), [usage], [DONE].

    Deltas that are ready together go out in one write.
    """
    done = False
    try:
        events = [_event(completion.chunk({"role": "assistant", "content": ""}))]
        items: list[str | Answer] = [] if first is None else [first]
        while items:
            for item in items:
                if isinstance(item, str):
                    if item:
                        events.append(_event(completion.chunk({"content": item})))
                    continue
                finish = completion.chunk({}, finish_reason=item.finish_reason)
                finish["sources"] = sources_json(item)
                finish["variant"] = completion.variant.to_dict()
                if item.warnings:
                    finish["warnings"] = list(item.warnings)
                events.append(_event(finish))
                if include_usage:
                    usage = {**completion.chunk({}), "choices": [], "usage": usage_json(item)}
                    events.append(_event(usage))
                events.append(DONE)
                done = True
            yield "".join(events)
            events = []
            items = [] if done else await answer.batch()
    except RagError as error:
        status, message, code = rag_error_fields(error)
        yield _event(error_body(status, message, code=code))
    except Exception:
        log.exception("streaming a chat completion failed")
        yield _event(error_body(500, "Generation failed; the server log has the details."))
    finally:
        # Runs when the stream ends and when the client disconnects (the task is cancelled).
        answer.close()
    if not done:
        yield DONE


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


class _Completion:
    """The id, timestamp and variant shared by every chunk of one completion."""

    def __init__(self, variant: VariantConfig) -> None:
        self.id = f"chatcmpl-{_ID_PREFIX}{next(_ids):x}"
        self.created = int(time.time())
        self.variant = variant

    def _head(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.variant.name,
            "system_fingerprint": None,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def response(self, answer: Answer) -> dict[str, Any]:
        message = {"role": "assistant", "content": answer.text, "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": answer.finish_reason,
        }
        return {
            **self._head("chat.completion"),
            "choices": [choice],
            "usage": usage_json(answer),
            "sources": sources_json(answer),
            "variant": self.variant.to_dict(),
            "refused": answer.refused,
            "warnings": list(answer.warnings),
            "timings": {
                "retrieve_ms": answer.timings.retrieve_ms,
                "first_token_ms": answer.timings.first_token_ms,
                "total_ms": answer.timings.total_ms,
            },
        }
