"""Bearer-key authentication for every route but the probes and the chat page's static files.

An ASGI middleware rather than a route dependency, so nothing (a new route, `/metrics`, the
OpenAPI schema, a 404 probe) can be reached without a key by forgetting a decorator. Keys are
compared in constant time, all of them every time, so timing reveals neither a key nor which one
matched.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from serve.http_errors import error_body

#: Reachable without a key: liveness and readiness probes, and the chat page itself (its API
#: calls carry the key the user typed into it).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def key_matches(given: str, keys: Sequence[str]) -> bool:
    """Constant-time membership: every key is compared, whatever the outcome."""
    given_bytes = given.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode("utf-8"))
    return matched


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class ApiKeyMiddleware:
    """401 in OpenAI's error format unless ``Authorization: Bearer KEY`` holds a configured key."""

    def __init__(self, app: ASGIApp, *, keys: Sequence[str]) -> None:
        self.app = app
        self.keys = tuple(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or is_public(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if token is not None and key_matches(token, self.keys):
            await self.app(scope, receive, send)
            return
        message = (
            "Missing API key: send 'Authorization: Bearer YOUR_KEY'."
            if token is None
            else "Incorrect API key provided."
        )
        body = json.dumps(error_body(401, message, code="invalid_api_key")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="rag"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
