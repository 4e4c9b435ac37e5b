"""Token selection on the device, per row, with no host round trip.

The decode engine captures its whole step in a CUDA graph, so picking the next token must be
pure tensor work with fixed shapes: greedy is an argmax; sampling is temperature + nucleus
(top-p) filtering followed by the Gumbel-max trick. ``torch.multinomial`` with a per-request
``torch.Generator`` cannot live in a captured graph with one seed per row, so the noise comes
from a counter-based hash of (seed, position, token id): every row gets its own reproducible
stream, identical on the CPU and on CUDA, with nothing to seed or advance on the host.
"""

from __future__ import annotations

from typing import Any

_MASK32 = 0xFFFFFFFF
# Multipliers below 2**31 keep every intermediate product of a 32-bit value inside int64.
_MIX = 0x45D9F3B
_GOLDEN = 0x1E3779B9


def _mix32(x: Any) -> Any:
    """A 32-bit integer finaliser (two multiply-xorshift rounds) on an int64 tensor."""
    x = ((x >> 16) ^ x) * _MIX & _MASK32
    x = ((x >> 16) ^ x) * _MIX & _MASK32
    return (x >> 16) ^ x


def uniform_noise(seeds: Any, counters: Any, vocab: int) -> Any:
    """Uniform floats in (0, 1), shape (rows, vocab), fixed by (seed, counter) per row."""
    import torch

    row_key = _mix32(_mix32(seeds & _MASK32) ^ (counters & _MASK32))
    ids = torch.arange(vocab, device=seeds.device, dtype=torch.int64)
    bits = _mix32((row_key[:, None] + ids[None, :] * _GOLDEN) & _MASK32)
    # 24 random bits fill a float32 mantissa exactly; the half step keeps 0 and 1 out.
    return ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def select_tokens(
    logits: Any,
    temperature: Any,
    top_p: Any,
    seeds: Any,
    counters: Any,
    *,
    sampling: bool,
) -> Any:
    """The next token per row of ``logits`` (rows, vocab).

    ``temperature``/``top_p`` are float32 per row (temperature 0 means greedy for that row),
    ``seeds`` int64 per row, ``counters`` int64 per row (the position the new token takes, so
    a replay of the same request draws the same noise). ``sampling=False`` skips the sampling
    work entirely: the engine captures a separate, cheaper graph when every row is greedy.
    """
    import torch

    greedy = logits.argmax(dim=-1)
    if not sampling:
        return greedy
    scaled = logits.float() / temperature.clamp(min=1e-5)[:, None]
    ordered, _ = scaled.sort(dim=-1, descending=True)
    probs = ordered.softmax(dim=-1)
    # Keep the smallest prefix whose mass reaches top_p; the first token always stays.
    kept = ((probs.cumsum(dim=-1) - probs) <= top_p[:, None]).sum(dim=-1, keepdim=True)
    threshold = ordered.gather(1, kept - 1)
    scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
    gumbel = -torch.log(-torch.log(uniform_noise(seeds, counters, scaled.shape[-1])))
    sampled = (scaled + gumbel).argmax(dim=-1)
    return torch.where(temperature > 0, sampled, greedy)
