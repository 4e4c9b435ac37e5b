"""Keyword search: safe phrases, and its two savings giving the full OR query's bm25 top k."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.keyword import COMMON, KeywordSearcher, fts_terms
from rag.store import Index
from tests.rag.test_store import write_index

WORDS = [
    "wire",
    "transfer",
    "card",
    "fees",
    "abroad",
    "loan",
    "overdraft",
    "savings",
    "rate",
    "branch",
]


def reference(index: Index, text: str, k: int) -> list[tuple[int, float]]:
    """The plain OR query over every phrase, scored by FTS5 (what the searcher must equal)."""
    sql = (
        "SELECT rowid, -bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
        "ORDER BY s DESC, rowid LIMIT ?"
    )
    return [(int(r), float(s)) for r, s in index._query(sql, (" OR ".join(fts_terms(text)), k))]


@pytest.fixture
def index(tmp_path: Path) -> Index:
    """60 rows: "bank" in all, "account" in a third, the other words at random, a rare "swift"."""
    draw = random.Random(3)
    docs: dict[str, tuple[str, list[str]]] = {}
    for n in range(60):
        words = draw.sample(WORDS, 3) + (["account"] if n % 3 == 0 else [])
        words += ["swift"] if n in (4, 9, 30) else []
        docs[f"d{n:02d}.md"] = (f"D{n}", [f"Bank note {n}: " + " ".join(words) + "."])
    return Index.open(write_index(tmp_path / "idx", docs))


def test_fts_terms_quotes_every_word_and_drops_stopwords() -> None:
    assert fts_terms('What is "the" leave AND policy?') == ['"leave"', '"policy"']
    assert fts_terms("what is it") == ['"what"', '"is"', '"it"']
    assert fts_terms("?!") == []


@pytest.mark.parametrize(
    "text", ["swift account", "swift account fees", "account fees wire", "loan rate", "swift"]
)
@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_the_top_k_is_the_full_or_querys(index: Index, text: str, k: int) -> None:
    got = index.keyword_search(text, k)
    want = reference(index, text, k)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)


def test_a_word_in_half_the_rows_or_more_is_left_out_only_while_the_others_fill_k(
    index: Index,
) -> None:
    swift = [i for i, _ in index.keyword_search("swift", 3)]
    assert [i for i, _ in index.keyword_search("bank swift", 3)] == swift
    # Past the 3 "swift" rows only "bank" rows are left: the full query ranks them after.
    ten = [i for i, _ in index.keyword_search("bank swift", 10)]
    assert ten[:3] == swift and len(ten) == 10
    assert len(index.keyword_search("bank", 100)) == 60


def test_in_a_two_row_index_a_word_still_finds_its_row(tmp_path: Path) -> None:
    """Every word of a two-row index is in half its rows: none may be dropped for it."""
    docs = {"a.md": ("A", ["The Normans settled in Normandy."]), "b.md": ("B", ["Lakes."])}
    with Index.open(write_index(tmp_path / "two", docs)) as two:
        assert len(two.keyword_search("Where did the Normans settle?", 5)) == 1


def test_rows_with_only_common_words_are_skipped_only_when_provably_out(index: Index) -> None:
    searcher = KeywordSearcher(index._query)
    assert COMMON * searcher.phrase_hits('"account"') > searcher.rows()
    assert searcher.phrase_hits('"swift"') == 3
    terms = fts_terms("swift account")
    # The 3 "swift" rows outscore any row with "account" alone: the top 3 come from them.
    top = searcher._rarer_first(terms, 3, None)
    assert top is not None and len(top) == 3
    # A 4th row can only come from the "account" rows: the full query decides.
    assert searcher._rarer_first(terms, 4, None) is None
    # Nothing common to skip.
    assert searcher._rarer_first(fts_terms("swift"), 3, None) is None


def test_the_allowed_ids_bound_every_query(index: Index) -> None:
    allowed = set(list(index.chunk_ids_matching())[::2])
    got = index.keyword_search("swift account fees", 10, allowed)
    assert got and {i for i, _ in got} <= allowed
    assert index.keyword_search("swift account", 10, set()) == []
