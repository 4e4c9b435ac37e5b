"""A decode engine for transformers causal LMs: static KV slots, CUDA graphs, batched requests.

Why: plain ``generate()`` spends a batch-1 token almost entirely in Python and kernel launches
(1.5% of the bandwidth floor on an H100, issue 6). Here a worker thread owns the model and runs
a scheduler (``engine_scheduler``) over ``max_batch`` slots of a static KV cache
(``engine_cache``):

- requests submitted together are prefilled together (left-padded, like ``generate``) and then
  decode together, one token per active slot per step; a request that arrives later joins as
  soon as a slot is free, and a finished (or abandoned) request frees its slot;
- on CUDA each decode step is one CUDA-graph replay (``engine_runner``) and the next token is
  chosen on the device (``engine_sampling``); the host reads the new tokens back only every
  ``sync_every`` steps, to stream them;
- on the CPU the same code runs without graphs, which is how the tests check it.

Greedy output is token-for-token what ``model.generate(do_sample=False)`` gives on the same
weights (up to float rounding between kernels). The engine yields token ids, the EOS token
included when one ends a request; text, stop strings and chat templates stay with the caller.
It handles models whose layers all use full attention with the ``sdpa`` or ``eager``
implementation (Llama, Qwen2, SmolLM2, ...); ``DecodeEngine.supports`` says so up front.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from rag.errors import ConfigError
from rag.generate.base import GenerationConfig
from rag.generate.chat import checked_prompt, drain
from rag.generate.engine_runner import DecodeRunner
from rag.generate.engine_scheduler import Request, Scheduler


class DecodeEngine:
    """Serve greedy or sampled decoding for one loaded model to any number of callers.

    ``max_batch`` slots decode at once; ``max_len`` bounds prompt + answer per slot (the KV
    cache takes ``max_batch * max_len`` tokens of memory); ``sync_every`` is how many tokens a
    stream receives at a time after the first. ``cuda_graphs`` defaults to on for CUDA models.
    ``compile_backend`` (e.g. ``"inductor"``) also compiles the step, at one shape only.
    ``prefill_tokens`` caps padded tokens per prefill forward when several requests arrive.
    Thread-safe: each call submits requests to the worker thread and reads its own queue.
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch: int = 8,
        max_len: int = 4096,
        sync_every: int = 8,
        cuda_graphs: bool | None = None,
        compile_backend: str | None = None,
        prefill_tokens: int = 16384,
    ) -> None:
        for name, value in (
            ("max_batch", max_batch),
            ("max_len", max_len),
            ("sync_every", sync_every),
            ("prefill_tokens", prefill_tokens),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        reason = unsupported_reason(model)
        if reason:
            raise ConfigError(f"DecodeEngine cannot run this model: {reason}")
        device = next(model.parameters()).device
        if cuda_graphs and device.type != "cuda":
            raise ConfigError(f"cuda_graphs needs a CUDA model, this one is on {device}")
        self.model = model
        self.max_batch = max_batch
        self.max_len = max_len
        self.sync_every = sync_every
        self.cuda_graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self.compile_backend = compile_backend
        self.prefill_tokens = prefill_tokens
        self._vocab = int(model.get_output_embeddings().weight.shape[0])
        self._scheduler = Scheduler(
            lambda: DecodeRunner(
                model,
                slots=max_batch,
                max_len=max_len,
                cuda_graphs=self.cuda_graphs,
                compile_backend=compile_backend,
            ),
            device=device,
            slots=max_batch,
            sync_every=sync_every,
            prefill_tokens=prefill_tokens,
        )

    @staticmethod
    def supports(model: Any) -> bool:
        """Whether this engine can decode ``model`` (else use ``generate``)."""
        return unsupported_reason(model) is None

    # -- the public calls --------------------------------------------------------------------

    def generate_stream(
        self,
        input_ids: Sequence[int],
        *,
        max_new_tokens: int = 256,
        eos_ids: Sequence[int] = (),
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> Generator[int, None, None]:
        """Submit one prompt now and iterate over its new token ids as they are decoded.

        Stops after an id in ``eos_ids`` (yielded) or ``max_new_tokens`` ids. Closing the
        iterator early frees the slot. ``temperature == 0`` is greedy; sampling with the same
        ``seed`` repeats itself.
        """
        request = self._submit(input_ids, max_new_tokens, eos_ids, temperature, top_p, seed)
        return self._drain(request)

    def generate_batch(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        eos_ids: Sequence[int] = (),
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[list[int]]:
        """Decode several prompts together; the new token ids of each, in order."""
        requests = [
            self._submit(p, max_new_tokens, eos_ids, temperature, top_p, seed) for p in prompts
        ]
        return [list(self._drain(request)) for request in requests]

    def decode_steps(
        self, prompts: Sequence[Sequence[int]], config: GenerationConfig
    ) -> Iterator[list[int]]:
        """The ``TransformersGenerator.decode_steps`` contract: per step, every prompt's token.

        All prompts run for ``config.max_new_tokens`` (the caller stops at EOS and stop
        strings and closes the iterator, which frees the slots).
        """
        streams = [
            self.generate_stream(
                prompt,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=config.seed,
            )
            for prompt in prompts
        ]
        try:
            for _ in range(config.max_new_tokens):
                yield [next(stream) for stream in streams]
        finally:
            for stream in streams:
                stream.close()

    # -- requests ----------------------------------------------------------------------------

    def _submit(
        self,
        input_ids: Sequence[int],
        max_new_tokens: int,
        eos_ids: Sequence[int],
        temperature: float,
        top_p: float,
        seed: int | None,
    ) -> Request:
        prompt = checked_prompt(
            input_ids,
            vocab=self._vocab,
            max_new_tokens=max_new_tokens,
            limit=self.max_len,
            what=f"the engine's max_len ({self.max_len}): shorten the prompt, lower "
            "max_new_tokens or build the engine with a larger max_len",
        )
        if temperature < 0 or not 0 < top_p <= 1:
            raise ConfigError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}"
            )
        if self.model.training:
            raise ConfigError("the model is in training mode: call model.eval() before decoding")
        request = Request(
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            eos=frozenset(int(token) for token in eos_ids),
            temperature=float(temperature),
            top_p=float(top_p),
            seed=random.getrandbits(32) if seed is None else int(seed),
        )
        self._scheduler.submit(request)
        return request

    @staticmethod
    def _drain(request: Request) -> Generator[int, None, None]:
        yield from drain(request, "The decode engine failed (retry, or run without it)")


def unsupported_reason(model: Any) -> str | None:
    """Why the engine cannot decode ``model``, or None when it can."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models are not supported"
    attention = getattr(config, "_attn_implementation", None)
    if attention not in ("sdpa", "eager"):
        return f"attention implementation {attention!r} (load it with attn_implementation='sdpa')"
    layer_types = getattr(config, "layer_types", None) or []
    if any(kind != "full_attention" for kind in layer_types) or (
        not layer_types and getattr(config, "sliding_window", None)
    ):
        return "sliding-window or hybrid attention layers (only full attention is supported)"
    return None
