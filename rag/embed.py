"""The embedder interface and the sentence-transformers implementation.

One required method, ``embed_batch``; the base adds batching with a progress callback.
Vectors are float32 and L2-normalized, so inner product is cosine similarity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class Embedder(ABC):
    """Turns texts into normalized vectors. ``name`` is recorded in the index manifest."""

    name: str
    dimension: int
    #: Longest input, in the embedder's own tokens; longer text is truncated by the model.
    max_tokens: int = 256

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dimension)`` float32 array of L2-normalized rows."""

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` as the embedder counts them (what chunk sizes are measured in)."""
        return len(text.split())

    def warm_up(self) -> None:
        """Load weights now rather than on first use."""

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Callable[[int], Any] | None = None,
    ) -> np.ndarray:
        """Embed any number of texts in batches; ``progress(n)`` is called after each batch."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            parts.append(self.embed_batch(batch))
            if progress is not None:
                progress(len(batch))
        return np.concatenate(parts).astype(np.float32, copy=False)
