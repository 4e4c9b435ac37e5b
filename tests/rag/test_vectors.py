"""The vector-index contract, run against every implementation (flat, flat-fp16, hnsw, ivf)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError, IndexCorrupt
from rag.vectors import (
    VECTOR_INDEXES,
    FaissIndex,
    load_vector_index,
    new_vector_index,
    one_thread,
    save_vector_index,
)

DIM = 16
#: How far a kind's scores may be from the exact inner product (flat-fp16 stores half precision:
#: each component within 2**-11 relative, so a cosine within about 5e-4).
SCORE_TOLERANCE = {"flat-fp16": 1e-3}


def tolerance(index: FaissIndex) -> float:
    return SCORE_TOLERANCE.get(index.kind, 1e-5)


Filled = tuple[FaissIndex, np.ndarray, np.ndarray]


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=sorted(VECTOR_INDEXES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def filled(kind: str) -> Filled:
    index = new_vector_index(kind, DIM)
    vectors = unit_vectors(300)
    ids = np.arange(1000, 1300, dtype=np.int64)
    index.add(ids, vectors)
    return index, ids, vectors


def test_empty_index_returns_nothing(kind: str) -> None:
    index = new_vector_index(kind, DIM)
    assert len(index) == 0
    assert index.search(unit_vectors(1)[0], 5) == []


def test_a_stored_vector_finds_itself_first(
    filled: Filled,
) -> None:
    index, ids, vectors = filled
    for row in (0, 17, 299):
        hits = index.search(vectors[row], 3)
        assert hits[0][0] == ids[row]
        assert hits[0][1] == pytest.approx(1.0, abs=tolerance(index))
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_scores_are_inner_products(filled: Filled) -> None:
    index, ids, vectors = filled
    query = unit_vectors(1, seed=9)[0]
    hits = index.search(query, 10)
    expected = dict(zip(ids.tolist(), (vectors @ query).tolist(), strict=True))
    best = sorted(expected.values(), reverse=True)[:10]
    assert [s for _, s in hits] == pytest.approx(best, abs=tolerance(index))
    for chunk_id, score in hits:
        assert score == pytest.approx(expected[chunk_id], abs=tolerance(index))


def test_k_larger_than_the_index_returns_everything(kind: str) -> None:
    index = new_vector_index(kind, DIM)
    index.add(np.array([5, 6, 7]), unit_vectors(3))
    assert sorted(i for i, _ in index.search(unit_vectors(1, 4)[0], 50)) == [5, 6, 7]


def test_removed_ids_are_never_returned(filled: Filled) -> None:
    index, ids, vectors = filled
    gone = ids[:100]
    index.remove(gone.tolist())
    assert len(index) == 200
    assert set(index.ids().tolist()) == set(ids[100:].tolist())
    for row in range(0, 100, 10):
        assert all(i not in set(gone.tolist()) for i, _ in index.search(vectors[row], 20))
    # What is left still finds itself.
    assert index.search(vectors[150], 1)[0][0] == ids[150]


def test_allowed_restricts_results(filled: Filled) -> None:
    index, ids, vectors = filled
    allowed = {int(ids[3]), int(ids[40]), int(ids[250])}
    hits = index.search(vectors[0], 10, allowed=allowed)
    assert {i for i, _ in hits} == allowed
    assert index.search(vectors[0], 10, allowed=set()) == []
    assert index.search(vectors[0], 10, allowed={99999}) == []
    # A filter that keeps most ids still returns the true best among them.
    many = set(ids[1:].tolist())
    assert index.search(vectors[0], 1, allowed=many)[0][0] != ids[0]


def test_save_and_load_round_trip(filled: Filled, kind: str, tmp_path: Path) -> None:
    index, ids, vectors = filled
    path = tmp_path / "v.faiss"
    save_vector_index(index, path)
    loaded = load_vector_index(path, kind, DIM)
    assert type(loaded) is type(index)
    assert sorted(loaded.ids().tolist()) == sorted(ids.tolist())
    assert loaded.search(vectors[5], 4) == index.search(vectors[5], 4)
    # Loaded indexes keep working as writers (removal needs reconstruction).
    loaded.remove([int(ids[5])])
    assert loaded.search(vectors[5], 1)[0][0] != ids[5]


def test_growth_keeps_results_right(kind: str) -> None:
    index = new_vector_index(kind, DIM)
    small, big = unit_vectors(50, 1), unit_vectors(3000, 2)
    index.add(np.arange(50), small)
    index.add(np.arange(50, 3050), big)
    assert len(index) == 3050
    hits = [index.search(big[i], 1)[0][0] for i in range(0, 3000, 100)]
    assert hits == list(range(50, 3050, 100))


def test_bad_input_is_refused(kind: str, tmp_path: Path) -> None:
    index = new_vector_index(kind, DIM)
    with pytest.raises(ConfigError, match="16-d"):
        index.add(np.array([1]), np.zeros((1, 8), dtype=np.float32))
    with pytest.raises(ConfigError, match="ids for"):
        index.add(np.array([1, 2]), unit_vectors(1))
    with pytest.raises(ConfigError, match="dimensions"):
        index.search(np.zeros(8, dtype=np.float32), 1)
    with pytest.raises(ConfigError, match="k must be positive"):
        index.search(unit_vectors(1)[0], 0)
    junk = tmp_path / "junk.faiss"
    junk.write_bytes(b"not a faiss file")
    with pytest.raises(IndexCorrupt, match="--reindex"):
        load_vector_index(junk, kind, DIM)


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"Unknown vector index: annoy .*flat, flat-fp16, hnsw, ivf"
    ):
        new_vector_index("annoy", DIM)


def test_similarities_match_a_filtered_search_and_skip_absent_ids(filled: Filled) -> None:
    index, ids, _ = filled
    query = unit_vectors(1, seed=7)[0]
    wanted = [int(ids[5]), 99_999, int(ids[40]), int(ids[2])]
    got = index.similarities(query, wanted)
    assert [i for i, _ in got] == [int(ids[5]), int(ids[40]), int(ids[2])]
    searched = dict(index.search(query, 3, {int(ids[5]), int(ids[40]), int(ids[2])}))
    assert dict(got) == pytest.approx(searched, abs=1e-6)
    assert index.similarities(query, []) == []


def test_a_single_query_runs_on_one_thread_and_restores_the_count(filled: Filled) -> None:
    import faiss

    index, _, vectors = filled
    before = faiss.omp_get_max_threads()
    with one_thread():
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    index.search(vectors[0], 3)
    assert faiss.omp_get_max_threads() == before
