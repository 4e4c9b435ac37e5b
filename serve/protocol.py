"""HTTP connections must finish their request headers in time (the slowloris defence).

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) but not a request whose
headers never end: a connection that sends nothing, or one header byte now and then, stays open
for good, and enough of them use up the server's sockets (uvicorn's issue 157 lists
"timeout-request-start" as still to do; ``h11_max_incomplete_event_size`` bounds the header's
size, not its time). `HeaderTimeoutProtocol` is uvicorn's httptools protocol with that timer: armed
when a connection opens and when a request begins, disarmed once its headers are complete. When it
fires the client gets a 408 and the connection closes. A request whose headers are complete is
never cut, however long its body, its queueing or its streamed answer take.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serve.http_errors import error_body

#: Seconds a client has to send a request's headers (``RAG_HEADER_TIMEOUT``).
DEFAULT_HEADER_TIMEOUT = 10.0


class HeaderTimeoutConfig(uvicorn.Config):
    """uvicorn's config with ``header_timeout`` and the protocol that enforces it."""

    def __init__(
        self, app: Any, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any
    ) -> None:
        if not header_timeout > 0:
            raise ValueError(f"header_timeout must be > 0, got {header_timeout}")
        super().__init__(app, http=HeaderTimeoutProtocol, **kwargs)
        self.header_timeout = header_timeout


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """A connection that is closed (408) when a request's headers take too long to arrive."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout = float(getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a pipelined request waits behind a response still being sent
            return
        message = f"Request headers not received within {self.header_timeout:g} s."
        body = json.dumps(error_body(408, message, code="request_timeout")).encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()
