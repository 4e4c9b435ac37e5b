"""Request limits: how big a body, how many messages, how long each, how many tokens.

The body limit is an ASGI middleware, so an oversized request is refused (413) from its
`Content-Length` before it is read, and a body without one is cut off as soon as it passes the
limit. The conversation limits are checked by the routes and answered with a 400 that names the
limit, so a client knows what to shorten.

Characters are not work: a prompt's cost is its tokens (prefill is most of a CPU answer). So
before a request may wait for a generation slot, its question is counted in the model's tokens
and refused past ``max_prompt_tokens`` (400, with both numbers), and the oldest history beyond
that cap is dropped; the prompt builder then fits everything (demonstrations and passages too)
into the same cap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.http_errors import ApiError, error_body

if TYPE_CHECKING:
    from rag.generate.base import Generator
    from rag.types import Message as Turn

#: Tokens a chat template adds around one message (role markers), as the prompt counts them.
_PER_MESSAGE = 4


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 20_000_000
    max_messages: int = 64
    max_message_chars: int = 16_000
    max_new_tokens: int = 1024
    #: Most prompt tokens one request may cost (question, history, passages, demonstrations).
    max_prompt_tokens: int = 4096

    def __post_init__(self) -> None:
        names = ("max_body_bytes", "max_upload_bytes", "max_messages", "max_message_chars")
        for name in (*names, "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def check_conversation(self, contents: Sequence[str], param: str = "messages") -> None:
        """400 when there are too many messages or one is too long; the message names the limit."""
        if not contents:
            raise ApiError(400, f"'{param}' must hold at least one message.", param=param)
        if len(contents) > self.max_messages:
            raise ApiError(
                400,
                f"Too many messages: {len(contents)} (the limit is {self.max_messages}); "
                "drop older turns.",
                param=param,
                code="too_many_messages",
            )
        for number, content in enumerate(contents):
            if len(content) > self.max_message_chars:
                raise ApiError(
                    400,
                    f"Message {number} is {len(content)} characters long (the limit is "
                    f"{self.max_message_chars}); shorten it.",
                    param=f"{param}.{number}.content",
                    code="message_too_long",
                )

    def check_max_tokens(self, value: int | None, param: str = "max_tokens") -> None:
        if value is not None and value > self.max_new_tokens:
            raise ApiError(
                400,
                f"'{param}' is {value} (the limit is {self.max_new_tokens}).",
                param=param,
                code="max_tokens_too_large",
            )

    def fit_prompt(
        self,
        generator: Generator,
        question: str,
        history: Sequence[Turn],
    ) -> list[Turn]:
        """Before a slot is taken: 400 (``context_length_exceeded``) when the question alone
        passes ``max_prompt_tokens``; else the newest history that fits beside it.

        Blocking (it tokenizes): call it from a worker thread. Each message is counted once.
        """
        tokens = generator.count_tokens(question) + _PER_MESSAGE
        if tokens > self.max_prompt_tokens:
            raise ApiError(
                400,
                f"The question takes {tokens:,} prompt tokens; this server accepts at most "
                f"{self.max_prompt_tokens:,} per request (with passages and demonstrations). "
                "Shorten it.",
                code="context_length_exceeded",
            )
        room = self.max_prompt_tokens - tokens
        kept: list[Turn] = []
        for message in reversed(history):
            room -= generator.count_tokens(message.content) + _PER_MESSAGE
            if room < 0:
                break
            kept.append(message)
        return kept[::-1]


#: Room for multipart framing (boundaries, part headers) on top of the files' own bytes, which
#: the upload route limits exactly.
MULTIPART_ALLOWANCE = 64 * 1024


def _too_large(limit: int) -> str:
    return f"Request body too large: the limit is {limit} bytes."


class BodyLimitMiddleware:
    """413 for request bodies over the limit; uploads (``upload_prefix``) get their own limit."""

    def __init__(self, app: ASGIApp, *, limits: Limits, upload_prefix: str) -> None:
        self.app = app
        self.limits = limits
        self.upload_prefix = upload_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = str(scope.get("path", "")).startswith(self.upload_prefix)
        limit = (
            self.limits.max_upload_bytes + MULTIPART_ALLOWANCE
            if is_upload
            else self.limits.max_body_bytes
        )
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the route's body read; the HTTPException handler answers it.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(error_body(413, _too_large(limit), code="request_too_large")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
