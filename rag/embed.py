"""The embedder interface, the sentence-transformers implementation, and the encoder choice.

One required method, ``embed_batch``; the base adds batching with a progress callback.
Vectors are float32 and L2-normalized, so inner product is cosine similarity.

Two encoders compute the same model: ``torch-fp32`` (sentence-transformers; GPUs, any model)
and ``onnx-int8`` (ONNX Runtime over the graph ``rag.onnx_export`` builds; the CPU default
for registry embedders with an int8 recipe, 2-3x faster there). ``load_embedder`` picks one
from the device unless told.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ConfigError, ModelNotInstalled

if TYPE_CHECKING:
    import numpy as np

    from rag.models import ModelSpec


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


@dataclass(frozen=True)
class _Loaded:
    session: Any
    tokenizer: Any
    counter: Any
    dimension: int
    max_tokens: int


class OnnxEmbedder(Embedder):
    """A registry embedder with an int8 recipe (``minilm``), run by ONNX Runtime on the CPU.

    Cheap to construct; the graph is exported on first use (or ``warm_up()``, or
    ``rag models pull minilm``) into ``cache_dir`` and loaded from there afterwards.
    ``threads`` is ONNX Runtime's intra-op thread count (None: one per physical core).

    Each text runs alone. The int8 graph quantizes activations with one scale per run, so a text
    batched with others would come out a little different (cosine ~0.99 to itself alone) and the
    same chunk would get another vector in another batch; alone, a text always gets the same
    vector and there is no padding to compute. On 2 cores it was no slower than batches of 32
    (200 bank chunks, in one run under load: 6.2 s alone, 17.9 s batched).
    """

    encoder = "onnx-int8"

    def __init__(
        self,
        name: str = "minilm",
        *,
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        if threads is not None and threads <= 0:
            raise ConfigError(f"threads must be positive, got {threads}")
        self.spec = int8_spec(name)
        self.name = name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.threads = threads
        self._loaded: _Loaded | None = None

    @property
    def dimension(self) -> int:  # type: ignore[override]
        return self._state().dimension

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        """The model's window minus the special tokens it adds ([CLS], [SEP])."""
        return self._state().max_tokens

    def warm_up(self) -> None:
        self._state()

    def _state(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> _Loaded:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as error:
            raise ModelNotInstalled(
                f"the int8 encoder needs {error.name}, a dependency of rag-icl: reinstall it "
                "(`pip install -e .`), or choose the torch encoder"
            ) from None
        from rag.models import embedder_path, installed
        from rag.onnx_export import MODEL_FILE, TOKENIZER_FILE, int8_encoder, read_marker
        from rag.settings import default_cache_dir

        if not installed(self.spec):
            raise ModelNotInstalled(
                f"the weights of embedder {self.name!r} are not installed: run "
                f"`{self.spec.pull_command}`"
            )
        folder = int8_encoder(
            self.name,
            self.spec.packages,
            Path(embedder_path(self.name)),
            self.cache_dir or default_cache_dir(),
        )
        marker = read_marker(folder) or {}
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph internals
        # Idle threads sleep instead of spinning. On 2 shared cores (the generator and other
        # processes run beside us) spinning threads fight for them: under load, 200 bank chunks
        # took 20.5 s spinning and 6.2 s not, a short query 23 ms and 3.4 ms.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        session = ort.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        window = int(marker["max_seq_length"])
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        counter = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        counter.no_truncation()
        counter.no_padding()
        tokenizer.enable_truncation(max_length=window)
        tokenizer.no_padding()
        specials = tokenizer.post_processor.num_special_tokens_to_add(False)
        return _Loaded(session, tokenizer, counter, int(marker["dimension"]), window - specials)

    def count_tokens(self, text: str) -> int:
        return len(self._state().counter.encode(text, add_special_tokens=False).ids)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors in the order of ``texts``, each text run alone (see the class)."""
        import numpy as np

        state = self._state()
        out = np.empty((len(texts), state.dimension), dtype=np.float32)
        for row, encoding in enumerate(state.tokenizer.encode_batch(list(texts))):
            ids = np.array([encoding.ids], dtype=np.int64)
            feeds = {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
            hidden = state.session.run(None, feeds)[0][0]
            # sentence-transformers' mean pooling (every token is real: no padding) and its
            # normalization, with its epsilon.
            pooled = hidden.mean(axis=0)
            out[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out


def int8_spec(name: str) -> ModelSpec:
    """The registry entry of ``name`` when it has an int8 recipe; ConfigError otherwise."""
    from rag.models import REGISTRY

    spec = REGISTRY.get(name)
    if spec is None or spec.kind != "embedder" or not spec.onnx_int8:
        known = ", ".join(n for n, s in REGISTRY.items() if s.onnx_int8)
        raise ConfigError(
            f"no int8 ONNX encoder for embedder {name!r} (registry embedders with one: {known}); "
            "use the torch encoder (encoder='torch-fp32')"
        )
    return spec


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
