"""A generator behind an OpenAI-compatible HTTP endpoint (vLLM, TGI, llama.cpp server, Ollama).

The path past one machine: the model runs in a serving engine, and this backend speaks the
``/chat/completions`` protocol to it, streaming over server-sent events. The prompt is fitted to
the remote model's own context window and counted with its own tokenizer where the server offers
one (`rag.generate.remote_tokens`). Failures become GenerationError naming the URL and what to
check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from rag.errors import GenerationError
from rag.generate.base import Delta, GenerationConfig, Generator
from rag.generate.remote import Remote
from rag.generate.remote_tokens import RemoteTokens
from rag.types import Message

#: Words in the error bodies vLLM, llama.cpp and TGI send for a prompt over the context window.
_TOO_LONG = ("context length", "context window", "maximum context", "exceed", "too long")


class OpenAIGenerator(Generator):
    """Chat completions from ``base_url`` (the part before ``/chat/completions``, e.g.
    ``http://localhost:8000/v1``). ``context_window`` is what the server's model attends to
    (None: ask the server); ``tokenizer`` a registry model that counts prompts when the server
    cannot (see `rag.generate.remote_tokens`)."""

    engine = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        context_window: int | None = None,
        tokenizer: str | None = None,
        cache_dir: Path | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        remote = Remote(base_url, api_key, context_window, tokenizer)
        self.name = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10))
        self.tokens = RemoteTokens(self._client, base_url, model, remote, cache_dir)

    @property
    def context_window(self) -> int:  # type: ignore[override]
        return self.tokens.window

    def warm_up(self) -> None:
        """Learn the context window now: a server that does not say it fails at start-up."""
        _ = self.tokens.window

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_text(text)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return self.tokens.count_chat(messages)

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
        done = False
        try:
            with self._client.stream("POST", self.url, json=self._body(messages, config)) as reply:
                if reply.status_code >= 400:
                    detail = reply.read().decode("utf-8", "replace")[:500]
                    if reply.status_code == 400 and any(w in detail.lower() for w in _TOO_LONG):
                        raise self._too_long(detail)
                    raise GenerationError(
                        f"{self.url} answered HTTP {reply.status_code}: {detail}. Check the "
                        f"model name ({self.name}), the API key and the server's logs"
                    )
                for data in _sse_data(reply.iter_lines()):
                    if data == "[DONE]":
                        done = True
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
        if not done and finish is None:
            # llama-cpp-python's server does this when the prompt overflows its context.
            raise self._too_long("the stream ended without a finish reason or [DONE]")
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

    def _too_long(self, detail: str) -> GenerationError:
        window = self.tokens.known_window
        assumed = f"{window} tokens assumed" if window else "its size not known here"
        counted = self.tokens.method or "not counted"
        return GenerationError(
            f"{self.url} could not take the prompt ({detail}): it is probably longer than the "
            f"model's context window ({assumed}; prompt tokens counted by: {counted}). Pass "
            "--context-window with the size the server was started with, and --tokenizer NAME "
            "if the server cannot count tokens"
        )

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
