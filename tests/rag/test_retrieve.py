"""Retrieval logic: fusion, MMR, filters and the relevance floor, on an in-memory index."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rag.errors import ConfigError, EmbedderMismatch
from rag.retrieve import Retriever, mmr_select, parse_mode, reciprocal_rank_fusion
from rag.types import Chunk
from tests.fakes import FakeEmbedder, FakeIndex

TEXTS = [
    ("leave.md", "Employees receive 25 days of paid annual leave each year."),
    ("leave.md", "Employees receive 25 days of paid annual leave each year, the policy says."),
    ("expenses.md", "Expense claims are due within 30 days with receipts attached."),
    ("security/devices.md", "Report a stolen laptop to the service desk on extension 4400."),
    ("security/passwords.md", "Passwords expire every 90 days and need 12 characters."),
    ("pricing.md", "The Premium plan costs 29 dollars per user per month, code PX-77."),
]


def make_retriever(**kwargs: Any) -> tuple[Retriever, FakeIndex]:
    chunks = [
        Chunk(id=10 + i, doc_id=src, text=text, title=src.split("/")[-1], source=f"docs/{src}")
        for i, (src, text) in enumerate(TEXTS)
    ]
    embedder = FakeEmbedder()
    index = FakeIndex(chunks, embedder)
    return Retriever(index, embedder, **kwargs), index


def test_rrf_sums_reciprocal_ranks_and_keeps_each_rank() -> None:
    fused = reciprocal_rank_fusion({"dense": [1, 2, 3], "keyword": [3, 1]}, k=60)
    assert [f.chunk_id for f in fused] == [1, 3, 2]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].ranks == {"dense": 3, "keyword": 1}
    assert fused[2].ranks == {"dense": 2}


def test_mmr_skips_near_duplicates() -> None:
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    candidates = np.array([[0.9, 0.436, 0.0], [0.9, 0.436, 0.0], [0.8, 0.0, 0.6]], dtype=np.float32)
    assert mmr_select(query, candidates, 2, diversity=0.0) == [0, 1]
    assert mmr_select(query, candidates, 2, diversity=0.5) == [0, 2]
    with pytest.raises(ConfigError):
        mmr_select(query, candidates, 2, diversity=1.5)


def test_hybrid_is_default_and_reports_both_ranks() -> None:
    retriever, _ = make_retriever()
    hits = retriever.search("how many days of annual leave do employees receive", k=3)
    assert hits[0].chunk.doc_id == "leave.md"
    assert set(hits[0].ranks) == {"dense", "keyword"}
    assert set(hits[0].scores) == {"dense", "keyword"}
    assert hits[0].score > hits[-1].score


def test_keyword_mode_finds_exact_codes() -> None:
    retriever, _ = make_retriever()
    hits = retriever.search("PX-77", k=2, mode="keyword")
    assert hits[0].chunk.doc_id == "pricing.md"
    assert hits[0].ranks == {"keyword": 1}
    assert "dense" not in hits[0].scores


def test_dense_mode_scores_are_cosines() -> None:
    retriever, _ = make_retriever()
    hits = retriever.search("stolen laptop", k=2, mode="dense")
    assert hits[0].chunk.doc_id == "security/devices.md"
    assert hits[0].score == pytest.approx(hits[0].scores["dense"])
    assert -1.0 <= hits[0].score <= 1.0


def test_filters_restrict_by_source_glob_and_doc_ids() -> None:
    retriever, _ = make_retriever()
    hits = retriever.search("days", k=10, source_glob="docs/security/*")
    assert hits and {h.chunk.doc_id for h in hits} <= {
        "security/devices.md",
        "security/passwords.md",
    }
    hits = retriever.search("days", k=10, doc_ids=["expenses.md"])
    assert [h.chunk.doc_id for h in hits] == ["expenses.md"]
    assert retriever.search("days", k=10, source_glob="nothing/*") == []


def test_floor_drops_everything_for_an_uncovered_question() -> None:
    retriever, _ = make_retriever()
    assert retriever.search("quantum chromodynamics gluon", k=3, min_score=0.3) == []
    hits = retriever.search("paid annual leave", k=3, min_score=0.3)
    assert hits and all(h.scores["dense"] >= 0.3 for h in hits)


def test_floor_takes_keyword_only_cosines_from_stored_vectors_without_a_search() -> None:
    retriever, index = make_retriever(pool=1)
    hits = retriever.search("days", k=3, mode="keyword", min_score=-1.0)
    assert len(hits) == 3 and index.dense_calls == []
    # The cosines a filtered dense search over those ids (the old way) gives.
    vector = retriever.embedder.embed(["days"])[0]
    searched = dict(index.dense_search(vector, 3, {h.chunk.id for h in hits}))
    assert {h.chunk.id: h.scores["dense"] for h in hits} == pytest.approx(searched, abs=1e-6)


def test_hybrid_with_a_floor_searches_faiss_once() -> None:
    retriever, index = make_retriever(pool=1)
    hits = retriever.search("paid leave days receipts", k=4, min_score=-1.0)
    assert hits and all("dense" in h.scores for h in hits)
    assert index.dense_calls == [(4, None)]


def test_mmr_diversifies_duplicate_passages() -> None:
    retriever, _ = make_retriever(diversity=0.6)
    plain = retriever.search("annual leave days employees", k=2, mode="dense")
    assert [h.chunk.doc_id for h in plain] == ["leave.md", "leave.md"]
    diverse = retriever.search("annual leave days employees", k=2, mode="dense", mmr=True)
    assert diverse[0].chunk.doc_id == "leave.md"
    assert diverse[1].chunk.doc_id != "leave.md"


def test_bad_arguments_and_empty_queries() -> None:
    retriever, _ = make_retriever()
    assert retriever.search("leave", k=0) == []
    assert retriever.search("   ", k=3) == []
    with pytest.raises(ConfigError, match="Unknown search mode"):
        parse_mode("semantic")
    with pytest.raises(ConfigError):
        retriever.search("leave", k=-1)
    with pytest.raises(ConfigError):
        Retriever(retriever.index, retriever.embedder, pool=0)


def test_an_embedder_of_another_dimension_is_refused() -> None:
    _, index = make_retriever()
    other = Retriever(index, FakeEmbedder(dimension=32))
    with pytest.raises(EmbedderMismatch, match="rag ingest --reindex"):
        other.search("leave", k=2)


QUESTIONS = [
    "how many days of annual leave do employees receive",
    "PX-77",
    "stolen laptop",
    "password rules",
    "what does the premium plan cost per user",
    "nothing here matches at all",
]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
@pytest.mark.parametrize(
    "options",
    [{}, {"min_score": 0.2}, {"mmr": True}, {"source_glob": "docs/security/*"}],
)
def test_the_keyword_search_beside_the_encode_gives_the_same_hits(
    mode: str, options: dict[str, Any]
) -> None:
    parallel, _ = make_retriever(parallel=True)
    sequential, _ = make_retriever(parallel=False)
    for question in QUESTIONS:
        assert parallel.search(question, k=3, mode=parse_mode(mode), **options) == (
            sequential.search(question, k=3, mode=parse_mode(mode), **options)
        )


def test_the_keyword_search_runs_while_the_query_is_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The encode waits for the keyword search to have started: one after the other, it never
    would (it fails after 10 s instead of hanging)."""
    import threading

    retriever, index = make_retriever()
    searching = threading.Event()
    real_embed, real_keyword = retriever.embedder.embed, index.keyword_search

    def embed(texts: Any) -> Any:
        assert searching.wait(10), "the keyword search did not run beside the encode"
        return real_embed(texts)

    def keyword(*args: Any) -> Any:
        searching.set()
        return real_keyword(*args)

    monkeypatch.setattr(retriever.embedder, "embed", embed)
    monkeypatch.setattr(index, "keyword_search", keyword)
    hits = retriever.search("annual leave", k=2)
    assert set(hits[0].ranks) == {"dense", "keyword"}


