"""The OpenAI-compatible backend against a small fake server on the loopback interface."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rag.errors import ConfigError, GenerationError
from rag.generate import GenerationConfig, Remote, load_generator
from rag.generate.openai_backend import OpenAIGenerator
from rag.types import Message
from tests.processes import handler_server

PIECES = ["Paris", " is the", " capital [1]", ". ✓"]


class FakeServer(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeServer.requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if self.path == "/v1/chat/completions":
            self._stream(body)
        elif self.path == "/broken/chat/completions":
            self._send(500, "application/json", b'{"error": {"message": "model not loaded"}}')
        elif self.path == "/garbage/chat/completions":
            self._send(200, "text/event-stream", b"data: <html>oops</html>\n\n")
        else:
            self._send(404, "text/plain", b"no such route")

    def _send(self, status: int, kind: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": ping\n\n")
        for piece in PIECES:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        usage = {"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 5}}
        for event in (final, usage):
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with handler_server(FakeServer) as url:
        yield url


MESSAGES = [Message("system", "Answer briefly."), Message("user", "Capital of France?")]


def test_streams_deltas_and_reports_usage(server: str) -> None:
    generator = OpenAIGenerator("remote-model", base_url=f"{server}/v1/", api_key="secret")
    config = GenerationConfig(max_new_tokens=5, stop=("\n\n",), seed=3)
    deltas = list(generator.stream(MESSAGES, config))
    assert [d.text for d in deltas[:-1]] == PIECES
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == ("length", 17, 5)
    request = FakeServer.requests[-1]
    assert request["auth"] == "Bearer secret"
    body = request["body"]
    assert body["model"] == "remote-model" and body["stream"] is True
    assert body["messages"][1] == {"role": "user", "content": "Capital of France?"}
    assert (body["max_tokens"], body["stop"], body["seed"], body["temperature"]) == (
        5,
        ["\n\n"],
        3,
        0.0,
    )
    result = generator.generate(MESSAGES, config)
    assert result.text == "".join(PIECES) and result.first_token_ms is not None


def test_http_error_names_the_url_and_what_to_check(server: str) -> None:
    generator = OpenAIGenerator("remote-model", base_url=f"{server}/broken")
    with pytest.raises(GenerationError) as caught:
        generator.generate(MESSAGES, GenerationConfig())
    message = str(caught.value)
    assert f"{server}/broken/chat/completions" in message
    assert "HTTP 500" in message and "model not loaded" in message and "model name" in message


def test_unreachable_server_says_to_check_it_runs() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = OpenAIGenerator("m", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(GenerationError, match=rf"Cannot reach .*127\.0\.0\.1:{port}/v1.*running"):
        generator.generate(MESSAGES, GenerationConfig())


def test_a_non_json_event_is_a_clear_error(server: str) -> None:
    generator = OpenAIGenerator("m", base_url=f"{server}/garbage")
    with pytest.raises(GenerationError, match=r"not JSON.*OpenAI-compatible"):
        generator.generate(MESSAGES, GenerationConfig())


def test_load_generator_picks_the_http_backend(tmp_path: Path) -> None:
    remote = Remote("http://127.0.0.1:9/v1", context_window=2048)
    generator = load_generator("any-model", cache_dir=tmp_path, remote=remote)
    assert isinstance(generator, OpenAIGenerator) and generator.name == "any-model"
    assert generator.context_window == 2048, "a given window is not asked of the server"
    with pytest.raises(ConfigError, match="adapter"):
        load_generator("m", cache_dir=tmp_path, remote=remote, adapter=tmp_path)
    with pytest.raises(ConfigError, match="http"):
        OpenAIGenerator("m", base_url="localhost:8000/v1")
