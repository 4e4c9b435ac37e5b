"""SIGKILLs of `rag ingest` at random moments over a mixed corpus: the volume behind the
crash-safety claim.

The command runs in two ways: 100 times with the fake embedder (`tests.fake_rag`, ``--embedder
fake``: a start costs a second, not a model load) and 10 times as the real `rag ingest` with
MiniLM (the int8 encoder a user gets), so the volume does not rest on a stand-in alone.

The corpus holds markdown, text, HTML, PDF, DOCX, JSON and JSONL files, and broken ones. It
switches between two versions (documents edited, added and deleted) before each run, so kills
land in first ingests, updates and prunes alike. Each run is the CLI in its own process, killed
after a random delay drawn over a whole run's duration. After every kill the index must check
clean and hold exactly the state before the run or the new version's (never a mix), and the
reader worker must be gone with its parent. A last run without a kill must converge to the
chunks of a clean ingest. Counts go to ``volumes/crash-ingest-<embedder>.json``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.pipeline import ingest_paths
from tests.fakes import FakeEmbedder
from tests.ingest.hostile_files import nested_json, plain_docx
from tests.ingest.ingest_files import make_pdf
from tests.ingest.test_ingest_crash import State, snapshot
from tests.volumes import record_volumes

ROOT = Path(__file__).resolve().parents[2]
SEED = 14
#: Kills per embedder: the real one loads MiniLM at every start (seconds), so it gets fewer.
KILLS = {"fake": 100, "minilm": 10}


def write_corpus(folder: Path, version: int) -> None:
    """Version 0 or 1 of a mixed corpus, written over what ``folder`` holds."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "corpora" / "sample" / "docs", folder)
    for n in range(25):
        if version == 1 and n % 5 == 0:
            continue  # deleted in version 1
        edit = f" Revised in version {version}." if n % 3 == 0 else ""
        body = f"# Policy {n}\n\nRule {n} covers kettles of size {n}.{edit}\n\n## Notes\n\n"
        (folder / f"policy-{n:02d}.md").write_text(body + "Ask the help desk.\n" * (n % 4 + 1))
    for n in range(4):
        page = f"<html><head><title>Page {n}</title></head><body><main><h1>Page {n}</h1>"
        page += f"<p>Opening hours {n + 8} to {n + 17}.{' Changed.' * version}</p></main></body>"
        (folder / f"page-{n}.html").write_text(page + "</html>")
    for n in range(3):
        pages = [f"Manual {n} page {p}" + (" revised" * (version * (p == 1))) for p in range(3)]
        (folder / f"manual-{n}.pdf").write_bytes(make_pdf(pages))
    (folder / "letter.docx").write_bytes(plain_docx())
    records = [
        {"id": f"faq-{n}", "title": f"FAQ {n}", "text": f"Answer {n + version}."}
        for n in range(6 - version)
    ]
    (folder / "faq.json").write_text(json.dumps(records))
    (folder / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records[:3]) + "\n")
    if version == 1:
        (folder / "new-in-v1.md").write_text("# New\n\nOnly in version one.\n")
    # Broken files: always reported, never indexed.
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really")
    (folder / "nested.json").write_bytes(nested_json())
    (folder / "image.md").write_bytes(b"\x00\x89PNG binary")


def rag_ingest(corpus: Path, index_dir: Path, embedder: str) -> subprocess.Popen[bytes]:
    """`rag ingest` in its own process: the real CLI, or with the fake embedder swapped in."""
    cli = "tests.fake_rag" if embedder == "fake" else "rag.cli"
    command = [sys.executable, "-m", cli, "ingest", str(corpus), "--index", str(index_dir)]
    command += ["--embedder", embedder, "--json"]
    env = {**os.environ, "RAG_CACHE_DIR": os.environ["RAG_TEST_CACHE"]}
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )


def timed_run(corpus: Path, index_dir: Path, embedder: str) -> float:
    started = time.monotonic()
    assert rag_ingest(corpus, index_dir, embedder).wait(timeout=300) == 0
    return time.monotonic() - started


def readers_of(pid: int) -> list[int]:
    """Reader workers (`ingest.bounded`) whose parent was ``pid`` (it is their last argument)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ingest.bounded" in argv and argv[-2:-1] == [str(pid).encode()]:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("embedder", list(KILLS))
def test_kills_of_rag_ingest_leave_a_consistent_index(
    embedder: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    started = time.monotonic()
    expected: dict[int, State] = {}
    for version in (0, 1):
        write_corpus(tmp_path / f"clean-{version}", version)
        clean = tmp_path / f"clean-index-{version}"
        ingest_paths([tmp_path / f"clean-{version}"], clean, embedder=FakeEmbedder())
        expected[version] = snapshot(clean)
    assert expected[0] != expected[1]

    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    durations = []
    for version in (0, 1, 0):  # a run's length, to draw kill moments over (later: adaptive)
        write_corpus(corpus, version)
        durations.append(timed_run(corpus, index_dir, embedder))
        assert snapshot(index_dir) == expected[version]

    chance = random.Random(SEED)
    kills = finished = reading = writing = orphan_readers = 0
    version = 0
    while kills < KILLS[embedder]:
        before = snapshot(index_dir)
        version = chance.randrange(2)
        write_corpus(corpus, version)
        launched = time.monotonic()
        child = rag_ingest(corpus, index_dir, embedder)
        time.sleep(chance.uniform(0, statistics.median(durations)))
        if child.poll() is not None:
            finished += 1  # it ended first: not a kill, the state must be the new version
            durations.append(time.monotonic() - launched)
            assert child.returncode == 0, child.stderr.read() if child.stderr else ""
            assert snapshot(index_dir) == expected[version]
            continue
        writing += bool(list(index_dir.glob("tmp-*")))
        reading += bool(readers_of(child.pid))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        kills += 1
        after = snapshot(index_dir)
        assert after in (before, expected[version]), f"kill {kills}: a mixed state"
        deadline = time.monotonic() + 10
        while readers_of(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphan_readers += bool(readers_of(child.pid))

    assert rag_ingest(corpus, index_dir, embedder).wait(timeout=300) == 0
    converged = snapshot(index_dir) == expected[version]
    leftovers = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("tmp-"))
    lost = set(expected[version]) - set(snapshot(index_dir))
    record_volumes(
        tmp_path_factory,
        f"crash-ingest-{embedder}",
        {
            "embedder": embedder,
            "kills": kills,
            "kills_survived": kills,  # every kill above passed its consistency check
            "kills_while_reading_files": reading,
            "kills_while_a_generation_was_staged": writing,
            "kills_while_starting_or_planning": kills - reading - writing,
            "runs_that_finished_before_their_kill": finished,
            "orphan_reader_processes": orphan_readers,
            "converged_to_clean_ingest": converged,
            "documents_lost": len(lost),
            "tmp_folders_after_final_run": len(leftovers),
            "seed": SEED,
            "median_run_seconds": round(statistics.median(durations), 2),
            "test_seconds": round(time.monotonic() - started, 1),
        },
    )
    assert converged and not lost and not leftovers
    assert orphan_readers == 0
