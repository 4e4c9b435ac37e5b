"""`rag ingest --ray` against a real Ray cluster of two local nodes, started and stopped here.

The cluster's result must be the local one (the same chunks, vectors within float tolerance),
incremental runs must ship only changed documents, and a lost node or a killed driver must leave
the old index or the new one, with a rerun finishing the work.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest import ray_ingest
from ingest.chunker import ChunkerConfig
from ingest.loaders import SourceFile
from ingest.pipeline import IngestOptions, IngestSummary, ingest_paths
from ingest.ray_ingest import _load_batch, ingest_on_ray
from ingest.ray_local import LocalCluster
from ingest.ray_spool import SPOOL, Spool
from rag.embed import Embedder, load_embedder
from rag.errors import ClusterError
from rag.store import Index
from rag.store_layout import VECTORS
from rag.types import Chunk, Document
from rag.vectors import load_vector_index

pytest.importorskip("ray", reason="install the ray extra: pip install -e '.[dev,ray]'")

TOPICS = ["leave", "travel", "parking", "payroll", "security", "expenses", "training", "canteen"]


def write_corpus(folder: Path, docs: int = 24) -> Path:
    """Markdown files of a few paragraphs each, different enough to embed differently."""
    for n in range(docs):
        topic = TOPICS[n % len(TOPICS)]
        paragraphs = [
            f"Policy {n} on {topic}, section {s}: staff in office {n % 5} follow rule {n * 7 + s} "
            f"and file form {topic.upper()}-{n}-{s} with their manager before day {s + n % 9}."
            for s in range(1, 13)
        ]
        text = f"# {topic.title()} policy {n}\n\n" + "\n\n".join(paragraphs) + "\n"
        (folder / f"{topic}-{n:02d}.md").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{topic}-{n:02d}.md").write_text(text)
    return folder


def contents(index_dir: Path) -> dict[tuple[str, int], tuple[Any, np.ndarray]]:
    """Every chunk by (document, position): its fields without the row id, and its vector."""
    with Index.open(index_dir) as index:
        assert index.check().ok
        chunks = sorted(index.all_chunks(), key=lambda c: (c.doc_id, c.id))
        manifest = index.manifest
        stored = load_vector_index(
            index_dir / index.generation / VECTORS, manifest.vector_index, manifest.dimension
        )
    vectors = stored.vectors(np.asarray([c.id for c in chunks], dtype=np.int64))
    out = {}
    position: dict[str, int] = {}
    for chunk, vector in zip(chunks, vectors, strict=True):
        n = position[chunk.doc_id] = position.get(chunk.doc_id, -1) + 1
        fields = (chunk.text, chunk.heading_path, chunk.page, chunk.start, chunk.end, chunk.title)
        out[(chunk.doc_id, n)] = (fields, vector)
    return out


def assert_same_index(ray_index: Path, local_index: Path) -> None:
    got, want = contents(ray_index), contents(local_index)
    assert got.keys() == want.keys()
    for key, (fields, vector) in want.items():
        assert got[key][0] == fields, key
        np.testing.assert_allclose(got[key][1], vector, atol=1e-4, err_msg=str(key))


def counts(summary: IngestSummary) -> tuple[int, int, int, int, int]:
    return (summary.added, summary.updated, summary.removed, summary.unchanged, summary.chunks)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    model = load_embedder("minilm", device="cpu")
    model.warm_up()
    return model


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(nodes=2, cpus_per_node=1) as started:
        yield started


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several embedding batches even for a small corpus, so work is spread and spooled."""
    monkeypatch.setattr(ray_ingest, "EMBED_BATCH_CHARS", 3_000)


def test_the_cluster_builds_the_index_local_ingestion_builds_and_ships_only_changes(
    cluster: LocalCluster, embedder: Embedder, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    local, remote = tmp_path / "local", tmp_path / "ray"
    expected = ingest_paths([corpus], local, embedder=embedder)
    summary = ingest_on_ray([corpus], remote, IngestOptions(), address=cluster.address)
    assert counts(summary) == counts(expected) and summary.failed == []
    assert summary.embedded == summary.chunks > 24
    assert_same_index(remote, local)
    assert not (remote / SPOOL).exists(), "the spool is cleared after the commit"

    (corpus / "leave-00.md").write_text("# Leave\n\nEveryone gets 30 days of leave now.\n")
    (corpus / "travel-01.md").unlink()
    (corpus / "new.md").write_text("# New\n\nThe canteen opens at eight.\n")
    expected = ingest_paths([corpus], local, embedder=embedder)
    summary = ingest_on_ray([corpus], remote, IngestOptions(), address=cluster.address)
    assert counts(summary) == counts(expected) == (1, 1, 1, 22, expected.chunks)
    assert summary.embedded == 2, "only the changed and the new document were embedded"
    assert_same_index(remote, local)

    again = ingest_on_ray([corpus], remote, IngestOptions(), address=cluster.address)
    assert (again.unchanged, again.embedded) == (24, 0)


def test_unchanged_documents_come_back_from_loading_without_their_text(tmp_path: Path) -> None:
    """What `--ray` ships back for a document whose stored hash matches: no text to embed."""
    corpus = write_corpus(tmp_path / "corpus", docs=2)
    files = [SourceFile(p, p.name, corpus) for p in sorted(corpus.iterdir())]
    first = _load_batch(files, IngestOptions(), {})
    assert all(isinstance(o, list) and o[0].text for o in first)
    unchanged = first[0][0]
    assert isinstance(unchanged, Document)
    again = _load_batch(files, IngestOptions(), {unchanged.id: unchanged.content_hash})
    assert isinstance(again[0], list) and again[0][0].text == ""
    assert again[0][0].content_hash == unchanged.content_hash
    assert isinstance(again[1], list) and again[1][0].text, "a changed document keeps its text"


def test_the_spool_gives_back_what_was_put_for_the_same_text_and_settings(tmp_path: Path) -> None:
    doc = Document("a.md", "/x/a.md", "A", "Alpha text.")
    chunks = [Chunk(0, "a.md", "Alpha text.", ("A",), None, 0, 11, "A", "/x/a.md")]
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)[:1]
    config = ChunkerConfig(64, 8)
    key = Spool.key(doc, "minilm", config)
    Spool(tmp_path).put([key], [(chunks, vectors)])
    got = Spool(tmp_path).get(key)
    assert got is not None and got[0] == chunks
    np.testing.assert_array_equal(got[1], vectors)
    changed = Document("a.md", "/x/a.md", "A", "Alpha text, edited.")
    assert Spool(tmp_path).get(Spool.key(changed, "minilm", config)) is None
    assert Spool(tmp_path).get(Spool.key(doc, "other-embedder", config)) is None
    (tmp_path / SPOOL / "garbage.npz").write_bytes(b"not a zip")
    assert Spool(tmp_path).get(key) is not None, "an unreadable file is skipped, not fatal"


