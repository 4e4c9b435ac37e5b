"""A static KV cache with one write position per row, so sequences of any length share a batch.

transformers' ``StaticCache`` (5.x) preallocates its buffers, which is what a CUDA graph needs,
but it writes every row of the batch at one shared position (a scalar ``cumulative_length``):
requests of different lengths, or a request that joins while others are mid-answer, cannot
share it. ``SlotCache`` keeps the same idea (fixed buffers, fixed addresses, in-place writes)
with a position per row ("slot"): each decode step writes the new key/value of row ``r`` at
``positions[r]`` and the attention mask hides everything after it.

It is duck-typed to the one method transformers' attention layers call, ``update``. The engine
always passes explicit ``position_ids`` and a ready 4D mask, and with a 4D mask transformers'
mask builders return it untouched (5.17 and 5.24 alike), so nothing else is ever asked of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SlotCache:
    """Per layer, keys and values of shape (slots, kv_heads, max_len, head_dim)."""

    def __init__(self, keys: list[Any], values: list[Any]) -> None:
        import torch

        self.keys = keys
        self.values = values
        self._row_ids = torch.arange(keys[0].shape[0], device=keys[0].device)
        self._positions: Any = None
        self._view_len = keys[0].shape[2]

    @classmethod
    def like(cls, prompt_cache: Any, slots: int, max_len: int) -> SlotCache:
        """Buffers shaped after a prefill cache (heads, head size, dtype, device come from it)."""
        import torch

        keys, values = [], []
        for layer_keys, layer_values in layer_tensors(prompt_cache):
            _, heads, _, key_dim = layer_keys.shape
            value_dim = layer_values.shape[-1]
            options = {"dtype": layer_keys.dtype, "device": layer_keys.device}
            keys.append(torch.zeros(slots, heads, max_len, key_dim, **options))
            values.append(torch.zeros(slots, heads, max_len, value_dim, **options))
        return cls(keys, values)

    def bind(self, positions: Any, view_len: int) -> None:
        """Aim the next forward: row ``r`` writes at ``positions[r]``, attention sees ``view_len``.

        ``positions`` is a view of the engine's static position buffer, so a captured graph
        keeps reading the live values on every replay.
        """
        self._positions = positions
        self._view_len = view_len

    def update(
        self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[Any, Any]:
        """Write one new token per row and return the keys/values attention should see."""
        rows = key_states.shape[0]
        keys, values = self.keys[layer_idx][:rows], self.values[layer_idx][:rows]
        # An index_put (not a scatter): torch.compile turns it back into an in-place write
        # instead of copying the whole buffer.
        where = (self._row_ids[:rows], slice(None), self._positions)
        keys[where] = key_states[:, :, 0]
        values[where] = value_states[:, :, 0]
        return keys[:, :, : self._view_len], values[:, :, : self._view_len]

    def load(self, rows: Sequence[int], prompt_cache: Any, lengths: Sequence[int]) -> None:
        """Copy a left-padded prefill cache into ``rows``, each prompt moved to start at 0.

        Row ``i`` of the prefill holds its prompt at the right end (positions ``width - L_i``
        onwards). One gather per layer aligns every row at once; positions past a prompt's end
        receive copies of its last token, which the mask hides until decoding overwrites them.
        """
        import torch

        device = self.keys[0].device
        row_index = torch.tensor(list(rows), device=device)
        for layer, (src_keys, src_values) in enumerate(layer_tensors(prompt_cache)):
            width = src_keys.shape[2]
            pads = torch.tensor([width - n for n in lengths], device=device)
            source = (pads[:, None] + torch.arange(width, device=device)[None, :]).clamp(
                max=width - 1
            )
            for src, dst in ((src_keys, self.keys[layer]), (src_values, self.values[layer])):
                index = source[:, None, :, None].expand(-1, src.shape[1], -1, src.shape[3])
                dst[row_index, :, :width] = src.gather(2, index)


def layer_tensors(prompt_cache: Any) -> list[tuple[Any, Any]]:
    """(keys, values) per layer of a transformers ``DynamicCache`` (the 5.x ``layers`` API)."""
    return [(layer.keys, layer.values) for layer in prompt_cache.layers]


def decode_mask(positions: Any, view_len: int, dtype: Any, additive: bool) -> Any:
    """The 4D mask (rows, 1, 1, view_len) for one new token per row at ``positions``.

    Boolean (True = attend) for SDPA; additive (0 or the dtype's minimum) for eager attention,
    which adds the mask to the scores.
    """
    import torch

    visible = torch.arange(view_len, device=positions.device)[None, :] <= positions[:, None]
    visible = visible[:, None, None, :]
    if not additive:
        return visible
    blocked = torch.full(visible.shape, torch.finfo(dtype).min, dtype=dtype, device=visible.device)
    return blocked.masked_fill(visible, 0.0)
