"""The remote model's token budget against small scripted servers that answer like vLLM,
llama.cpp's llama-server, or neither (the real llama-cpp-python server is in
test_generate_llama_server.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from rag.errors import ConfigError, GenerationError
from rag.generate import GenerationConfig
from rag.generate.openai_backend import OpenAIGenerator
from rag.generate.remote_tokens import CHARS_PER_TOKEN, TEMPLATE_TOKENS
from rag.types import Message
from tests.processes import handler_server

MESSAGES = [Message("system", "Answer briefly."), Message("user", "Capital of France?")]


class Scripted(BaseHTTPRequestHandler):
    """Routes by kind: ``/vllm/...``, ``/llama/...``, ``/bare/...`` (the part after is the
    server's own path)."""

    calls: ClassVar[list[tuple[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, payload: Any, kind: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        kind, _, path = self.path.lstrip("/").partition("/")
        Scripted.calls.append((self.path, None))
        if kind == "vllm" and path == "v1/models":
            self._reply(200, {"data": [{"id": "m", "max_model_len": 32768}]})
        elif kind == "llama" and path == "v1/models":
            self._reply(200, {"data": [{"id": "m", "meta": {"n_ctx_train": 131072}}]})
        elif kind == "llama" and path == "props":
            self._reply(200, {"default_generation_settings": {"n_ctx": 4096}})
        elif path == "v1/models":
            self._reply(200, {"data": [{"id": "m"}]})
        else:
            self._reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kind, _, path = self.path.lstrip("/").partition("/")
        Scripted.calls.append((self.path, body))
        if kind == "vllm" and path == "tokenize":
            count = len(body["messages"]) * 10 if "messages" in body else len(body["prompt"])
            self._reply(200, {"count": count, "max_model_len": 32768, "tokens": []})
        elif kind == "llama" and path == "apply-template":
            self._reply(200, {"prompt": "|".join(m["content"] for m in body["messages"])})
        elif kind == "llama" and path == "tokenize" and "content" not in body:
            self._reply(500, {"error": {"message": '"content" must be provided'}})
        elif kind == "llama" and path == "tokenize":
            self._reply(200, {"tokens": list(range(len(body["content"].split("|")) * 7))})
        elif path == "v1/chat/completions" and kind == "overflow":
            message = "This model's maximum context length is 4096 tokens. However, you asked"
            self._reply(400, {"error": {"message": message}})
        elif path == "v1/chat/completions" and kind == "cut":
            self._reply(200, b"", kind="text/event-stream")  # what llama-cpp-python does
        else:
            self._reply(404, {"detail": "Not Found"})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with handler_server(Scripted) as url:
        yield url


def test_vllm_reports_its_window_and_counts_the_rendered_chat(server: str) -> None:
    generator = OpenAIGenerator("m", base_url=f"{server}/vllm/v1")
    assert generator.context_window == 32768
    assert generator.count_prompt_tokens(MESSAGES) == 20
    assert generator.tokens.method == "vllm"
    assert generator.count_tokens("abcde") == 5
    tokenized = [b for p, b in Scripted.calls if p == "/vllm/tokenize" and b and "messages" in b]
    assert tokenized[-1]["add_generation_prompt"] is True and tokenized[-1]["model"] == "m"


def test_llama_server_reports_n_ctx_and_counts_its_own_template(server: str) -> None:
    generator = OpenAIGenerator("m", base_url=f"{server}/llama/v1")
    assert generator.context_window == 4096, "the slot's n_ctx, not the training length"
    assert generator.count_prompt_tokens(MESSAGES) == 14
    assert generator.tokens.method == "llama-server"


def test_a_given_window_wins_and_a_server_that_does_not_say_asks_for_it(server: str) -> None:
    assert OpenAIGenerator("m", base_url=f"{server}/bare/v1", context_window=999).context_window
    generator = OpenAIGenerator("m", base_url=f"{server}/bare/v1")
    with pytest.raises(ConfigError, match="--context-window N"):
        generator.warm_up()


def test_without_a_tokenize_endpoint_the_estimate_is_conservative(server: str) -> None:
    generator = OpenAIGenerator("m", base_url=f"{server}/bare/v1", context_window=2048)
    text = "The quick brown fox jumps over the lazy dog. " * 10
    assert generator.count_tokens(text) == -(-len(text) // CHARS_PER_TOKEN)
    chat = [Message("user", text)]
    assert generator.count_prompt_tokens(chat) == generator.count_tokens(text) + 2 * TEMPLATE_TOKENS
    assert generator.tokens.method == "estimate"
    # ~100 words of English are ~100-120 tokens in BPE vocabularies: the estimate is above.
    assert generator.count_tokens(text) > 120


def test_a_prompt_the_server_finds_too_long_names_the_flags_that_fix_it(server: str) -> None:
    for kind in ("overflow", "cut"):
        generator = OpenAIGenerator("m", base_url=f"{server}/{kind}/v1", context_window=8192)
        with pytest.raises(GenerationError) as caught:
            generator.generate(MESSAGES, GenerationConfig())
        message = str(caught.value)
        assert "context window (8192 tokens assumed" in message, message
        assert "--context-window" in message and "--tokenizer" in message
