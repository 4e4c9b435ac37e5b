"""Incremental ingestion: add, change, delete, prune, refuse mismatches (fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import IngestOptions, ingest_paths, remove_documents
from rag.errors import ConfigError, EmbedderMismatch, IndexLocked, IndexNotFound, InputError
from rag.store import Index
from rag.store_write import IndexWriter
from tests.fakes import FakeEmbedder

FILES = {
    "leave.md": "# Leave\n\nStaff get 25 days of paid leave a year.\n",
    "travel.md": "# Travel\n\nBook flights through the travel desk.\n",
    "sub/parking.txt": "Parking is free on weekends.\n",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    for rel, text in FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def state(index_dir: Path) -> dict[str, tuple[str, list[int]]]:
    with Index.open(index_dir) as index:
        assert index.check().ok
        return {
            d.id: (d.content_hash, sorted(index.chunk_ids_matching(doc_ids=[d.id])))
            for d in index.documents()
        }


def test_first_run_adds_everything_and_a_second_embeds_nothing(
    corpus: Path, tmp_path: Path
) -> None:
    embedder = FakeEmbedder()
    index_dir = tmp_path / "index"
    first = ingest_paths([corpus], index_dir, embedder=embedder)
    assert (first.added, first.updated, first.removed, first.unchanged) == (3, 0, 0, 0)
    assert first.chunks == first.embedded == 3 and first.failed == []
    embedded = embedder.texts_embedded
    generation = Index.open(index_dir).generation
    second = ingest_paths([corpus], index_dir, embedder=embedder)
    assert (second.added, second.updated, second.removed, second.unchanged) == (0, 0, 0, 3)
    assert second.embedded == 0 and second.chunks == 3
    assert embedder.texts_embedded == embedded, "nothing re-embedded"
    assert Index.open(index_dir).generation == generation, "no new generation for no change"
    assert json.loads(json.dumps(second.to_dict()))["unchanged"] == 3


def test_a_changed_file_replaces_only_its_chunks(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    before = state(index_dir)
    (corpus / "travel.md").write_text("# Travel\n\nTrains are preferred for short trips.\n")
    embedder = FakeEmbedder()
    summary = ingest_paths([corpus], index_dir, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 2)
    assert embedder.texts_embedded == 1
    after = state(index_dir)
    assert after["leave.md"] == before["leave.md"]
    assert after["travel.md"][0] != before["travel.md"][0]
    assert not set(after["travel.md"][1]) & set(before["travel.md"][1]), "old chunks are gone"
    with Index.open(index_dir) as index:
        assert index.keyword_search("trains", 1)
        assert index.keyword_search("flights", 1) == []


def test_deleted_files_are_pruned_unless_asked_not_to(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    (corpus / "sub" / "parking.txt").unlink()
    kept = ingest_paths([corpus], index_dir, IngestOptions(prune=False), embedder=FakeEmbedder())
    assert kept.removed == 0 and "sub/parking.txt" in state(index_dir)
    pruned = ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    assert pruned.removed == 1 and pruned.chunks == 2
    assert sorted(state(index_dir)) == ["leave.md", "travel.md"]


def test_an_excluded_file_leaves_a_synced_folder(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    summary = ingest_paths(
        [corpus], index_dir, IngestOptions(exclude=["sub/*"]), embedder=FakeEmbedder()
    )
    assert summary.removed == 1
    assert "sub/parking.txt" not in state(index_dir)


def test_files_named_directly_never_prune_others(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    extra = tmp_path / "extra.md"
    extra.write_text("# Extra\n\nAn extra note.\n")
    summary = ingest_paths([extra], index_dir, embedder=FakeEmbedder())
    assert (summary.added, summary.removed) == (1, 0)
    assert sorted(state(index_dir)) == ["extra.md", "leave.md", "sub/parking.txt", "travel.md"]


def test_records_removed_from_a_jsonl_file_leave_the_index(tmp_path: Path) -> None:
    data = tmp_path / "faq.jsonl"
    rows = [{"id": n, "text": f"answer number {n}"} for n in range(3)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    index_dir = tmp_path / "index"
    assert ingest_paths([data], index_dir, embedder=FakeEmbedder()).added == 3
    data.write_text("\n".join(json.dumps(r) for r in rows[:2]))
    summary = ingest_paths([data], index_dir, embedder=FakeEmbedder())
    assert (summary.removed, summary.unchanged) == (1, 2)
    assert sorted(state(index_dir)) == ["faq.jsonl#0", "faq.jsonl#1"]


def test_another_embedder_is_refused_with_the_way_out(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    with pytest.raises(EmbedderMismatch, match="--reindex"):
        ingest_paths([corpus], index_dir, embedder=FakeEmbedder(name="other"))
    with pytest.raises(EmbedderMismatch, match="'fake'"):
        ingest_paths([corpus], index_dir, IngestOptions(embedder_name="minilm"))
    rebuilt = ingest_paths(
        [corpus],
        index_dir,
        IngestOptions(reindex=True),
        embedder=FakeEmbedder(dimension=32, name="other"),
    )
    assert rebuilt.added == 3
    with Index.open(index_dir) as index:
        assert (index.manifest.embedder, index.manifest.dimension) == ("other", 32)


def test_other_chunk_sizes_need_reindex(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, IngestOptions(chunk_tokens=128), embedder=FakeEmbedder())
    # Not saying keeps the index's own settings.
    assert ingest_paths([corpus], index_dir, embedder=FakeEmbedder()).unchanged == 3
    with pytest.raises(ConfigError, match="--reindex"):
        ingest_paths([corpus], index_dir, IngestOptions(chunk_tokens=64), embedder=FakeEmbedder())
    ingest_paths(
        [corpus], index_dir, IngestOptions(chunk_tokens=64, reindex=True), embedder=FakeEmbedder()
    )
    assert Index.open(index_dir).manifest.chunk_tokens == 64


def test_switching_to_hnsw_converts_without_reembedding(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    embedder = FakeEmbedder()
    summary = ingest_paths(
        [corpus], index_dir, IngestOptions(vector_index="hnsw"), embedder=embedder
    )
    assert summary.unchanged == 3 and embedder.texts_embedded == 0
    with Index.open(index_dir) as index:
        assert index.manifest.vector_index == "hnsw" and index.check().ok


def test_a_second_writer_is_refused(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    with IndexWriter(index_dir), pytest.raises(IndexLocked, match="another process"):
        ingest_paths([corpus], index_dir, embedder=FakeEmbedder())


def test_remove_documents_by_id(corpus: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    summary = remove_documents(index_dir, ["leave.md", "nope.md"])
    assert summary.removed == 1 and summary.chunks == 2
    assert summary.failed == [("nope.md", "not in the index")]
    assert sorted(state(index_dir)) == ["sub/parking.txt", "travel.md"]
    with pytest.raises(IndexNotFound, match="rag ingest"):
        remove_documents(tmp_path / "none", ["x"])


def test_the_same_id_from_two_folders_is_reported_not_mixed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "readme.md").write_text(f"# {name}\n\nfolder {name}\n")
    summary = ingest_paths(
        [tmp_path / "a", tmp_path / "b"], tmp_path / "i", embedder=FakeEmbedder()
    )
    assert summary.added == 1
    assert len(summary.failed) == 1 and "duplicate document id" in summary.failed[0][1]


def test_a_missing_path_is_an_error_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        ingest_paths([tmp_path / "missing"], tmp_path / "index", embedder=FakeEmbedder())
    assert not (tmp_path / "index").exists()


def test_chunks_carry_heading_paths_and_spans(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text("# Guide\n\n## Install\n\nRun the installer.\n")
    ingest_paths([doc], tmp_path / "index", embedder=FakeEmbedder())
    with Index.open(tmp_path / "index") as index:
        [only] = list(index.all_chunks())
    text = doc.read_text()
    assert only.heading_path == ("Guide", "Install")
    assert text[only.start : only.end] == only.text and only.title == "Guide"
    assert only.source == str(doc.resolve())


def test_an_index_from_before_the_keyword_postings_gets_them_without_embedding(
    corpus: Path, tmp_path: Path
) -> None:
    from rag.store_layout import POSTINGS

    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    with Index.open(index_dir) as index:
        (index_dir / index.generation / POSTINGS).unlink()
        generation, before = index.generation, index.keyword_search("paid leave", 3)
    embedder = FakeEmbedder()
    summary = ingest_paths([corpus], index_dir, embedder=embedder)
    assert summary.unchanged == 3 and embedder.texts_embedded == 0
    with Index.open(index_dir) as index:
        assert index.generation != generation and index.check().ok
        assert (index_dir / index.generation / POSTINGS).is_file()
        after = index.keyword_search("paid leave", 3)
        assert [i for i, _ in after] == [i for i, _ in before]
        assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-5)
