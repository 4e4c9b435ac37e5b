"""The embedder interface, the sentence-transformers implementation, and the encoder choice.

One required method, ``embed_batch``; the base adds batching with a progress callback.
Vectors are float32 and L2-normalized, so inner product is cosine similarity.

Two encoders compute the same model: ``torch-fp32`` (sentence-transformers; GPUs, any model)
and ``onnx-int8`` (``rag.embed_onnx``; the CPU default for registry embedders with an int8
recipe, 2-3x faster there). ``load_embedder`` picks one from the device unless told.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError, ModelNotInstalled

if TYPE_CHECKING:
    import numpy as np


class Embedder(ABC):
    """Turns texts into normalized vectors. ``name`` is recorded in the index manifest."""

    name: str
    dimension: int
    #: How the vectors are computed (one of ``ENCODERS``), recorded beside ``name``.
    encoder: str = "torch-fp32"
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


ENCODERS: tuple[str, ...] = ("torch-fp32", "onnx-int8")


def load_embedder(
    name_or_path: str = "minilm",
    device: str | None = None,
    *,
    encoder: str | None = None,
    cache_dir: Path | None = None,
) -> Embedder:
    """The embedder for a registry name or a model folder (weights load on first use).

    ``encoder=None`` picks ``onnx-int8`` on the CPU for a registry embedder that has an int8
    recipe, and ``torch-fp32`` otherwise (GPUs, other models). ``cache_dir`` is where the int8
    graph is cached (None: the user cache).
    """
    if encoder is not None and encoder not in ENCODERS:
        raise ConfigError(f"Unknown encoder: {encoder} (known: {', '.join(ENCODERS)})")
    if encoder is None:
        encoder = default_encoder(name_or_path, device)
    if encoder == "onnx-int8":
        if device not in (None, "cpu"):
            raise ConfigError(
                f"the onnx-int8 encoder runs on the CPU, not {device!r}: pass device 'cpu', or "
                "choose the torch-fp32 encoder"
            )
        from rag.embed_onnx import OnnxEmbedder

        return OnnxEmbedder(name_or_path, cache_dir=cache_dir)
    return SentenceTransformerEmbedder(name_or_path, device=device)


def default_encoder(name_or_path: str, device: str | None) -> str:
    """``onnx-int8`` where it exists and the work runs on the CPU, else ``torch-fp32``."""
    from rag.models import REGISTRY

    spec = REGISTRY.get(name_or_path)
    if spec is None or not spec.onnx_int8:
        return "torch-fp32"
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "onnx-int8" if device == "cpu" else "torch-fp32"
