"""The index's write side: one writer at a time, nothing visible before commit, no leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import EmbedderMismatch, IndexLocked
from rag.store import Index
from rag.store_layout import Manifest
from rag.store_write import IndexWriter
from rag.types import Chunk, Document
from tests.fakes import FakeEmbedder


def manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "embedder": "fake",
        "dimension": 64,
        "chunk_tokens": 256,
        "chunk_overlap": 32,
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def add(writer: IndexWriter, doc_id: str, text: str) -> list[int]:
    document = Document(id=doc_id, source=doc_id, title=doc_id, text=text)
    chunk = Chunk(id=0, doc_id=doc_id, text=text, start=0, end=len(text))
    return writer.add_document(document, [chunk], FakeEmbedder().embed_batch([text]))


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    with IndexWriter(tmp_path) as first:
        first.begin(manifest())
        with pytest.raises(IndexLocked, match="another process is writing"):
            IndexWriter(tmp_path)
    # Released on exit: the next writer gets in.
    IndexWriter(tmp_path).release()


def test_nothing_is_visible_before_commit(tmp_path: Path) -> None:
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        add(writer, "a.md", "alpha")
        writer.commit()
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        add(writer, "b.md", "beta")
        with Index.open(tmp_path) as reader:
            assert [d.id for d in reader.documents()] == ["a.md"]
        # Leaving without commit discards the staged copy.
    with Index.open(tmp_path) as reader:
        assert [d.id for d in reader.documents()] == ["a.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "CURRENT", "gen-000001"]


def test_an_exception_discards_the_stage(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        add(writer, "a.md", "alpha")
        raise RuntimeError("boom")
    assert not Index.exists(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def test_leftovers_of_a_crashed_writer_are_removed(tmp_path: Path) -> None:
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        add(writer, "a.md", "alpha")
        writer.commit()
    (tmp_path / "tmp-crashed").mkdir()
    (tmp_path / "gen-000007").mkdir()
    (tmp_path / "uploads").mkdir()
    IndexWriter(tmp_path).release()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".lock", "CURRENT", "gen-000001", "uploads"]


def test_replacing_a_document_gives_new_ids_and_never_reuses_old_ones(tmp_path: Path) -> None:
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        first = add(writer, "a.md", "alpha")
        # Replaced within the same writer: only the second version reaches FAISS.
        second = add(writer, "a.md", "alpha two")
        writer.commit()
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        writer.remove_document("a.md")
        third = add(writer, "a.md", "alpha three")
        writer.commit()
    assert first[0] < second[0] < third[0]
    with Index.open(tmp_path) as reader:
        assert reader.chunk_ids_matching() == set(third)
        assert reader.check().ok


def test_another_embedder_is_refused_unless_reindexing(tmp_path: Path) -> None:
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        add(writer, "a.md", "alpha")
        writer.commit()
    with IndexWriter(tmp_path) as writer, pytest.raises(EmbedderMismatch, match="--reindex"):
        writer.begin(manifest(embedder="other"))
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest(embedder="other", dimension=32), reindex=True)
        writer.commit()
    with Index.open(tmp_path) as reader:
        assert reader.manifest.embedder == "other" and reader.document_count() == 0


@pytest.mark.parametrize("kind", ["flat-fp16", "hnsw", "ivf"])
def test_the_vector_index_kind_is_converted_in_place(tmp_path: Path, kind: str) -> None:
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest())
        for n in range(20):
            add(writer, f"d{n}.md", f"document number {n} about topic {n % 3}")
        writer.commit()
    with IndexWriter(tmp_path) as writer:
        writer.begin(manifest(vector_index=kind))
        writer.commit()
    with Index.open(tmp_path) as reader:
        assert reader.manifest.vector_index == kind
        assert reader.check().ok
        query = FakeEmbedder().embed_batch(["document number 7 about topic 1"])[0]
        best = reader.get_chunks([reader.dense_search(query, 1)[0][0]])[0]
        assert best.doc_id == "d7.md"


def test_a_writer_that_may_wait_gets_the_lock_when_the_other_lets_go(tmp_path: Path) -> None:
    """What a server replica does: wait for the writer in another replica rather than fail."""
    import threading

    first = IndexWriter(tmp_path)
    threading.Timer(0.3, first.release).start()
    with IndexWriter(tmp_path, wait_s=60) as second:
        assert second.live is None
    with IndexWriter(tmp_path), pytest.raises(IndexLocked):
        IndexWriter(tmp_path, wait_s=0.2)
