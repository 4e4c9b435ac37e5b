"""The contract of `rag.embed.Embedder`, run against every implementation.

Rows are float32, L2-normalized, one per text in the input order, the same whatever the batch;
``embed`` batches without changing a row; tokens are counted. Adding an implementation is one
entry in ``EMBEDDERS``: a name and a function returning a ready embedder.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rag.embed import Embedder
from tests.fakes import FakeEmbedder

TEXTS = [
    "Products can be returned within 45 days of delivery.",
    "Within how many days can products be returned?",
    "The tea brewer has six temperature presets.",
    "Report a stolen laptop to the help desk.",
]


def minilm() -> Embedder:
    from rag.embed import load_embedder

    embedder = load_embedder("minilm", device="cpu")
    embedder.warm_up()
    return embedder


EMBEDDERS: dict[str, Callable[[], Embedder]] = {"fake": FakeEmbedder, "minilm": minilm}


@pytest.fixture(scope="module", params=list(EMBEDDERS))
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return EMBEDDERS[request.param]()


def test_rows_are_normalized_float32_of_the_stated_dimension(embedder: Embedder) -> None:
    assert embedder.name and embedder.dimension > 0 and embedder.max_tokens > 0
    vectors = embedder.embed_batch(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dimension) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * len(TEXTS), abs=1e-5)


def test_rows_keep_the_input_order_whatever_the_batch(embedder: Embedder) -> None:
    together = embedder.embed_batch(TEXTS)
    alone = np.stack([embedder.embed_batch([text])[0] for text in TEXTS])
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(embedder.embed_batch(TEXTS[::-1]), together[::-1], atol=1e-5)
    seen: list[int] = []
    assert np.allclose(
        embedder.embed(TEXTS, batch_size=3, progress=seen.append), together, atol=1e-5
    )
    assert seen == [3, 1]
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_a_paraphrase_is_nearer_than_another_topic(embedder: Embedder) -> None:
    returns, question, tea, _ = embedder.embed_batch(TEXTS)
    assert question @ returns > question @ tea


def test_tokens_are_counted(embedder: Embedder) -> None:
    one = embedder.count_tokens(TEXTS[0])
    assert one > 0
    assert embedder.count_tokens(f"{TEXTS[0]} {TEXTS[2]}") > one
