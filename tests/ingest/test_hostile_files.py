"""Hostile files (issue 14) through the loaders, `ingest_paths` and `rag ingest`.

Every file of `hostile_files.HOSTILE` is refused with its reason, in its own worker process,
without taking the batch down; the odd-but-legitimate ones are read, quickly. The per-file time
budget and memory cap kill a read that runs away, and the next file gets a fresh reader. The
counts go to ``volumes/loaders.json`` under the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.bounded import BoundedReader
from ingest.file_limits import FileLimits
from ingest.loaders import SourceFile
from ingest.pipeline import IngestOptions, ingest_paths
from rag.errors import Cancelled, InputError
from rag.store import Index
from tests.fakes import FakeEmbedder
from tests.ingest.hostile_files import ACCEPTED, HOSTILE, HostileFile, slow_html
from tests.volumes import record_volumes

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("hostile")
    for case in HOSTILE + ACCEPTED:
        (folder / case.name).write_bytes(case.build())
    yield folder
    record_volumes(
        tmp_path_factory,
        "loaders",
        {
            "files": len(OUTCOMES),
            "refused_with_reason": sum(o == "refused" for o in OUTCOMES.values()),
            "read": sum(o == "read" for o in OUTCOMES.values()),
            "batch_crashes": sum(o == "crash" for o in OUTCOMES.values()),
            "outcomes": OUTCOMES,
        },
    )


@pytest.fixture(scope="module")
def reader() -> Iterator[BoundedReader]:
    with BoundedReader() as reading:
        yield reading


def read(reader: BoundedReader, folder: Path, name: str) -> list:
    return reader.read(SourceFile(path=folder / name, doc_id=name))


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.name)
def test_each_hostile_file_is_refused_with_its_reason(
    hostile_dir: Path, reader: BoundedReader, case: HostileFile
) -> None:
    OUTCOMES[case.name] = "crash"
    with pytest.raises(InputError, match=re.escape(case.reason)):
        read(reader, hostile_dir, case.name)
    OUTCOMES[case.name] = "refused"


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.name)
def test_odd_but_legitimate_files_are_read(
    hostile_dir: Path, reader: BoundedReader, case: HostileFile
) -> None:
    OUTCOMES[case.name] = "crash"
    documents = read(reader, hostile_dir, case.name)
    assert documents
    for document in documents:  # storable: valid UTF-8 everywhere (U+FFFD for lone surrogates)
        for text in (document.id, document.title, document.text):
            text.encode("utf-8")
    OUTCOMES[case.name] = "read"


def test_the_time_budget_kills_a_slow_read_and_the_next_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "slow.html").write_bytes(slow_html())
    (tmp_path / "fine.md").write_text("# Fine\n\nRead after the slow one.\n")
    with BoundedReader(FileLimits(seconds=1)) as bounded:
        budget = r"took longer than 1 s to read .*RAG_MAX_FILE_SECONDS"
        with pytest.raises(InputError, match=budget):
            read(bounded, tmp_path, "slow.html")
        assert read(bounded, tmp_path, "fine.md")[0].title == "Fine"
    OUTCOMES["slow.html (1 s budget)"] = "refused"


def test_the_memory_cap_fails_the_file_not_the_batch(tmp_path: Path) -> None:
    (tmp_path / "big.html").write_bytes(slow_html())
    (tmp_path / "fine.md").write_text("# Fine\n\ntext\n")
    with BoundedReader(FileLimits(memory_bytes=200 << 20, seconds=600)) as bounded:
        with pytest.raises(InputError, match="memory"):
            read(bounded, tmp_path, "big.html")
        assert read(bounded, tmp_path, "fine.md")[0].title == "Fine"
    OUTCOMES["big.html (200 MiB cap)"] = "refused"


def test_a_reader_that_dies_fails_its_file_and_a_stop_cancels(tmp_path: Path) -> None:
    (tmp_path / "slow.html").write_bytes(slow_html())
    (tmp_path / "fine.md").write_text("# Fine\n\ntext\n")
    stop = threading.Event()
    with BoundedReader(FileLimits(seconds=600), stop=stop) as bounded:
        read(bounded, tmp_path, "fine.md")  # starts the worker
        worker = bounded._worker
        assert worker is not None
        threading.Timer(0.5, worker.kill).start()
        with pytest.raises(InputError, match=r"crashed the reader process \(signal 9\)"):
            read(bounded, tmp_path, "slow.html")
        threading.Timer(0.5, stop.set).start()
        with pytest.raises(Cancelled):
            read(bounded, tmp_path, "slow.html")
        assert bounded._worker is None  # killed, not left parsing


def test_ingest_lists_every_hostile_file_as_failed_and_indexes_the_rest(
    hostile_dir: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for case in HOSTILE + ACCEPTED:
        (corpus / case.name).symlink_to(hostile_dir / case.name)
    (corpus / "good.md").write_text("# Good\n\nThis file is fine.\n")
    summary = ingest_paths([corpus], tmp_path / "index", embedder=FakeEmbedder())
    reasons = {Path(path).name: reason for path, reason in summary.failed}
    assert set(reasons) == {case.name for case in HOSTILE}
    for case in HOSTILE:
        assert case.reason in reasons[case.name]
    with Index.open(tmp_path / "index") as index:
        assert index.check().ok
        ids = {d.id for d in index.documents()}
        assert ids == {"good.md", "deep.html", "hashes.md", "surrogates.json#r\ufffd"}
        [odd] = [d for d in index.documents() if d.id.startswith("surrogates")]
        assert odd.title == "\ufffd odd"


def test_an_id_prefix_keeps_uploads_apart_from_the_corpus(tmp_path: Path) -> None:
    (tmp_path / "about.md").write_text("# About\n\nThe corpus page.\n")
    summary = ingest_paths(
        [tmp_path / "about.md"],
        tmp_path / "index",
        IngestOptions(id_prefix="uploads/"),
        embedder=FakeEmbedder(),
    )
    assert summary.added == 1
    with Index.open(tmp_path / "index") as index:
        assert [d.id for d in index.documents()] == ["uploads/about.md"]


def test_rag_ingest_reports_each_hostile_file_and_its_reason(
    hostile_dir: Path, tmp_path: Path
) -> None:
    """The real CLI, in its own process, over an index built with the fake embedder (nothing
    to embed: every file fails), with a 2 s budget that a slow page trips."""
    sample = ROOT / "corpora" / "sample" / "docs"
    ingest_paths([sample], tmp_path / "index", embedder=FakeEmbedder())
    corpus = tmp_path / "hostile"
    corpus.mkdir()
    for case in HOSTILE:
        (corpus / case.name).symlink_to(hostile_dir / case.name)
    (corpus / "slow.html").write_bytes(slow_html())
    env = {**os.environ, "RAG_MAX_FILE_SECONDS": "2"}
    command = [sys.executable, "-m", "rag.cli", "ingest", str(corpus), "--index"]
    command += [str(tmp_path / "index"), "--embedder", "fake", "--no-prune"]
    printed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "Traceback" not in printed.stderr
    for case in HOSTILE:
        assert f"skipped {corpus / case.name}: " in printed.stdout, case.name
    assert f"skipped {corpus / 'slow.html'}: took longer than 2 s" in printed.stdout
    as_json = subprocess.run(
        [*command, "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    failed = {Path(f["path"]).name: f["reason"] for f in json.loads(as_json.stdout)["failed"]}
    assert set(failed) == {case.name for case in HOSTILE} | {"slow.html"}
    with Index.open(tmp_path / "index") as index:
        assert index.check().ok and index.document_count() == 5  # the sample corpus, untouched
