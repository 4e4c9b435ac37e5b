"""Keyword postings: FTS5's full OR query's bm25 ranking and scores, to the last bit, in numpy."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from rag.errors import IndexCorrupt
from rag.keyword import KeywordSearcher, fts_terms
from rag.postings import Postings, Tokenizer
from rag.store import Index
from rag.store_layout import POSTINGS, read_current
from rag.store_write import IndexWriter
from tests.rag.test_keyword import reference
from tests.rag.test_store import write_index

_WORDS = (
    "wire transfer transfers transferring card cards fees fee abroad loan loans overdraft "
    "savings rate rates branch account accounts café cafe Zürich refer referral referring "
    "deposit deposited deposits check checks bonus monthly limit"
)
VOCABULARY = _WORDS.split()

QUERIES = [
    "wire transfer fees abroad",
    "How do I refer someone? referring, referral",
    "Café in Zurich",
    "account",
    "the and of",
    "deposited checks returned unpaid",
    "transfer transfers transferring",
    "nothingmatcheshere",
    'quote" AND (card OR NEAR loan*) col:umn',
    "monthly bonus limit savings rate branch overdraft loan card wire",
    "漢字 ñandú 🙂 Ωmega",
    "wire" + "x" * 5000,
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """150 rows of 3-30 words each, headings from the same words (weighted half), repeats."""
    draw = random.Random(7)
    docs: dict[str, tuple[str, list[str]]] = {}
    for n in range(50):
        title = " ".join(draw.sample(VOCABULARY, 2))
        parts = [" ".join(draw.choices(VOCABULARY, k=draw.randint(3, 30))) + "." for _ in range(3)]
        docs[f"d{n:02d}.md"] = (title, parts)
    return Index.open(write_index(tmp_path_factory.mktemp("postings") / "idx", docs))


def restricted(index: Index, text: str, k: int, allowed: set[int]) -> list[tuple[int, float]]:
    sql = (
        "SELECT rowid, -bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
        "AND rowid IN (SELECT value FROM json_each(?)) ORDER BY s DESC, rowid LIMIT ?"
    )
    params = (" OR ".join(fts_terms(text)), str(sorted(allowed)), k)
    return [(int(r), float(s)) for r, s in index._query(sql, params)]


@pytest.mark.parametrize("text", QUERIES)
@pytest.mark.parametrize("k", [1, 5, 20, 1000])
def test_ids_order_and_scores_are_fts5s_to_the_bit(index: Index, text: str, k: int) -> None:
    postings = index._keyword.postings()
    assert postings is not None
    got = postings.search([t.strip('"') for t in fts_terms(text)], k, None)
    assert got == reference(index, text, k)
    assert index.keyword_search(text, k) == reference(index, text, k)


@pytest.mark.parametrize("text", QUERIES)
def test_allowed_ids_give_fts5s_ranking_among_them(index: Index, text: str) -> None:
    ids = sorted(index.chunk_ids_matching())
    allowed = set(random.Random(len(text)).sample(ids, 40)) | {10**9}  # an id nowhere
    assert index.keyword_search(text, 7, allowed) == restricted(index, text, 7, allowed)


def test_query_words_get_fts5s_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.postings._TOKENS_CACHED", 2)  # forgets as it goes
    tokenizer = Tokenizer()
    assert tokenizer.tokens(["referring", "Café", "zürich", "foo_bar", "x"]) == [
        ("refer",),
        ("cafe",),
        ("zurich",),
        ("foo", "bar"),
        ("x",),
    ]


def test_a_word_of_several_tokens_is_left_to_fts5(index: Index) -> None:
    postings = index._keyword.postings()
    assert postings is not None
    assert postings.search(["wire_transfer"], 5, None) is None
    # The phrase "wire transfer" (adjacent) is FTS5's to match, and it still is (FTS5's path
    # leaves out a word in half the rows, whose idf is 1e-6: the scores agree to 1e-6).
    got, want = (
        index.keyword_search("wire_transfer fees", 5),
        reference(index, "wire_transfer fees", 5),
    )
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


def test_an_index_written_before_the_postings_searches_with_fts5(
    index: Index, tmp_path: Path
) -> None:
    old_dir = tmp_path / "old"
    shutil.copytree(index.path, old_dir)
    (old_dir / index.generation / POSTINGS).unlink()
    with Index.open(old_dir) as old:
        assert old._keyword.postings() is None
        assert old.check().ok
        for text in QUERIES:
            assert [i for i, _ in old.keyword_search(text, 5)] == [
                i for i, _ in index.keyword_search(text, 5)
            ]


def test_removed_and_replaced_documents_leave_the_scores_fts5s(
    index: Index, tmp_path: Path
) -> None:
    root = tmp_path / "edited"
    shutil.copytree(index.path, root)
    with IndexWriter(root) as writer:
        assert writer.manifest is not None
        writer.begin(writer.manifest)
        for doc_id in ("d03.md", "d17.md", "d40.md"):
            writer.remove_document(doc_id)
        writer.commit()
    with Index.open(root) as edited:
        assert edited.check().ok
        for text in QUERIES:
            assert edited.keyword_search(text, 10) == reference(edited, text, 10)


def test_an_index_that_never_held_a_document_has_postings_and_finds_nothing(
    tmp_path: Path,
) -> None:
    # FTS5's averages record of a table that never held a row is empty: no numbers at all.
    root = write_index(tmp_path / "empty", {})
    with Index.open(root) as empty:
        assert empty.check().ok
        assert (root / empty.generation / POSTINGS).is_file()
        assert empty.keyword_search("wire transfer fees", 5) == []


def test_a_damaged_postings_file_is_reported_with_the_fix(index: Index, tmp_path: Path) -> None:
    root = tmp_path / "damaged"
    shutil.copytree(index.path, root)
    (root / index.generation / POSTINGS).write_bytes(b"not a numpy archive")
    with Index.open(root) as damaged, pytest.raises(IndexCorrupt, match="--reindex"):
        damaged.keyword_search("wire", 5)


def test_a_writer_that_fails_writing_the_postings_publishes_nothing(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "failing"
    shutil.copytree(index.path, root)
    live = read_current(root)

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("rag.store_write.write_postings", broken)
    with IndexWriter(root) as writer, pytest.raises(OSError, match="disk full"):
        assert writer.manifest is not None
        writer.begin(writer.manifest)
        writer.remove_document("d05.md")
        writer.commit()
    assert read_current(root) == live
    assert sorted(p.name for p in root.iterdir()) == [".lock", "CURRENT", live]


def test_searches_from_many_threads_agree(index: Index) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fresh = KeywordSearcher(index._query, index.path / index.generation / POSTINGS)
    want = [reference(index, text, 5) for text in QUERIES]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: fresh.search(t, 5), QUERIES * 8))
    assert got == want * 8


def test_postings_load_checks_themselves(index: Index, tmp_path: Path) -> None:
    import numpy as np

    path = index.path / index.generation / POSTINGS
    with np.load(path) as data:
        arrays = dict(data)
    arrays["offsets"] = arrays["offsets"][:-1]
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(IndexCorrupt, match="rebuild"):
        Postings(broken, Tokenizer())


@pytest.mark.parametrize("text", ["bank swift", "bank account fees swift", "bank", "bank loan"])
@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_words_in_half_the_rows_are_added_last_and_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, k: int
) -> None:
    """ "bank" is in every row: the top k is found without it, then scored in full; when its
    rows could reach the top k (fewer rows hold another word), every row is scored."""
    draw = random.Random(5)
    docs = {
        f"d{n:02d}.md": (
            f"D{n}",
            [" ".join(["bank", *draw.sample(VOCABULARY, 4), *(["swift"] if n % 20 == 0 else [])])],
        )
        for n in range(60)
    }
    with Index.open(write_index(tmp_path / "idx", docs)) as index:
        postings = index._keyword.postings()
        assert postings is not None
        rescored: list[int] = []
        real = Postings._scores

        def spy(self: Postings, found: object, phrases: object) -> object:
            rescored.append(len(found))  # type: ignore[arg-type]
            return real(self, found, phrases)  # type: ignore[arg-type]

        monkeypatch.setattr(Postings, "_scores", spy)
        assert index.keyword_search(text, k) == reference(index, text, k)
        if text == "bank swift" and k <= 3:
            assert rescored and rescored[0] <= 3  # only the "swift" rows were scored in full
        if text == "bank swift" and k > 3:
            assert not rescored  # the 3 "swift" rows cannot fill k: every row scored