def test_an_encode_error_is_raised_after_the_keyword_search_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    retriever, index = make_retriever()
    finished = threading.Event()
    real_keyword = index.keyword_search

    def keyword(*args: Any) -> Any:
        result = real_keyword(*args)
        finished.set()
        return result

    def embed(texts: Any) -> Any:
        raise EmbedderMismatch("the embedder broke")

    monkeypatch.setattr(retriever.embedder, "embed", embed)
    monkeypatch.setattr(index, "keyword_search", keyword)
    with pytest.raises(EmbedderMismatch, match="broke"):
        retriever.search("annual leave", k=2)
    assert finished.is_set()


def test_many_threads_share_one_parallel_retriever(tmp_path: Any) -> None:
    """On a real index (SQLite, FAISS, the keyword postings): concurrent hybrid searches get
    what one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    from rag.store import Index
    from tests.rag.test_store import write_index

    with Index.open(write_index(tmp_path / "idx")) as index:
        embedder = FakeEmbedder()
        one = Retriever(index, embedder, parallel=False)
        shared = Retriever(index, embedder, parallel=True)
        texts = ["paid leave days", "travel desk flights", "cafeteria", "parking weekends"]
        want = [one.search(t, k=3, min_score=0.0) for t in texts]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda t: shared.search(t, k=3, min_score=0.0), texts * 10))
        assert got == want * 10
