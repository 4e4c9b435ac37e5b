"""The manifest records the encoder that computed an index's vectors; fp32 and int8 MiniLM
vectors share an index (bench/embed_quality.py has the figures), so the embedder guard compares
embedders by name, not by encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.errors import EmbedderMismatch
from rag.retrieve import Retriever
from rag.store import Index
from rag.store_layout import MANIFEST, Manifest
from tests.fakes import FakeEmbedder


def test_an_old_manifest_reads_as_torch_fp32(tmp_path: Path) -> None:
    written = Manifest(embedder="minilm", dimension=384, chunk_tokens=256, chunk_overlap=32)
    raw = json.loads(written.to_json())
    del raw["encoder"]  # a manifest from before the field
    (tmp_path / MANIFEST).write_text(json.dumps(raw))
    assert Manifest.from_file(tmp_path / MANIFEST).encoder == "torch-fp32"


def test_each_encoder_that_writes_is_recorded(tmp_path: Path) -> None:
    new = Manifest(embedder="minilm", dimension=384, chunk_tokens=256, chunk_overlap=32)
    assert new.encoder == ""  # not recorded until an encoder writes
    built = new.with_encoder("onnx-int8")
    assert built.encoder == "onnx-int8" and built.with_encoder("onnx-int8") == built
    assert built.with_encoder("torch-fp32").encoder == "onnx-int8+torch-fp32"
    (tmp_path / MANIFEST).write_text(built.to_json())
    assert Manifest.from_file(tmp_path / MANIFEST) == built


class _Encoded(FakeEmbedder):
    """The same model (name, vectors) through a named encoder."""

    def __init__(self, encoder: str, name: str = "fake") -> None:
        super().__init__(name=name)
        self.encoder = encoder


def test_encoders_of_one_embedder_share_an_index(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Kettles\n\nThe kettle boils water in two minutes.\n")
    index_dir = tmp_path / "index"
    ingest_paths([docs], index_dir, embedder=_Encoded("onnx-int8"))
    (docs / "b.md").write_text("# Ferries\n\nThe ferry crossing takes forty minutes.\n")
    with Index.open(index_dir) as index:
        assert index.manifest.encoder == "onnx-int8"
    summary = ingest_paths([docs], index_dir, embedder=_Encoded("torch-fp32"))
    assert (summary.added, summary.unchanged) == (1, 1)
    with Index.open(index_dir) as index:
        assert index.manifest.encoder == "onnx-int8+torch-fp32"
        hits = Retriever(index, _Encoded("torch-fp32")).search("ferry crossing", k=1)
        assert hits[0].chunk.doc_id == "b.md"
    with pytest.raises(EmbedderMismatch):
        ingest_paths([docs], index_dir, embedder=_Encoded("onnx-int8", name="other"))
