"""kill -9 an ingest at many points: the index is exactly the before or the after state.

The child process is a real `ingest_paths` run (fake embedder) with pauses patched in at named
points of the write path; the parent waits until the child reports a point, SIGKILLs it, and
inspects the folder. A few more kills land at arbitrary times.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from rag.store import Index
from tests.fakes import FakeEmbedder

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "corpora" / "sample" / "docs"

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import rag.store_write as store_write
    from ingest.pipeline import ingest_paths
    from tests.fakes import FakeEmbedder

    point, corpus, index = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def pause(name):
        if name == point:
            print("AT", name, flush=True)
            time.sleep(120)

    def after(name, function):
        def wrapped(*args, **kwargs):
            result = function(*args, **kwargs)
            pause(name)
            return result
        return wrapped

    class PausingEmbedder(FakeEmbedder):
        def embed_batch(self, texts):
            pause("embedding")
            return super().embed_batch(texts)

    W = store_write.IndexWriter
    W.begin = after("staged", W.begin)
    W.remove_document = after("removed-one", W.remove_document)
    W.add_document = after("added-one", W.add_document)
    store_write.write_postings = after("postings-written", store_write.write_postings)
    store_write.save_vector_index = after("vectors-saved", store_write.save_vector_index)
    store_write.write_durably = after("file-synced", store_write.write_durably)
    os.rename = after("generation-renamed", os.rename)
    real_replace = os.replace
    def replace(src, dst):
        pause("before-switch")
        real_replace(src, dst)
        pause("after-switch")
    os.replace = replace

    print(ingest_paths([corpus], index, embedder=PausingEmbedder()).to_dict(), flush=True)
    """
)

BEFORE_POINTS = [
    "embedding",
    "staged",
    "removed-one",
    "added-one",
    "postings-written",
    "vectors-saved",
    "file-synced",
    "generation-renamed",
    "before-switch",
]
AFTER_POINTS = ["after-switch"]

State = dict[str, tuple[str, tuple[str, ...]]]


def snapshot(index_dir: Path) -> State:
    with Index.open(index_dir) as index:
        report = index.check()
        assert report.ok, report
        texts: dict[str, list[str]] = {}
        for chunk in index.all_chunks():
            texts.setdefault(chunk.doc_id, []).append(chunk.text)
        return {d.id: (d.content_hash, tuple(texts.get(d.id, []))) for d in index.documents()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, State, State]:
    """A corpus edited after a first ingest, the index before, and both expected states."""
    base = tmp_path_factory.mktemp("crash")
    corpus = base / "corpus"
    shutil.copytree(SAMPLE, corpus)
    before_index = base / "before"
    ingest_paths([corpus], before_index, embedder=FakeEmbedder())
    before = snapshot(before_index)
    (corpus / "returns.md").write_text("# Returns\n\nReturns are accepted for 60 days.\n")
    (corpus / "shipping.txt").unlink()
    (corpus / "careers.md").write_text("# Careers\n\nWe hire kettle engineers in Tarrow.\n")
    after_index = base / "after"
    shutil.copytree(before_index, after_index)
    ingest_paths([corpus], after_index, embedder=FakeEmbedder())
    after = snapshot(after_index)
    assert before != after
    return corpus, before_index, before, after


def run_child(point: str, corpus: Path, index_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, point, str(corpus), str(index_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_recovers(index_dir: Path, corpus: Path, after: State) -> None:
    """The next run takes the lock, cleans leftovers and reaches the after state."""
    ingest_paths([corpus], index_dir, embedder=FakeEmbedder())
    assert snapshot(index_dir) == after
    names = sorted(p.name for p in index_dir.iterdir())
    assert names[:2] == [".lock", "CURRENT"] and len(names) == 3, names


@pytest.mark.parametrize("point", BEFORE_POINTS + AFTER_POINTS)
def test_sigkill_at_a_point_leaves_before_or_after(
    scenario: tuple[Path, Path, State, State], tmp_path: Path, point: str
) -> None:
    corpus, before_index, before, after = scenario
    index_dir = tmp_path / "index"
    shutil.copytree(before_index, index_dir)
    child = run_child(point, corpus, index_dir)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("AT"):
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"child never reached {point}: {line!r} {err[-2000:]}")
    child.kill()
    child.wait(timeout=30)
    expected = after if point in AFTER_POINTS else before
    assert snapshot(index_dir) == expected
    assert_recovers(index_dir, corpus, after)


@pytest.mark.parametrize("delay", [0.3, 0.9, 1.5, 2.5])
def test_sigkill_at_arbitrary_times_leaves_before_or_after(
    scenario: tuple[Path, Path, State, State], tmp_path: Path, delay: float
) -> None:
    corpus, before_index, before, after = scenario
    index_dir = tmp_path / "index"
    shutil.copytree(before_index, index_dir)
    child = run_child("none", corpus, index_dir)
    time.sleep(delay)
    child.kill()
    child.communicate(timeout=30)
    assert snapshot(index_dir) in (before, after)
    assert_recovers(index_dir, corpus, after)
