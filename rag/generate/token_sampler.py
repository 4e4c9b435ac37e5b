"""The next token from one row of logits on the host: greedy, or temperature + nucleus sampling.

The same rule as the transformers path (``pick_tokens``): greedy is the argmax; sampling scales
by the temperature, keeps the smallest set of tokens whose probability mass reaches ``top_p``
(the most likely token always stays) and draws from it. Each request owns its random stream,
seeded, so a seeded request repeats itself whatever else decodes beside it.
"""

from __future__ import annotations

from typing import Any


class Sampler:
    def __init__(self, temperature: float, top_p: float, seed: int) -> None:
        import numpy as np

        self.temperature = temperature
        self.top_p = top_p
        self._rng = np.random.default_rng(seed)

    def pick(self, logits: Any) -> int:
        """The chosen token id of ``logits`` (a float vector over the vocabulary)."""
        import numpy as np

        if self.temperature == 0:
            return int(np.argmax(logits))
        scaled = np.asarray(logits, dtype=np.float64) / self.temperature
        probs = np.exp(scaled - scaled.max())
        order = np.argsort(-probs, kind="stable")
        sorted_probs = probs[order] / probs.sum()
        if self.top_p < 1.0:
            outside = np.cumsum(sorted_probs) - sorted_probs > self.top_p
            sorted_probs[outside] = 0.0
        sorted_probs /= sorted_probs.sum()
        return int(order[self._rng.choice(len(order), p=sorted_probs)])
