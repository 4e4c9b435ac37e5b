"""The token budget of a remote model: its context window and the size of a prompt there.

A prompt that does not fit is truncated or refused by the server, so neither figure is guessed
silently. The context window is ``--context-window`` when given, else what the server reports
(vLLM: ``max_model_len`` in ``/v1/models``; llama.cpp's llama-server: ``n_ctx`` in ``/props``;
TGI: ``max_total_tokens`` in ``/info``), else an error that asks for the flag.

Prompt tokens are counted, in this order of preference:

1. by the server: vLLM's ``/tokenize`` renders the chat template itself (exact); llama-server's
   ``/apply-template`` + ``/tokenize`` likewise; llama-cpp-python's ``/extras/tokenize/count``
   counts the text, and the template's tokens are added (``TEMPLATE_TOKENS`` per message);
2. by the local tokenizer of a registry model named with ``--tokenizer`` (exact when the
   server runs that model);
3. by a conservative estimate: ``CHARS_PER_TOKEN`` bytes of UTF-8 per token (BPE vocabularies
   average about 4 characters per English token) plus the template's tokens. A prompt the
   server still finds too long fails with an error that names the flags that fix it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from rag.errors import ConfigError, GenerationError
from rag.generate.remote import Remote
from rag.types import Message

log = logging.getLogger("rag.generate")

#: Template tokens around one message's content, at most among common chat templates (ChatML,
#: Llama 3, Gemma: 4-6), plus the generation prompt's once.
TEMPLATE_TOKENS = 8
#: UTF-8 bytes per token in the estimate: below the ~4 of English text, for numbers and code.
CHARS_PER_TOKEN = 3


class RemoteTokens:
    """Context window and token counts of the model ``model`` behind ``v1_url`` (ends in /v1)."""

    def __init__(
        self, client: httpx.Client, v1_url: str, model: str, remote: Remote, cache_dir: Path | None
    ) -> None:
        self.client = client
        self.v1 = v1_url.rstrip("/")
        self.root = self.v1.removesuffix("/v1")
        self.model = model
        self.remote = remote
        self.cache_dir = cache_dir
        self._window = remote.context_window
        #: How prompts are counted (see the module docstring), chosen on first use.
        self.method: str | None = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    # -- the context window --------------------------------------------------------------------

    @property
    def known_window(self) -> int | None:
        """The window if given or already learned (never asks the server)."""
        return self._window

    @property
    def window(self) -> int:
        if self._window is None:
            self._window = self._reported_window()
        return self._window

    def _reported_window(self) -> int:
        models = self._get(f"{self.v1}/models") or {}
        entries = [e for e in models.get("data") or [] if isinstance(e, dict)]
        chosen = [e for e in entries if e.get("id") == self.model] or entries[:1]
        for entry in chosen:
            if isinstance(entry.get("max_model_len"), int):
                return int(entry["max_model_len"])
        props = self._get(f"{self.root}/props") or {}
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        if isinstance(n_ctx, int) and n_ctx > 0:
            return n_ctx
        info = self._get(f"{self.root}/info") or {}
        if isinstance(info.get("max_total_tokens"), int):
            return int(info["max_total_tokens"])
        raise ConfigError(
            f"the server at {self.v1} does not say how many tokens its model attends to: pass "
            "--context-window N with what it was started with (llama-cpp-python: --n_ctx; "
            "llama-server: -c; vLLM: --max-model-len), or set RAG_CONTEXT_WINDOW"
        )

    # -- counting ------------------------------------------------------------------------------

    def count_chat(self, messages: Sequence[Message]) -> int:
        return int(self._count(0, messages))

    def count_text(self, text: str) -> int:
        return int(self._count(1, text))

    def _count(self, which: int, what: Any) -> Any:
        counter: Callable[[Any], int] = self._counters()[which]
        try:
            return counter(what)
        except _NotHere as error:
            raise GenerationError(
                f"{error} stopped answering token counts ({self.method}); check the server's logs"
            ) from None

    def _counters(self) -> tuple[Callable[[Sequence[Message]], int], Callable[[str], int]]:
        with self._lock:
            if self.method is None:
                self.method = self._choose()
        return {
            "vllm": (self._vllm_chat, self._vllm_text),
            "llama-server": (self._llama_server_chat, self._llama_server_text),
            "llama-cpp-python": (self._extras_chat, self._extras_text),
            "tokenizer": (self._tokenizer_chat, self._tokenizer_text),
            "estimate": (_estimate_chat, _estimate_text),
        }[self.method]

    def _choose(self) -> str:
        probe = [Message("user", "hi")]
        for method, works in (
            ("vllm", lambda: self._vllm_chat(probe)),
            ("llama-server", lambda: self._llama_server_chat(probe)),
            ("llama-cpp-python", lambda: self._extras_text("hi")),
        ):
            try:
                works()
            except _NotHere:
                continue
            log.info("counting prompt tokens with %s's tokenize endpoint at %s", method, self.root)
            return method
        if self.remote.tokenizer:
            return "tokenizer"
        log.warning(
            "%s has no tokenize endpoint: prompt tokens are estimated (%d bytes per token); "
            "pass --tokenizer NAME (a registry model) to count them exactly",
            self.root,
            CHARS_PER_TOKEN,
        )
        return "estimate"

    def _vllm_chat(self, messages: Sequence[Message]) -> int:
        body = {"model": self.model, "messages": _plain(messages), "add_generation_prompt": True}
        return int(self._post(f"{self.root}/tokenize", body, "count"))

    def _vllm_text(self, text: str) -> int:
        body = {"model": self.model, "prompt": text, "add_special_tokens": False}
        return int(self._post(f"{self.root}/tokenize", body, "count"))

    def _llama_server_chat(self, messages: Sequence[Message]) -> int:
        prompt = self._post(f"{self.root}/apply-template", {"messages": _plain(messages)}, "prompt")
        return self._llama_server_text(str(prompt), add_special=True)

    def _llama_server_text(self, text: str, add_special: bool = False) -> int:
        body = {"content": text, "add_special": add_special}
        return len(self._post(f"{self.root}/tokenize", body, "tokens"))

    def _extras_chat(self, messages: Sequence[Message]) -> int:
        text = "\n".join(m.content for m in messages)
        return self._extras_text(text) + TEMPLATE_TOKENS * (len(messages) + 1)

    def _extras_text(self, text: str) -> int:
        body = {"input": text, "model": self.model}
        return int(self._post(f"{self.root}/extras/tokenize/count", body, "count"))

    def _local_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from rag.models import model_folder

            if self.cache_dir is None:
                raise ConfigError("--tokenizer needs the cache folder of the converted models")
            assert self.remote.tokenizer is not None
            folder = model_folder(self.remote.tokenizer, self.cache_dir)
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        return self._tokenizer

    def _tokenizer_chat(self, messages: Sequence[Message]) -> int:
        ids = self._local_tokenizer().apply_chat_template(
            _plain(messages), add_generation_prompt=True, tokenize=True
        )
        # transformers 5 returns a BatchEncoding (a mapping), 4.x a list of ids.
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def _tokenizer_text(self, text: str) -> int:
        return len(self._local_tokenizer().encode(text, add_special_tokens=False))

    # -- HTTP ----------------------------------------------------------------------------------

    def _get(self, url: str) -> dict[str, Any] | None:
        """The JSON object at ``url``, or None where the server has no such endpoint."""
        data = self._json(self._send("GET", url))
        return data if isinstance(data, dict) else None

    def _post(self, url: str, body: dict[str, Any], field: str) -> Any:
        """``field`` of the JSON answer to ``body``; _NotHere when the server lacks the route."""
        data = self._json(self._send("POST", url, json=body))
        if not isinstance(data, dict) or field not in data:
            raise _NotHere(url)
        return data[field]

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise GenerationError(
                f"Cannot reach the generation server at {url}: {error}. Check that it is "
                "running and that --base-url is right (it usually ends in /v1)"
            ) from error

    @staticmethod
    def _json(reply: httpx.Response) -> Any:
        if reply.status_code != 200:
            return None
        try:
            return reply.json()
        except ValueError:
            return None


class _NotHere(Exception):
    """The server has no such endpoint (or answers it with something else)."""


def _plain(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _estimate_text(text: str) -> int:
    return max(1, math.ceil(len(text.encode("utf-8")) / CHARS_PER_TOKEN))


def _estimate_chat(messages: Sequence[Message]) -> int:
    content = sum(_estimate_text(m.content) for m in messages)
    return content + TEMPLATE_TOKENS * (len(messages) + 1)
