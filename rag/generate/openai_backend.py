"""A generator behind an OpenAI-compatible HTTP endpoint (vLLM, TGI, llama.cpp server, Ollama).

The path past one machine: the model runs in a serving engine, and this backend speaks the
``/chat/completions`` protocol to it, streaming over server-sent events. Failures become
GenerationError naming the URL and what to check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from rag.errors import ConfigError, GenerationError
from rag.generate.base import Delta, GenerationConfig, Generator
from rag.types import Message


class OpenAIGenerator(Generator):
    """Chat completions from ``base_url`` (the part before ``/chat/completions``, e.g.
    ``http://localhost:8000/v1``). ``context_window`` is what the server's model attends to;
    the protocol does not say, so it is given."""

    engine = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        context_window: int = 4096,
        timeout_s: float = 120.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url must start with http:// or https://, got {base_url!r} "
                "(e.g. http://localhost:8000/v1)"
            )
        if context_window < 16:
            raise ConfigError(f"context_window must be >= 16, got {context_window}")
        self.name = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.context_window = context_window
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10))

    def _body(self, messages: Sequence[Message], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if config.seed is not None:
            body["seed"] = config.seed
        return body

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        finish: str | None = None
        usage: dict[str, Any] | None = None
        pieces = 0
        try:
            with self._client.stream("POST", self.url, json=self._body(messages, config)) as reply:
                if reply.status_code >= 400:
                    detail = reply.read().decode("utf-8", "replace")[:500]
                    raise GenerationError(
                        f"{self.url} answered HTTP {reply.status_code}: {detail}. Check the "
                        f"model name ({self.name}), the API key and the server's logs"
                    )
                for data in _sse_data(reply.iter_lines()):
                    if data == "[DONE]":
                        break
                    chunk = self._parse(data)
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if text:
                            pieces += 1
                            yield Delta(text=text)
        except httpx.TimeoutException as error:
            raise GenerationError(
                f"{self.url} did not answer in time ({error}). Check that the server is not "
                "overloaded, or lower max_new_tokens"
            ) from error
        except httpx.HTTPError as error:
            raise GenerationError(
                f"Cannot reach the generation server at {self.url}: {error}. Check that it is "
                "running and that --base-url is right (it usually ends in /v1)"
            ) from error
        prompt_tokens = (usage or {}).get("prompt_tokens") or self.count_prompt_tokens(messages)
        completion_tokens = (usage or {}).get("completion_tokens") or pieces
        yield Delta(
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
        )

    def _parse(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as error:
            raise GenerationError(
                f"{self.url} sent a stream event that is not JSON ({data[:200]!r}). Check that "
                "it is an OpenAI-compatible /chat/completions endpoint"
            ) from error
        if not isinstance(chunk, dict):
            raise GenerationError(f"{self.url} sent an unexpected stream event: {data[:200]!r}")
        if "error" in chunk:
            raise GenerationError(f"{self.url} reported an error mid-stream: {chunk['error']}")
        return chunk

    def close(self) -> None:
        self._client.close()


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream (multi-line events joined)."""
    buffer: list[str] = []
    for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
        elif line.startswith("data:"):
            buffer.append(line[5:].removeprefix(" "))
        # comments (": ping"), event:, id: and retry: lines carry nothing we use
    if buffer:
        yield "\n".join(buffer)
