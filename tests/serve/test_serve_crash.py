"""SIGKILL `rag serve` while uploads are in flight, start it again, and hold it to its promises.

The server is the real command in its own process (`tests.fake_rag`: the fake embedder and a
scripted generator behind ``--model scripted``, so it starts in a second or two), over an index
of the sample corpus. Two clients upload meanwhile: new names, replacements of earlier names,
and unreadable files. After each kill and restart: no ``tmp-*`` folder, no file in ``uploads/``
that no document points to, no upload document without its file, the index checks clean, and
every acknowledged upload (a 201 that listed it as ingested) is there, in that version or a
later one sent after it. Counts go to ``volumes/crash-serve.json``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ingest.pipeline import ingest_paths
from rag.store import Index
from tests.fakes import FakeEmbedder
from tests.serve.conftest import ROOT, free_port
from tests.volumes import record_volumes

KILLS = 20
SEED = 14
NAMES = [f"note-{n}.md" for n in range(6)]


@dataclass
class Sent:
    name: str
    version: str
    acknowledged: bool = False
    #: When its answer came (None: never, the server was killed first).
    answered: float | None = None


@dataclass
class Ledger:
    """Every upload sent, in order, and what came back."""

    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unanswered: int = 0
    refused: int = 0

    def versions_allowed(self, name: str) -> set[str] | None:
        """The versions ``name`` may be at: the last acknowledged one, or one whose request was
        still open when that answer came (two clients race; the server commits before it
        answers). None: never acknowledged, so anything or nothing."""
        mine = [s for s in self.sent if s.name == name]
        acked = [s.answered for s in mine if s.acknowledged and s.answered is not None]
        if not acked:
            return None
        last = max(acked)
        return {s.version for s in mine if s.answered is None or s.answered >= last}


@contextmanager
def serving(folder: Path, index: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    command = [sys.executable, "-m", "tests.fake_rag", "serve", "--index", str(index)]
    command += ["--model", "scripted", "--port", str(port)]
    log = (folder / "server.log").open("ab")
    env = {**os.environ, "RAG_CACHE_DIR": str(folder / "cache")}
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()


def uploader(url: str, ledger: Ledger, chance: random.Random, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        while not stop.is_set():
            name = chance.choice(NAMES)
            if chance.random() < 0.15:
                data = b"\x00\x01 unreadable " + os.urandom(8)
            else:
                data = f"# {name}\n\nVersion {chance.random()} of this note.\n".encode()
            record = Sent(name, hashlib.sha256(data).hexdigest()[:16])
            with ledger.lock:
                ledger.sent.append(record)
            try:
                response = client.post("/v1/documents", files=[("files", (name, data))])
                record.answered = time.monotonic()
            except httpx.TransportError:
                with ledger.lock:
                    ledger.unanswered += 1
                return  # the server is gone
            if response.status_code == 201:
                [result] = response.json()["files"]
                record.acknowledged = result["status"] != "failed"
            else:
                assert response.status_code == 400, response.text
                ledger.refused += 1


def audit(index_dir: Path, ledger: Ledger) -> dict[str, int]:
    """What a restart must leave: the counts of each kind of broken promise (all zero)."""
    uploads = index_dir / "uploads"
    with Index.open(index_dir) as index:
        assert index.check().ok
        sources = {d.id: d.source for d in index.documents()}
    files = {str(p) for p in uploads.rglob("*") if p.is_file() and p.name != ".lock"}
    referenced = {s for s in sources.values() if s.startswith(str(uploads))}
    lost = 0
    for name in NAMES:
        allowed = ledger.versions_allowed(name)
        source = sources.get(f"uploads/{name}")
        if allowed is not None and (source is None or Path(source).parent.name not in allowed):
            lost += 1
            print(f"LOST {name}: at {source}, allowed {allowed}")
    return {
        "tmp_folders": len(list(index_dir.glob("tmp-*"))),
        "orphan_uploads": len(files - referenced),
        "documents_without_file": len(referenced - files),
        "acknowledged_lost": lost,
    }


@pytest.mark.slow
def test_killing_the_server_during_uploads_loses_nothing_acknowledged(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    started = time.monotonic()
    index_dir = tmp_path / "index"
    ingest_paths([ROOT / "corpora" / "sample" / "docs"], index_dir, embedder=FakeEmbedder())
    chance = random.Random(SEED)
    ledger = Ledger()
    broken: dict[str, int] = {}
    survived = 0

    def after_restart(kills_so_far: int) -> None:
        nonlocal survived
        found = audit(index_dir, ledger)
        for key, count in found.items():
            broken[key] = broken.get(key, 0) + count
        survived += kills_so_far > 0 and not any(found.values())

    for kill in range(KILLS):
        with serving(tmp_path, index_dir) as (url, process):
            after_restart(kill)
            stop = threading.Event()
            clients = [
                threading.Thread(
                    target=uploader, args=(url, ledger, random.Random(chance.random()), stop)
                )
                for _ in range(2)
            ]
            for client in clients:
                client.start()
            time.sleep(chance.uniform(0.3, 3.0))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            stop.set()
            for client in clients:
                client.join(timeout=120)
    with serving(tmp_path, index_dir) as (url, _):
        after_restart(KILLS)
        listed = {d["id"] for d in httpx.get(f"{url}/v1/documents").json()["data"]}
    acknowledged = sum(s.acknowledged for s in ledger.sent)
    log = (tmp_path / "server.log").read_text(errors="replace")
    counts = {
        "kills": KILLS,
        "kills_survived": survived,
        "uploads_sent": len(ledger.sent),
        "uploads_acknowledged": acknowledged,
        "uploads_refused_as_unreadable": ledger.refused,
        "uploads_cut_by_a_kill": ledger.unanswered,
        "documents_lost": broken.get("acknowledged_lost", 0),
        "restarts_that_cleaned_leftovers": log.count("removed what an interrupted upload"),
        **{f"after_restart_{key}": value for key, value in broken.items()},
        "seed": SEED,
        "test_seconds": round(time.monotonic() - started, 1),
    }
    record_volumes(tmp_path_factory, "crash-serve", counts)
    assert not any(broken.values()), counts
    assert "Traceback" not in log, log[-3000:]
    assert acknowledged > KILLS  # the clients did get uploads through between kills
    assert {f"uploads/{n}" for n in NAMES if ledger.versions_allowed(n) is not None} <= listed
