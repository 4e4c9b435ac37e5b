"""The device half of the decode engine: slot buffers, prefill, and the captured decode step.

Everything one decode step reads or writes lives in fixed buffers: the input token and position
of every slot, its sampling settings, and the ``SlotCache``. The step (forward, token choice,
advance) therefore has one memory layout for its whole life, and on CUDA it is captured once
per shape in a ``torch.cuda.CUDAGraph`` and replayed: one launch per token instead of hundreds,
and no host synchronisation. Shapes come in buckets, (active slots rounded up) x (attended length
rounded up to a power of two), so a lone request does not pay for 32 slots of attention over
the whole context. With ``compile_backend`` the step is also compiled (kernel fusion); it then
runs at one shape only (all slots, full length) so that it compiles once.

All methods run on the engine's worker thread, inside ``torch.inference_mode()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from rag.generate.engine_cache import SlotCache, decode_mask
from rag.generate.engine_sampling import select_tokens

#: Shortest attended-length bucket; shorter buckets save too little to be worth a graph each.
MIN_VIEW = 64


def cache_keyword(model: Any) -> str:
    """The forward's name for the KV cache: ``cache`` from transformers 5.2x, else the old one."""
    parameters = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def buckets(limit: int, start: int) -> list[int]:
    """Powers of two from ``start`` below ``limit``, then ``limit`` itself."""
    sizes, size = [], start
    while size < limit:
        sizes.append(size)
        size *= 2
    return [*sizes, limit]


def fit(size: int, sizes: Sequence[int]) -> int:
    """The smallest bucket that holds ``size``."""
    return next(bucket for bucket in sizes if bucket >= size)


class DecodeRunner:
    def __init__(
        self,
        model: Any,
        *,
        slots: int,
        max_len: int,
        cuda_graphs: bool,
        compile_backend: str | None,
    ) -> None:
        import torch

        self.model = model
        self.slots = slots
        self.max_len = max_len
        self.device = next(model.parameters()).device
        self.cuda_graphs = cuda_graphs
        self._cache_keyword = cache_keyword(model)
        self._additive_mask = model.config._attn_implementation == "eager"
        self._dtype = next(model.parameters()).dtype
        self.cache: SlotCache | None = None
        options = {"device": self.device}
        self.tokens = torch.zeros(slots, 1, dtype=torch.int64, **options)
        self.positions = torch.zeros(slots, dtype=torch.int64, **options)
        self.temperature = torch.zeros(slots, dtype=torch.float32, **options)
        self.top_p = torch.ones(slots, dtype=torch.float32, **options)
        self.seeds = torch.zeros(slots, dtype=torch.int64, **options)
        self._graphs: dict[tuple[int, int, bool], Any] = {}
        self._pool: Any = None
        if compile_backend is None:
            self.batch_sizes, self.view_lens = buckets(slots, 1), buckets(max_len, MIN_VIEW)
            self._decode = self._decode_eager
        else:
            self.batch_sizes, self.view_lens = [slots], [max_len]
            self._decode = torch.compile(self._decode_eager, backend=compile_backend)

    # -- prefill -----------------------------------------------------------------------------

    def prefill(
        self,
        rows: Sequence[int],
        prompts: Sequence[Sequence[int]],
        temperature: Sequence[float],
        top_p: Sequence[float],
        seeds: Sequence[int],
    ) -> list[int]:
        """Run the prompts (left-padded, as ``generate`` does), load their KV into ``rows``,
        and return each one's first new token."""
        import torch
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        prompt_cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_keyword: prompt_cache},
        )
        lengths = [len(p) for p in prompts]
        if self.cache is None:
            self.cache = SlotCache.like(prompt_cache, self.slots, self.max_len)
        self.cache.load(rows, prompt_cache, lengths)

        index = torch.tensor(list(rows), device=self.device)
        self.temperature[index] = torch.tensor(temperature, device=self.device)
        self.top_p[index] = torch.tensor(top_p, device=self.device)
        self.seeds[index] = torch.tensor(seeds, device=self.device)
        positions = torch.tensor(lengths, device=self.device)
        first = select_tokens(
            out.logits[:, -1, :],
            self.temperature[index],
            self.top_p[index],
            self.seeds[index],
            positions,
            sampling=any(t > 0 for t in temperature),
        )
        self.tokens[index, 0] = first
        self.positions[index] = positions
        return [int(token) for token in first.tolist()]

    # -- decode ------------------------------------------------------------------------------

    def step(self, rows: int, view_len: int, sampling: bool) -> None:
        """One token for slots ``[0, rows)``, attending to ``view_len`` positions.

        ``rows`` and ``view_len`` must be buckets (``batch_sizes``, ``view_lens``). The new
        tokens land in ``self.tokens``; nothing is copied to the host.
        """
        key = (rows, view_len, sampling)
        if not self.cuda_graphs:
            self._run(key)
            return
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._capture(key)
        graph.replay()

    def _run(self, key: tuple[int, int, bool]) -> None:
        rows, view_len, sampling = key
        assert self.cache is not None, "prefill allocates the cache before any decode step"
        self.cache.bind(self.positions[:rows], view_len)
        self._decode(rows, view_len, sampling)

    def _decode_eager(self, rows: int, view_len: int, sampling: bool) -> None:
        tokens, positions = self.tokens[:rows], self.positions[:rows]
        out = self.model(
            input_ids=tokens,
            attention_mask=decode_mask(positions, view_len, self._dtype, self._additive_mask),
            position_ids=positions[:, None],
            use_cache=True,
            **{self._cache_keyword: self.cache},
        )
        chosen = select_tokens(
            out.logits[:, -1, :],
            self.temperature[:rows],
            self.top_p[:rows],
            self.seeds[:rows],
            positions + 1,
            sampling=sampling,
        )
        tokens.copy_(chosen[:, None])
        # Free slots inside the bucket advance too; the clamp keeps their writes in bounds.
        positions.add_(1).clamp_(max=self.max_len - 1)

    def _capture(self, key: tuple[int, int, bool]) -> Any:
        """Record the step for ``key`` as a CUDA graph.

        Two warm-up runs on a side stream first (cuBLAS workspaces, lazy inits, compilation);
        they write keys/values at the next two positions of the live slots, which real steps
        overwrite before anything attends to them, and the token/position buffers they
        advance are restored before capture.
        """
        import torch

        saved = self.tokens.clone(), self.positions.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._run(key)
        torch.cuda.current_stream().wait_stream(side)
        self.tokens.copy_(saved[0])
        self.positions.copy_(saved[1])
        if self._pool is None:
            # Graphs share one pool: each one's temporaries are dead once its replay ends, and
            # everything that outlives a step lives in buffers allocated outside the pool.
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA work on other threads (a server embedding queries) neither breaks
        # nor is broken by this capture.
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            self._run(key)
        self._graphs[key] = graph
        return graph
