"""Every error the server returns, in OpenAI's format: `{"error": {message, type, param, code}}`.

OpenAI clients read that shape and show its message, so a client's mistake (bad JSON, a wrong
type, an unknown model, a full queue) arrives as a clear 4xx they can act on, never as a 500.
Domain errors (`RagError`) carry their own status and code; anything else is a bug: it is logged
and answered with a 500 in the same shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import RagError

log = logging.getLogger("serve")

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def error_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


class ApiError(Exception):
    """An HTTP error a route raises on purpose, with the OpenAI fields filled in."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": _encodable(message),
            "type": error_type(status),
            "param": None if param is None else _encodable(param),
            "code": code,
        }
    }


def _encodable(text: str) -> str:
    """``text`` as valid UTF-8: a message that quotes a client's lone surrogate must still send."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, code=code, param=param), status_code=status, headers=headers
    )


def rag_error_fields(error: RagError) -> tuple[int, str, str]:
    """(status, message, code) for a domain error."""
    return error.http_status, str(error) or type(error).__name__, error.code


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})
#: pydantic's error types for a value of the right type but outside what the field allows.
_RANGE_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "too_short",
        "too_long",
        "string_too_short",
        "string_too_long",
        "finite_number",
        "literal_error",
    }
)
#: Error types our own validators raise, passed on as the OpenAI ``code``.
_OWN_CODES = frozenset({"unsupported_parameter", "invalid_unicode", "invalid_value"})


def _code(error_type: str) -> str:
    if error_type == "missing":
        return "missing_required_parameter"
    if error_type in _OWN_CODES:
        return error_type
    return "invalid_value" if error_type in _RANGE_ERRORS else "invalid_type"


def _param(loc: Sequence[Any]) -> str | None:
    """``body.messages.0.content.str`` -> ``messages.0.content``: drop pydantic's union tags."""
    parts: list[str] = []
    for part in loc:
        text = str(part)
        if part == "body" and not parts:
            continue
        if text in _TYPE_TAGS or "[" in text or text[:1].isupper():
            break
        parts.append(text)
    return ".".join(parts) or None


def describe_validation(errors: Sequence[Any]) -> tuple[str, str | None, str]:
    """A one-line message, the offending parameter and a code for pydantic's error list."""
    # Our own validators' errors first: in a union (text or a list of parts) pydantic also
    # reports that the text was not the other member, which says nothing useful.
    ranked = sorted(errors, key=lambda e: dict(e).get("type") not in _OWN_CODES)
    first = dict(ranked[0]) if ranked else {}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "invalid JSON")
        loc = [part for part in first.get("loc", ()) if part != "body"]
        where = f" at character {loc[0]}" if loc else ""
        return f"Malformed JSON body: {detail}{where}. Send a JSON object.", None, "invalid_json"
    param = _param(first.get("loc", ()))
    msg = str(first.get("msg", "Invalid request"))
    if param is None:
        message = "The request body must be a JSON object (Content-Type: application/json)"
        return f"{message}: {msg}", None, "invalid_request"
    others = {_param(e.get("loc", ())) for e in errors} - {param}
    more = f" (and problems with {', '.join(sorted(map(str, others)))})" if others else ""
    return f"Invalid value for '{param}': {msg}{more}", param, _code(str(first.get("type")))


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception family to the OpenAI error shape."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status, exc.message, code=exc.code, param=exc.param, headers=exc.headers
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param, code = describe_validation(exc.errors())
        return error_response(400, message, code=code, param=param)

    async def on_rag_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RagError)
        status, message, code = rag_error_fields(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, message)
        return error_response(status, message, code=code)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route {request.method} {request.url.path}"
        return error_response(
            exc.status_code, message, code=_HTTP_CODES.get(exc.status_code), headers=exc.headers
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s crashed", request.method, request.url.path, exc_info=exc)
        return error_response(
            500, "Internal server error; the server log has the details.", code="internal_error"
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(RagError, on_rag_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
