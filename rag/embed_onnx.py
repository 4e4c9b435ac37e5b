"""The default embedder in int8 through ONNX Runtime: the CPU's encoder.

The same tokenizer, window (the model's ``max_seq_length``), mean pooling over the attention
mask and L2 normalization as sentence-transformers, around the int8 graph that
``rag.onnx_export`` builds once from the packaged weights. Neither torch nor transformers is
imported once that graph is cached, so a query process starts light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.embed import Embedder
from rag.errors import ConfigError, ModelNotInstalled

if TYPE_CHECKING:
    import numpy as np

    from rag.models import ModelSpec


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
    """

    encoder = "onnx-int8"

    def __init__(
        self,
        name: str = "minilm",
        *,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if threads is not None and threads <= 0:
            raise ConfigError(f"threads must be positive, got {threads}")
        self.spec = int8_spec(name)
        self.name = name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        self.batch_size = batch_size
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
        from rag.models import installed
        from rag.onnx_export import MODEL_FILE, TOKENIZER_FILE, int8_encoder, read_marker

        if not installed(self.spec):
            raise ModelNotInstalled(
                f"the weights of embedder {self.name!r} are not installed: run "
                f"`{self.spec.pull_command}`"
            )
        folder = int8_encoder(self.spec, self.cache_dir)
        marker = read_marker(folder) or {}
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph internals
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
        tokenizer.enable_padding(pad_id=int(marker["pad_token_id"]), pad_token=marker["pad_token"])
        specials = tokenizer.post_processor.num_special_tokens_to_add(False)
        return _Loaded(session, tokenizer, counter, int(marker["dimension"]), window - specials)

    def count_tokens(self, text: str) -> int:
        return len(self._state().counter.encode(text, add_special_tokens=False).ids)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors in the order of ``texts``; inside, shortest-first groups of ``batch_size``
        so that padding stays small (as sentence-transformers' ``encode`` does)."""
        import numpy as np

        state = self._state()
        out = np.empty((len(texts), state.dimension), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(order), self.batch_size):
            group = order[start : start + self.batch_size]
            out[group] = self._encode(state, [texts[i] for i in group])
        return out

    @staticmethod
    def _encode(state: _Loaded, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = state.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = state.session.run(None, feeds)[0]
        # Mean over the real tokens, then unit length: sentence-transformers' Pooling (mean) and
        # Normalize modules, with their epsilons.
        weights = mask[..., None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        counts = np.clip(weights.sum(axis=1), 1e-9, None)
        pooled = summed / counts
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


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


def _default_cache_dir() -> Path:
    from rag.settings import default_cache_dir

    return default_cache_dir()