def wait_for_spool(index_dir: Path, process: Any = None, timeout_s: float = 300) -> None:
    """Until the run has finished (and spooled) at least one embedding batch."""
    deadline = time.monotonic() + timeout_s
    while not any((index_dir / SPOOL).glob("[!.]*.npz")):
        assert time.monotonic() < deadline, "no batch finished in time"
        if process is not None:
            assert process.poll() is None, "the run ended before a batch was spooled"
        time.sleep(0.05)


def test_a_killed_driver_leaves_the_old_index_and_a_rerun_continues(
    cluster: LocalCluster, embedder: Embedder, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus", docs=2)
    index_dir = tmp_path / "index"
    ingest_paths([corpus], index_dir, embedder=embedder)
    before = contents(index_dir)
    generation = Index.open(index_dir).generation
    write_corpus(tmp_path / "corpus", docs=40)
    command = ["ingest", str(corpus), "--index", str(index_dir), "--ray", cluster.address]
    # Small batches, as in this process, so the run is long enough to kill mid-way.
    driver = subprocess.Popen(
        [sys.executable, "-c", _SMALL_BATCH_CLI, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_spool(index_dir, driver)
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    with Index.open(index_dir) as index:
        assert index.generation == generation, "a killed driver publishes nothing"
    assert contents(index_dir).keys() == before.keys()

    rerun = ingest_on_ray([corpus], index_dir, IngestOptions(), address=cluster.address)
    assert (rerun.added, rerun.unchanged) == (38, 2)
    assert rerun.resumed > 0, "the batches finished before the kill were not embedded again"
    assert rerun.embedded + rerun.resumed == rerun.chunks - len(before)
    local = tmp_path / "local"
    ingest_paths([corpus], local, embedder=embedder)
    assert_same_index(index_dir, local)


#: `rag ingest ...` with small embedding batches (the test's driver runs in a subprocess).
_SMALL_BATCH_CLI = (
    "import sys\n"
    "from ingest import ray_ingest\n"
    "ray_ingest.EMBED_BATCH_CHARS = 3000\n"
    "from rag.cli import main\n"
    "sys.argv = ['rag', *sys.argv[1:]]\n"
    "main()\n"
)


def test_a_lost_node_hands_its_batches_to_the_other(
    embedder: Embedder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its own cluster: this test kills one of the two nodes. Small batches (one document
    each), so most of them are still to embed when the node goes, however fast the encoder."""
    monkeypatch.setattr(ray_ingest, "EMBED_BATCH_CHARS", 1)
    corpus = write_corpus(tmp_path / "corpus", docs=300)
    index_dir = tmp_path / "index"
    outcome: dict[str, Any] = {}
    with LocalCluster(nodes=2, cpus_per_node=1) as cluster:

        def run() -> None:
            try:
                outcome["summary"] = ingest_on_ray(
                    [corpus], index_dir, IngestOptions(), address=cluster.address
                )
            except BaseException as error:
                outcome["error"] = error

        caplog.set_level(logging.WARNING, logger="ingest.ray")
        runner = threading.Thread(target=run)
        runner.start()
        wait_for_spool(index_dir)
        cluster.kill_node(1)
        runner.join(timeout=600)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["summary"].added == 300
    assert "a Ray embedding worker died" in caplog.text
    local = tmp_path / "local"
    ingest_paths([corpus], local, embedder=embedder)
    assert_same_index(index_dir, local)


def test_an_address_where_no_cluster_answers_fails_at_once_and_writes_nothing(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    corpus = write_corpus(tmp_path / "corpus", docs=1)
    with pytest.raises(ClusterError, match=rf"no Ray cluster answers at 127.0.0.1:{port}"):
        ingest_on_ray([corpus], tmp_path / "index", IngestOptions(), address=f"127.0.0.1:{port}")
    assert not (tmp_path / "index").exists()
