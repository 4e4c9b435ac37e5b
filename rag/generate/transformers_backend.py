"""The local generator: a Hugging Face causal LM, on CUDA (bf16) when present, else CPU (fp32).

The token loop is one replaceable function, ``decode_steps(prompts, config)``, that yields the
next token of every prompt at each step. Everything around it (chat template, stopping, streaming
text, counting) stays here, so a faster loop for one device (the CUDA engine) can be swapped in
by assigning ``generator.decode_steps`` without touching the rest. The CPU loop below is plain
and correct: one forward per step over a dynamic KV cache, left padding for batches.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag.errors import ConfigError, GenerationError
from rag.generate.base import Delta, GenerationConfig, GenerationResult, Generator
from rag.generate.chat import DEFAULT_SYSTEM as DEFAULT_SYSTEM  # re-exported
from rag.generate.chat import (
    MAX_CONTEXT,
    ChatPrompts,
    answer_budget,
    check_local_options,
    eos_ids,
    stream_deltas,
)
from rag.generate.detokenize import TextStream
from rag.types import Message

#: ``decode_steps(prompts, config)``: yields, per step, the next token id of every prompt.
DecodeSteps = Callable[[Sequence[Sequence[int]], GenerationConfig], Iterator[list[int]]]


class TransformersGenerator(ChatPrompts, Generator):
    """A chat model loaded with transformers from a registry name, a local folder or a hub id.

    ``model`` and ``tokenizer`` load on first use (or ``warm_up()``); fine-tuning code reaches
    them there. ``adapter`` is a LoRA folder written by peft; it is merged into the weights.
    """

    engine = "transformers"

    def __init__(
        self,
        name_or_path: str,
        *,
        cache_dir: Path,
        device: str | None = None,
        adapter: Path | None = None,
        max_context: int = MAX_CONTEXT,
    ) -> None:
        device = device or None  # "" (the settings' default) also means "CUDA when present"
        if device is not None and device != "cpu" and not device.startswith("cuda"):
            raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        check_local_options(adapter, max_context)
        self.name = name_or_path
        self.cache_dir = cache_dir
        self.adapter = adapter
        self._requested_device = device
        self._max_context = max_context
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos: set[int] = set()
        self._cache_arg = "past_key_values"
        self.decode_steps: DecodeSteps = self._decode_steps

    # -- loading -----------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._requested_device is None:
            import torch

            self._requested_device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._requested_device

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.warm_up()
        return self._tokenizer

    @property
    def context_window(self) -> int:
        """The model's ``max_position_embeddings``, capped at ``max_context``."""
        config = self.model.config
        window = getattr(config, "max_position_embeddings", None) or 2048
        return int(min(window, self._max_context))

    @context_window.setter
    def context_window(self, tokens: int) -> None:
        self._max_context = tokens

    def warm_up(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rag.models import model_folder

        folder = str(model_folder(self.name, self.cache_dir))
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except OSError as error:
            raise GenerationError(
                f"Could not load model {self.name} from {folder}: {error}. "
                "Check the folder holds a Hugging Face causal LM (config.json, weights, tokenizer)"
            ) from error
        if self.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(self.adapter)).merge_and_unload()
        model.to(self.device).eval()
        self._eos = eos_ids(model.generation_config.eos_token_id, tokenizer)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        forward_args = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._tokenizer, self._model = tokenizer, model
        if self.device.startswith("cuda"):
            from rag.generate.engine import DecodeEngine

            # On a GPU the static-cache engine (CUDA graphs, batching of concurrent requests)
            # replaces the plain loop; it is thread-safe, so concurrent streams decode together.
            if DecodeEngine.supports(model):
                engine = DecodeEngine(model, max_batch=8, max_len=self.context_window)
                self.decode_steps = engine.decode_steps

    # -- generation --------------------------------------------------------------------------

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        prompt = self.encode(messages)
        budget = self._budget(len(prompt), config)
        steps = self.decode_steps([prompt], _with_budget(config, budget))
        text = TextStream(self.tokenizer, config.stop)
        yield from stream_deltas(_first_row(steps), text, self._eos, prompt)

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        """Answer all prompts in one left-padded batch; greedy results match ``generate``."""
        if not batch:
            return []
        started = time.perf_counter()
        prompts = [self.encode(messages) for messages in batch]
        budget = min(self._budget(len(p), config) for p in prompts)
        texts = [TextStream(self.tokenizer, config.stop) for _ in prompts]
        produced = [0] * len(prompts)
        finish = ["length"] * len(prompts)
        done = [False] * len(prompts)
        first_ms: float | None = None
        steps = self.decode_steps(prompts, _with_budget(config, budget))
        try:
            for step in steps:
                if first_ms is None:
                    first_ms = (time.perf_counter() - started) * 1000
                for row, token in enumerate(step):
                    if done[row]:
                        continue
                    produced[row] += 1
                    if token in self._eos:
                        done[row], finish[row] = True, "stop"
                        continue
                    texts[row].push(token)
                    if texts[row].stopped:
                        done[row], finish[row] = True, "stop"
                if all(done):
                    break
        finally:
            _close(steps)
        total_ms = (time.perf_counter() - started) * 1000
        results = []
        for row, prompt in enumerate(prompts):
            texts[row].finish()
            results.append(
                GenerationResult(
                    text=texts[row].text,
                    finish_reason=finish[row],
                    prompt_tokens=len(prompt),
                    completion_tokens=produced[row],
                    first_token_ms=first_ms,
                    total_ms=total_ms,
                )
            )
        return results

    def _budget(self, prompt_tokens: int, config: GenerationConfig) -> int:
        return answer_budget(self.name, self.context_window, prompt_tokens, config.max_new_tokens)

    def _decode_steps(
        self, prompts: Sequence[Sequence[int]], config: GenerationConfig
    ) -> Iterator[list[int]]:
        """The CPU (and fallback) token loop: a dynamic KV cache, one forward per step."""
        import torch
        from transformers import DynamicCache

        model, device = self.model, self.device
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        rng = None
        if config.temperature > 0 and config.seed is not None:
            rng = torch.Generator(device=device).manual_seed(config.seed)
        # The cache is filled in place; transformers renamed the argument that takes it
        # (``past_key_values`` before 5.24, ``cache`` after), so pass it by the model's name.
        cache = {self._cache_arg: DynamicCache(config=model.config)}
        for _ in range(config.max_new_tokens):
            # Inference mode around each step, never around the yield: the caller's code between
            # tokens must not run with autograd switched off.
            with torch.inference_mode():
                out = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                    **cache,
                )
                next_ids = pick_tokens(out.logits[:, -1, :].float(), config, rng)
                ids = next_ids[:, None]
                mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
                positions = positions[:, -1:] + 1
                tokens = next_ids.tolist()
            yield tokens


def pick_tokens(logits: Any, config: GenerationConfig, rng: Any = None) -> Any:
    """The next token per row: argmax when greedy, else temperature + nucleus (top-p) sampling."""
    import torch

    if config.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / config.temperature, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest set whose mass reaches top_p (the first token always stays).
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > config.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=rng).squeeze(-1)


def _first_row(steps: Iterator[list[int]]) -> Iterator[int]:
    """The tokens of a one-prompt decode; closing it closes the steps (frees the KV cache or
    the engine slot now, not at garbage collection)."""
    try:
        for step in steps:
            yield step[0]
    finally:
        _close(steps)


def _close(steps: Iterator[list[int]]) -> None:
    close = getattr(steps, "close", None)
    if close is not None:
        close()


def _with_budget(config: GenerationConfig, max_new_tokens: int) -> GenerationConfig:
    return replace(config, max_new_tokens=max_new_tokens)
