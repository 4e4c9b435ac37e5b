"""`rag serve` as a user runs it: a subprocess on a free loopback port, the sample corpus indexed
with MiniLM, `smollm2-135m` answering, and the official `openai` package as the client.

smollm2-135m is a plumbing model: these tests check the protocol and the sources, not whether
its answers are right. Set RAG_TEST_CACHE to reuse converted models between runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "live-test-key"
QUESTION = "How long do I have to return an unused kettle?"
#: Small prompts and answers: a loaded 2-core machine decodes smollm2 at a few tokens/s.
SMALL = {"k": 2, "shots": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ingest.pipeline import ingest_paths

    folder = tmp_path_factory.mktemp("live")
    shared = os.environ.get("RAG_TEST_CACHE")
    cache = Path(shared) if shared else folder / "cache"
    index = folder / "index"
    ingest_paths([ROOT / "corpora" / "sample" / "docs"], index)
    port = free_port()
    env = {**os.environ, "RAG_CACHE_DIR": str(cache), "RAG_API_KEYS": KEY}
    command = [sys.executable, "-m", "rag.cli", "serve", "--index", str(index)]
    command += ["--model", "smollm2-135m", "--port", str(port), "--device", "cpu"]
    log = (folder / "server.log").open("w")
    # cwd outside the repository, so no stray .env is read.
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise AssertionError(f"rag serve exited:\n{(folder / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("rag serve was not ready after 600 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def client(server: str) -> object:
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=300)


def test_models_are_listed(client: object) -> None:
    from openai import OpenAI

    assert isinstance(client, OpenAI)
    assert {m.id for m in client.models.list()} == {
        "closed-book",
        "few-shot",
        "rag",
        "rag-few-shot",
    }


def test_a_completion_with_sources(client: object) -> None:
    from openai import OpenAI

    assert isinstance(client, OpenAI)
    completion = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=8,
        extra_body=SMALL,
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 8
    extra = completion.model_extra or {}
    assert isinstance(extra["sources"], list)
    for source in extra["sources"]:
        assert source["text"] and source["doc_id"].endswith((".md", ".txt"))


def test_a_streamed_completion(client: object) -> None:
    from openai import OpenAI

    assert isinstance(client, OpenAI)
    stream = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=8,
        extra_body=SMALL,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for d in deltas if d) >= 2, "the answer did not arrive in pieces"
    finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and "sources" in (finishes[0].model_extra or {})
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_closed_book_and_errors_through_the_client(client: object) -> None:
    import openai

    assert isinstance(client, openai.OpenAI)
    closed = client.chat.completions.create(
        model="closed-book", messages=[{"role": "user", "content": QUESTION}], max_tokens=2
    )
    assert (closed.model_extra or {})["sources"] == []
    with pytest.raises(openai.NotFoundError, match="Unknown model"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.chat.completions.create(model="rag", messages=[{"role": "user", "content": " "}])
    stranger = openai.OpenAI(base_url=str(client.base_url), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def test_native_ask_retrieves_the_right_document(server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"question": QUESTION, "k": 3, "shots": 0, "max_tokens": 2}
    answer = httpx.post(f"{server}/v1/ask", json=body, headers=headers, timeout=300).json()
    assert answer["hits"][0]["doc_id"] == "returns.md"
    assert answer["timings"]["retrieve_ms"] > 0 and answer["timings"]["first_token_ms"] > 0
    metrics = httpx.get(f"{server}/metrics", headers=headers).text
    assert 'rag_generated_tokens_total{variant="rag-few-shot"}' in metrics
