"""`rag serve --workers 2` on a real port: two replicas over one index folder.

Each response names the process that answered (``X-Rag-Worker``), so the tests send requests on
fresh connections until both workers have answered: a document uploaded through one is found
through the other, `/metrics` from either adds up both, and each enforces the API key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from serve.replicas import WORKER_HEADER
from tests.processes import stop
from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "replica-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ingest.pipeline import ingest_paths

    folder = tmp_path_factory.mktemp("replicas")
    shared = os.environ.get("RAG_TEST_CACHE")
    env = {**os.environ, **({"RAG_CACHE_DIR": shared} if shared else {})}
    index = folder / "index"
    ingest_paths([ROOT / "corpora" / "sample" / "docs"], index)
    port = free_port()
    command = [sys.executable, "-m", "rag.cli", "serve", "--index", str(index), "--workers", "2"]
    command += ["--model", "smollm2-135m", "--port", str(port), "--device", "cpu"]
    command += ["--api-key", KEY]
    log = (folder / "server.log").open("w")
    # Its own process group: the teardown reaches the workers even if the parent is gone.
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = until_both_workers(
            lambda: get(f"{url}/readyz"), lambda r: r.status_code == 200, process, 600
        )
        assert len(ready) == 2, (folder / "server.log").read_text()
        yield url
    finally:
        stop(process)
        log.close()


def get(url: str, **kwargs: object) -> httpx.Response | None:
    """One request on a new connection (so the kernel may hand it to either worker)."""
    try:
        return httpx.get(url, timeout=30, **kwargs)  # type: ignore[arg-type]
    except httpx.TransportError:
        return None


def until_both_workers(
    send: Callable[[], httpx.Response | None],
    wanted: Callable[[httpx.Response], bool],
    process: subprocess.Popen[bytes] | None = None,
    timeout_s: float = 120,
) -> dict[str, httpx.Response]:
    """Send until two different workers gave a wanted response: one response per worker."""
    seen: dict[str, httpx.Response] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < 2 and time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        response = send()
        if response is not None and wanted(response):
            seen[response.headers[WORKER_HEADER]] = response
        else:
            time.sleep(0.3)
    return seen


def search(url: str, query: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/search", json={"query": query, "k": 3}, headers=AUTH, timeout=30)


def found(response: httpx.Response, doc_id: str) -> bool:
    return response.status_code == 200 and doc_id in {h["doc_id"] for h in response.json()["hits"]}


def upload(url: str, name: str, text: str) -> httpx.Response:
    files = {"files": (name, text.encode(), "text/markdown")}
    return httpx.post(f"{url}/v1/documents", files=files, headers=AUTH, timeout=120)


def test_a_document_uploaded_through_one_worker_is_found_through_the_other(server: str) -> None:
    uploaded = upload(server, "keeper.md", "# Lighthouse\n\nThe keeper is Orsolya Quendt.\n")
    assert uploaded.status_code == 201, uploaded.text
    writer = uploaded.headers[WORKER_HEADER]
    answers = until_both_workers(
        lambda: search(server, "Who keeps the lighthouse?"), lambda r: found(r, "uploads/keeper.md")
    )
    assert len(answers) == 2 and writer in answers, "both workers find it, the other one too"

    deleted = httpx.delete(f"{server}/v1/documents/uploads/keeper.md", headers=AUTH, timeout=60)
    assert deleted.status_code == 200, deleted.text
    gone = until_both_workers(
        lambda: search(server, "Who keeps the lighthouse?"),
        lambda r: r.status_code == 200 and not found(r, "uploads/keeper.md"),
    )
    assert len(gone) == 2, "a deletion through one worker reaches the other"


def test_uploads_through_both_workers_at_once_take_turns_at_the_index_lock(server: str) -> None:
    results: dict[str, httpx.Response] = {}

    def send(name: str) -> None:
        results[name] = upload(server, name, f"# {name}\n\nA note called {name}.\n")

    for _ in range(3):  # three rounds of two simultaneous uploads
        names = [f"note-{len(results) + i}.md" for i in range(2)]
        threads = [threading.Thread(target=send, args=(n,)) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert {r.status_code for r in results.values()} == {201}, [r.text for r in results.values()]
    listing = httpx.get(f"{server}/v1/documents", headers=AUTH, timeout=30).json()
    assert {f"uploads/{name}" for name in results} <= {d["id"] for d in listing["data"]}


def requests_counted(url: str) -> float:
    """The `/v1/search` 200s in `/metrics` (whichever worker answers: it reads every worker's)."""
    metrics = httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text
    prefix = 'rag_http_requests_total{method="POST",route="/v1/search",status="200"} '
    lines = [line for line in metrics.splitlines() if line.startswith(prefix)]
    return float(lines[0][len(prefix) :]) if lines else 0.0


def test_metrics_from_either_worker_add_up_both(server: str) -> None:
    before = requests_counted(server)
    sent: list[httpx.Response] = []

    def counted() -> httpx.Response:
        sent.append(search(server, "How much does express delivery cost?"))
        return sent[-1]

    workers = until_both_workers(counted, lambda r: r.status_code == 200)
    assert len(workers) == 2
    # A request is counted as its response ends, a moment after the client has it all.
    deadline = time.monotonic() + 10
    while requests_counted(server) - before < len(sent) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests_counted(server) - before == len(sent)


def test_each_worker_asks_for_the_api_key(server: str) -> None:
    refused = until_both_workers(
        lambda: httpx.post(f"{server}/v1/search", json={"query": "x"}, timeout=30),
        lambda r: r.status_code == 401,
    )
    assert len(refused) == 2


def test_a_worker_that_cannot_load_its_model_stops_them_all_with_the_reason(
    tmp_path: Path,
) -> None:
    from tests.serve.conftest import build_index

    index = build_index(tmp_path / "index")
    command = [sys.executable, "-m", "rag.cli", "serve", "--index", str(index), "--workers", "2"]
    command += ["--model", "no-such-model", "--port", str(free_port())]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "error: the server stopped: the model failed to load: Unknown model: no-such-model" in (
        result.stderr
    )
