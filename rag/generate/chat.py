"""What every local backend shares about a prompt: the chat template, the token budget, EOS ids.

The transformers backend and the native CPU engines render a chat with the same Hugging Face
tokenizer and the same rules (a system message always; a plain transcript for a model without a
template), so a prompt is token-for-token the same whichever engine decodes it.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rag.errors import ConfigError, GenerationError
from rag.generate.base import Delta
from rag.generate.detokenize import TextStream
from rag.types import Message

#: Sent when the caller gives no system message: chat templates otherwise inject their own
#: (Qwen's says "You are Qwen, created by Alibaba Cloud").
DEFAULT_SYSTEM = "You are a helpful assistant."
#: Longest prompt + answer we plan for, whatever the model config allows: the KV cache and the
#: attention cost grow with it, and CPU decoding past a few thousand tokens is impractically slow.
MAX_CONTEXT = 8192


def render_chat(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The prompt text the model sees: the chat template, always with a system message."""
    chat = [{"role": m.role, "content": m.content} for m in with_system(messages)]
    if tokenizer.chat_template:
        return str(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
    # A base model without a template: a plain transcript it can continue.
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in chat]
    return "\n\n".join([*lines, "Assistant:"])


def with_system(messages: Sequence[Message]) -> list[Message]:
    """``messages`` as a prompt renders them: opening with the caller's system message, or
    ``DEFAULT_SYSTEM`` when there is none."""
    if messages and messages[0].role == "system":
        return list(messages)
    return [Message(role="system", content=DEFAULT_SYSTEM), *messages]


def system_text(messages: Sequence[Message]) -> str:
    """The system message a rendered prompt opens with."""
    return with_system(messages)[0].content


def system_turn(tokenizer: Any, system: str) -> str:
    """The system turn alone, rendered (what every prompt with this system message starts
    with); empty without a chat template."""
    if not tokenizer.chat_template:
        return ""
    turn = [{"role": "system", "content": system}]
    return str(tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=False))


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as the model reads it (the template already holds the specials)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def eos_ids(generation_eos: int | Sequence[int] | None, tokenizer: Any) -> set[int]:
    """The ids that end a turn: the generation config's EOS ids and the tokenizer's EOS."""
    ids: Iterable[int]
    if generation_eos is None:
        ids = ()
    elif isinstance(generation_eos, int):
        ids = (generation_eos,)
    else:
        ids = generation_eos
    found = {int(i) for i in ids}
    if tokenizer.eos_token_id is not None:
        found.add(int(tokenizer.eos_token_id))
    return found


class ChatPrompts:
    """Prompt methods for a backend whose ``tokenizer`` is the model's Hugging Face tokenizer."""

    @property
    def tokenizer(self) -> Any:
        raise NotImplementedError

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees: the chat template, always with a system message."""
        return render_chat(self.tokenizer, messages)

    def encode(self, messages: Sequence[Message]) -> list[int]:
        return encode_text(self.tokenizer, self.render(messages))

    def count_tokens(self, text: str) -> int:
        return len(encode_text(self.tokenizer, text))

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.encode(messages))


def check_local_options(adapter: Path | None, max_context: int) -> None:
    """A LoRA adapter folder (what peft saves) or None, and a usable context cap."""
    if max_context < 16:
        raise ConfigError(f"max_context must be >= 16, got {max_context}")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise ConfigError(
            f"{adapter} is not a LoRA adapter folder (no adapter_config.json); "
            "pass the folder `rag finetune` wrote"
        )


def checked_prompt(
    token_ids: Sequence[int], *, vocab: int, max_new_tokens: int, limit: int, what: str
) -> list[int]:
    """``token_ids`` as ints, checked for an engine: not empty, in the vocabulary, and room for
    ``max_new_tokens`` within ``limit`` (``what`` names the limit in the error)."""
    prompt = [int(token) for token in token_ids]
    if not prompt:
        raise ConfigError("the prompt is empty: pass at least one token id")
    if not all(0 <= token < vocab for token in prompt):
        raise ConfigError(f"prompt token ids must be in [0, {vocab})")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if len(prompt) + max_new_tokens > limit:
        raise ConfigError(
            f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds {what}"
        )
    return prompt


class _Queued(Protocol):
    out: queue.SimpleQueue[Any]
    cancelled: bool


def drain(request: _Queued, failure: str) -> Iterator[int]:
    """The token ids an engine thread puts on ``request.out`` (lists of ids, then None, or an
    exception); stopping early marks the request cancelled, so the engine frees its slot."""
    try:
        while True:
            item = request.out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise GenerationError(f"{failure}: {item}") from item
            yield from item
    finally:
        request.cancelled = True


def answer_budget(name: str, window: int, prompt_tokens: int, max_new_tokens: int) -> int:
    """New tokens the answer may take: ``max_new_tokens``, or less when the window is nearly full.

    A prompt that leaves no room is an error that says how to shorten it.
    """
    room = window - prompt_tokens
    if room < 1:
        raise GenerationError(
            f"The prompt has {prompt_tokens} tokens but {name} attends to {window}: retrieve "
            "fewer passages (--k), use fewer examples (--shots) or shorten the history"
        )
    return min(max_new_tokens, room)


def stream_deltas(
    tokens: Iterator[int], text: TextStream, eos: set[int], prompt: Sequence[int]
) -> Iterator[Delta]:
    """The deltas of one answer from its token ids: text as it becomes final, then the counts.

    Stops at an EOS id or a stop string; the token iterator is closed then (or when the caller
    stops reading), which frees the engine's slot at once rather than at garbage collection.
    """
    produced, finish = 0, "length"
    try:
        for token in tokens:
            produced += 1
            if token in eos:
                finish = "stop"
                break
            piece = text.push(token)
            if piece:
                yield Delta(text=piece)
            if text.stopped:
                finish = "stop"
                break
    finally:
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
    yield Delta(
        text=text.finish(),
        finish_reason=finish,
        prompt_tokens=len(prompt),
        completion_tokens=produced,
    )
