"""The index folder: reading a published generation, searching it, checking it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.errors import EmbedderMismatch, IndexCorrupt, IndexNotFound
from rag.store import Index
from rag.store_layout import MANIFEST, VECTORS, Manifest
from rag.store_write import IndexWriter
from rag.types import Chunk, Document
from rag.vectors import load_vector_index, save_vector_index
from tests.fakes import FakeEmbedder

DOCS = {
    "policies/leave.md": ("Leave", ["Staff get 25 days of paid leave.", "Carry over 5 days."]),
    "policies/travel.md": ("Travel", ["Book flights through the travel desk."]),
    "faq.txt": ("FAQ", ["The cafeteria opens at 8.", "Parking is free on weekends."]),
}


def write_index(root: Path, docs: dict[str, tuple[str, list[str]]] = DOCS) -> Path:
    embedder = FakeEmbedder()
    with IndexWriter(root) as writer:
        writer.begin(Manifest(embedder="fake", dimension=64, chunk_tokens=256, chunk_overlap=32))
        for doc_id, (title, parts) in docs.items():
            text = "\n\n".join(parts)
            document = Document(id=doc_id, source=f"/corpus/{doc_id}", title=title, text=text)
            chunks, pos = [], 0
            for n, part in enumerate(parts):
                start = text.index(part, pos)
                pos = start + len(part)
                chunks.append(
                    Chunk(id=0, doc_id=doc_id, text=part, heading_path=(title, f"part {n}"),
                          page=n + 1, start=start, end=pos)
                )  # fmt: skip
            writer.add_document(document, chunks, embedder.embed_batch(parts))
        writer.commit()
    return root


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index.open(write_index(tmp_path / "idx"))


def test_a_missing_index_says_how_to_build_one(tmp_path: Path) -> None:
    assert not Index.exists(tmp_path)
    with pytest.raises(IndexNotFound, match="rag ingest"):
        Index.open(tmp_path / "nowhere")


def test_counts_documents_and_chunks(index: Index) -> None:
    assert Index.exists(index.path)
    assert index.document_count() == 3
    assert index.chunk_count() == 5
    assert [d.id for d in index.documents()] == sorted(DOCS)
    leave = index.get_document("policies/leave.md")
    assert leave is not None and leave.chunks == 2 and leave.title == "Leave"
    assert leave.source == "/corpus/policies/leave.md"
    assert index.get_document("nope") is None
    assert index.manifest.embedder == "fake" and index.manifest.dimension == 64
    assert index.generation == "gen-000001"


def test_get_chunks_keeps_the_order_asked_and_fills_title(index: Index) -> None:
    ids = sorted(index.chunk_ids_matching())
    chunks = index.get_chunks([ids[3], 999, ids[0]])
    assert [c.id for c in chunks] == [ids[3], ids[0]]
    first = chunks[1]  # the first chunk written
    assert (first.doc_id, first.title) == ("policies/leave.md", "Leave")
    assert first.source == "/corpus/policies/leave.md"
    assert first.heading_path == ("Leave", "part 0") and first.page == 1
    assert first.text == "Staff get 25 days of paid leave." and (first.start, first.end) == (0, 32)
    assert index.get_chunks([]) == []


def test_all_chunks_go_document_by_document(index: Index) -> None:
    chunks = list(index.all_chunks())
    assert [(c.doc_id, c.text) for c in chunks][:2] == [
        ("faq.txt", "The cafeteria opens at 8."),
        ("faq.txt", "Parking is free on weekends."),
    ]
    assert len(chunks) == 5


def test_dense_search_finds_shared_words(index: Index) -> None:
    query = FakeEmbedder().embed_batch(["how many days of paid leave"])[0]
    best_id, score = index.dense_search(query, 2)[0]
    assert index.get_chunks([best_id])[0].text == "Staff get 25 days of paid leave."
    assert 0 < score <= 1.0 + 1e-6
    faq_only = index.chunk_ids_matching(doc_ids=["faq.txt"])
    assert {i for i, _ in index.dense_search(query, 5, allowed=faq_only)} <= faq_only
    with pytest.raises(EmbedderMismatch, match="64-d"):
        index.dense_search(np.zeros(8, dtype=np.float32), 1)


def test_keyword_search_ranks_with_bm25(index: Index) -> None:
    hits = index.keyword_search("travel desk flights", 3)
    assert index.get_chunks([hits[0][0]])[0].doc_id == "policies/travel.md"
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    # Stemming: "weekend" matches "weekends".
    hit = index.keyword_search("weekend", 1)
    assert index.get_chunks([hit[0][0]])[0].text == "Parking is free on weekends."
    allowed = index.chunk_ids_matching(source_glob="policies/*")
    assert {i for i, _ in index.keyword_search("days flights cafeteria", 10, allowed)} <= allowed
    assert index.keyword_search("cafeteria", 5, allowed=set()) == []


def test_similarities_are_the_cosines_a_filtered_search_gives(index: Index) -> None:
    query = FakeEmbedder().embed_batch(["how many days of paid leave"])[0]
    ids = sorted(index.chunk_ids_matching())
    searched = dict(index.dense_search(query, len(ids), set(ids[1:4])))
    got = index.similarities(query, [ids[3], 999, ids[1], ids[2]])
    assert [i for i, _ in got] == [ids[3], ids[1], ids[2]]
    assert dict(got) == pytest.approx(searched, abs=1e-6)
    assert index.similarities(query, []) == []
    with pytest.raises(EmbedderMismatch, match="64-d"):
        index.similarities(np.zeros(8, dtype=np.float32), ids)


@pytest.mark.parametrize(
    "query",
    ['"', "'", "AND", "leave AND OR NOT", "NEAR(a b)", "days*", "(((", "col:leave", "^x", "",
     "  ", "-leave", "é ü 日本", '"unbalanced leave', "a" * 5000, "leave " * 300],
)  # fmt: skip
def test_keyword_search_never_raises_on_user_text(index: Index, query: str) -> None:
    assert isinstance(index.keyword_search(query, 5), list)


def test_chunk_ids_matching_globs_ids_and_sources(index: Index) -> None:
    all_ids = index.chunk_ids_matching()
    assert len(all_ids) == 5
    assert len(index.chunk_ids_matching(source_glob="policies/*")) == 3
    assert len(index.chunk_ids_matching(source_glob="/corpus/*.txt")) == 2
    assert len(index.chunk_ids_matching(doc_ids=["faq.txt", "nope"])) == 2
    both = index.chunk_ids_matching(source_glob="policies/*", doc_ids=["faq.txt"])
    assert both == set()


def test_a_reader_sees_its_generation_until_it_reopens(tmp_path: Path) -> None:
    root = write_index(tmp_path / "idx")
    reader = Index.open(root)
    assert not reader.is_stale()
    write_index(root, {"new.md": ("New", ["A brand new document."])})
    assert reader.is_stale()
    # The old generation's folder is gone, but the open reader still answers from it.
    assert not (root / "gen-000001").exists()
    assert reader.document_count() == 3
    assert reader.keyword_search("cafeteria", 1)
    fresh = Index.open(root)
    assert fresh.generation == "gen-000002" and fresh.document_count() == 4
    reader.close()
    fresh.close()


def test_check_passes_on_a_written_index(index: Index) -> None:
    report = index.check()
    assert report.ok, report
    assert (report.sqlite_chunks, report.faiss_vectors, report.fts_rows) == (5, 5, 5)
    assert report.to_dict()["ok"] is True


def test_check_reports_ids_that_disagree(tmp_path: Path) -> None:
    root = write_index(tmp_path / "idx")
    folder = root / "gen-000001"
    manifest = Manifest.from_file(folder / MANIFEST)
    vectors = load_vector_index(folder / VECTORS, manifest.vector_index, manifest.dimension)
    dropped = int(vectors.ids()[0])
    vectors.remove([dropped])
    vectors.add(np.array([777]), FakeEmbedder().embed_batch(["stray"]))
    save_vector_index(vectors, folder / VECTORS)
    with Index.open(root) as broken:
        report = broken.check()
    assert not report.ok
    assert report.missing_in_faiss == [dropped]
    assert report.missing_in_sqlite == [777]


def test_a_corrupt_manifest_is_reported(tmp_path: Path) -> None:
    root = write_index(tmp_path / "idx")
    (root / "gen-000001" / MANIFEST).write_text("{not json")
    with pytest.raises(IndexCorrupt, match="--reindex"):
        Index.open(root)


def test_a_missing_generation_folder_is_reported(tmp_path: Path) -> None:
    root = write_index(tmp_path / "idx")
    shutil.rmtree(root / "gen-000001")
    with pytest.raises(IndexCorrupt, match="--reindex"):
        Index.open(root)


def test_a_copied_index_folder_still_opens(tmp_path: Path) -> None:
    root = write_index(tmp_path / "idx")
    shutil.copytree(root, tmp_path / "copy")
    with Index.open(tmp_path / "copy") as copy:
        assert copy.document_count() == 3


def test_the_manifest_refuses_another_embedder_with_the_way_out() -> None:
    manifest = Manifest(embedder="minilm", dimension=384, chunk_tokens=256, chunk_overlap=32)
    manifest.require_embedder("minilm", 384)
    manifest.require_embedder()  # nothing to compare
    with pytest.raises(EmbedderMismatch, match=r"'minilm' \(384-d\), not 'e5'.*--embedder e5"):
        manifest.require_embedder("e5", where="idx")
    with pytest.raises(EmbedderMismatch, match=r"not one giving 768-d vectors.*--index idx"):
        manifest.require_embedder(dimension=768, where="idx")
