"""The embedder interface and the sentence-transformers implementation.

One required method, ``embed_batch``; the base adds batching with a progress callback.
Vectors are float32 and L2-normalized, so inner product is cosine similarity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError, ModelNotInstalled

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
        batch_size: int = 32,
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


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model: a registry name (``minilm``), a local folder or a hub id.

    Cheap to construct; the weights load on first use (or ``warm_up()``), on CUDA when present.
    ``name`` is what the index manifest records, so a query must name the model the same way.
    """

    def __init__(
        self, name_or_path: str = "minilm", device: str | None = None, batch_size: int = 64
    ) -> None:
        if not name_or_path:
            raise ConfigError("an embedder needs a registry name or a model folder, got ''")
        if device not in (None, "cpu", "cuda", "mps") and not device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.name = name_or_path
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._counter: Any = None

    @property
    def dimension(self) -> int:  # type: ignore[override]
        return int(self._info()[0])

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        """The model's window minus the special tokens it adds ([CLS], [SEP])."""
        return int(self._info()[1])

    def _info(self) -> tuple[int, int]:
        model = self.model
        get_dimension = getattr(model, "get_embedding_dimension", None)
        dimension = (get_dimension or model.get_sentence_embedding_dimension)()
        specials = model.tokenizer.num_special_tokens_to_add()
        return dimension, model.max_seq_length - specials

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loads it on first access)."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        from rag.models import embedder_path

        try:
            path = embedder_path(self.name)
        except ImportError:
            raise ModelNotInstalled(
                f"the weights of embedder {self.name!r} are not installed: run "
                f"`rag models pull {self.name}`"
            ) from None
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # Loading bars from transformers would clutter the CLI's own progress output.
        hf_logging.disable_progress_bar()
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        return SentenceTransformer(path, device=self.device)

    def warm_up(self) -> None:
        self._info()

    def count_tokens(self, text: str) -> int:
        counter = self._token_counter()
        if counter is None:  # a slow (pure Python) tokenizer: count through its wrapper
            return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(counter.encode(text, add_special_tokens=False).ids)

    def _token_counter(self) -> Any:
        """A private copy of the fast tokenizer, without truncation or padding.

        Chunking counts every paragraph, so the per-call overhead of the transformers wrapper
        matters; the copy also keeps ``encode`` from changing the truncation state it counts with.
        """
        if self._counter is None:
            backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
            if backend is None:
                return None
            from tokenizers import Tokenizer

            self._counter = Tokenizer.from_str(backend.to_str())
            self._counter.no_truncation()
            self._counter.no_padding()
        return self._counter

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def load_embedder(name_or_path: str = "minilm", device: str | None = None) -> Embedder:
    """The embedder for a registry name or a model folder (weights load on first use)."""
    return SentenceTransformerEmbedder(name_or_path, device=device)
