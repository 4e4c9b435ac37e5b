"""A CPU generator: CTranslate2 with int8 weights, converted once from the registry's GGUF.

OpenVINO is the CPU default; ``auto`` comes here when it cannot run the model (an adapter it
cannot merge). Measured against llama.cpp on the same GGUF and transformers fp32
(`bench/cpu_generate.py`), CTranslate2's int8 matrix kernels read a prompt 1.5-2.5x faster than
both (and decode faster too), and a RAG answer is mostly prompt (about 700-1,500 tokens for some
30 of answer). Prompts and text are the
transformers backend's (``NativeGenerator``): same chat template, same token ids, same
``TextStream``; only the weights differ (int8 per channel, re-quantized from the GGUF blocks).

Concurrent requests run in ``slots`` parallel replicas of the model (the weights are shared), so
a second client starts at once instead of queueing behind the first; more wait in
CTranslate2's queue. CTranslate2's own batching is not used: it forwards a batch's prompts
together only up to the shortest one and steps through the rest token by token, which is slower
than answering RAG prompts of different lengths side by side.

Every prompt opens with the same system turn (the rules: about 110 tokens of a ~1,000-token bank
prompt), so each replica reads it once and keeps the model state after it (CTranslate2's
``static_prompt``); a request reads only what follows. The answers are the same token for token.
Answering one question at a time it saves ~0.3-0.5 s of a bank answer's first token (2.5 -> 2.0 s,
`bench/answer.py --whole-prompt`); the batched evaluation showed no gain within the noise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.generate.base import GenerationConfig
from rag.generate.chat import encode_text, system_text, system_turn
from rag.generate.native import NativeGenerator
from rag.types import Message

log = logging.getLogger("rag.generate")

#: Requests decoding at once by default. On two cores a second replica lets a second client
#: start without waiting; more would only split the same cores further.
DEFAULT_SLOTS = 2
#: Distinct system turns whose state the replicas keep (the answer and the closed-book rules, a
#: custom refusal), and the longest kept: CTranslate2 never drops one, and an API client's own
#: system messages could otherwise fill memory. Others are read with the rest of the prompt.
SYSTEM_TURNS = 4
SYSTEM_TURN_TOKENS = 512
#: System messages remembered as not kept (too long, or not a prefix), so as not to tokenize
#: them again; forgotten all at once when there are this many.
NOT_KEPT_MEMO = 256


class CT2Generator(NativeGenerator):
    """A registry model as a CTranslate2 int8 model; ``adapter`` (peft LoRA) merged into it.

    ``slots`` requests run at once in parallel replicas (more wait in CTranslate2's queue).
    """

    engine = "ctranslate2"
    default_slots = DEFAULT_SLOTS
    _generator: Any = None
    _folder: Path | None = None
    #: CTranslate2's seed is process-wide and read once per thread: see ``_seeded``.
    _seed_lock = threading.Lock()
    #: Keep the state after the system turn (off: every request reads its whole prompt).
    reuse_system_turn = True

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(name, **options)
        #: System message -> its turn's token ids, for the turns the replicas keep.
        self._turns: dict[str, tuple[int, ...]] = {}
        #: System messages looked at and not kept (``NOT_KEPT_MEMO``).
        self._not_kept: set[str] = set()

    def warm_up(self) -> None:
        if self._generator is not None:
            return

        from rag.generate.ct2_convert import ct2_folder

        started = time.perf_counter()
        self.context_window  # noqa: B018 - loads the tokenizer (and converts it) first
        self._folder = ct2_folder(self.name, self.cache_dir, self.adapter)
        self._generator = self._load(self.slots)
        log.info(
            "generator %s: CTranslate2 int8 on the CPU (%d threads, %d slots%s), ready in %.1f s",
            self.name,
            self.threads,
            self.slots,
            f", LoRA {self.adapter} merged" if self.adapter else "",
            time.perf_counter() - started,
        )

    def _load(self, replicas: int) -> Any:
        import ctranslate2

        return ctranslate2.Generator(
            str(self._folder),
            device="cpu",
            compute_type="int8",
            inter_threads=replicas,
            intra_threads=self.threads,
        )

    def encode(self, messages: Sequence[Message]) -> list[int]:
        ids = super().encode(messages)
        if self.reuse_system_turn:
            self._learn_system_turn(messages, ids)
        return ids

    def _learn_system_turn(self, messages: Sequence[Message], ids: list[int]) -> None:
        """Remember the ids of this prompt's system turn, when they are a prefix of it (a
        template might render a lone system message differently)."""
        key = system_text(messages)
        if key in self._turns or key in self._not_kept or len(self._turns) >= SYSTEM_TURNS:
            return
        turn = tuple(encode_text(self.tokenizer, system_turn(self.tokenizer, key)))
        fits = 0 < len(turn) <= min(SYSTEM_TURN_TOKENS, len(ids) - 1)
        if fits and tuple(ids[: len(turn)]) == turn:
            self._turns[key] = turn
            return
        if len(self._not_kept) >= NOT_KEPT_MEMO:
            self._not_kept.clear()
        self._not_kept.add(key)

    def _static_prefix(self, prompt: list[int]) -> int:
        """How many of ``prompt``'s first ids are a system turn the replicas keep."""
        for turn in self._turns.values():
            if len(turn) < len(prompt) and tuple(prompt[: len(turn)]) == turn:
                return len(turn)
        return 0

    def _tokens(self, prompt: list[int], budget: int, config: GenerationConfig) -> Iterator[int]:
        self.warm_up()
        greedy = config.temperature == 0
        options: dict[str, Any] = {
            "max_length": budget,
            "end_token": sorted(self.eos),
            "sampling_topk": 1 if greedy else 0,
            "sampling_topp": config.top_p,
            "sampling_temperature": 1.0 if greedy else config.temperature,
        }
        pieces = self.tokenizer.convert_ids_to_tokens(prompt)
        static = self._static_prefix(prompt) if self.reuse_system_turn else 0
        if static:
            options["static_prompt"], pieces = pieces[:static], pieces[static:]
        end = min(self.eos)
        if greedy or config.seed is None:
            return _token_ids(self._generator.generate_tokens(pieces, **options), budget, end)
        return self._seeded(pieces, options, config.seed, budget, end)

    def _seeded(
        self, pieces: list[str], options: dict[str, Any], seed: int, budget: int, end: int
    ) -> Iterator[int]:
        """A seeded sample on a private replica.

        CTranslate2 seeds each worker thread's random generator once, from the process-wide
        seed, when the thread first samples; the shared replicas' threads are seeded already.
        A fresh replica's thread reads the seed at its first step, which runs under the lock
        right after the seed is set. Loading it costs about a second.
        """
        import ctranslate2

        with self._seed_lock:
            ctranslate2.set_random_seed(seed)
            private = self._load(1)
            steps = private.generate_tokens(pieces, **options)
            first = next(steps, None)
        yield from _token_ids(steps, budget, end, first)
        del private  # the replica lives as long as its decoding


def _token_ids(steps: Iterator[Any], budget: int, end: int, first: Any = None) -> Iterator[int]:
    """The ids of CTranslate2's step results, with an EOS id after an early end (CTranslate2
    stops at an end token without returning it); closing this stops the decoding."""
    produced = 0
    try:
        if first is not None:
            produced += 1
            yield first.token_id
        for step in steps:
            produced += 1
            yield step.token_id
        if produced < budget:
            yield end
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()
