"""A real index of three small documents (fake embedder), and apps built around it.

`make_app(...)` returns a ready app with a scripted generator that cites the first context block;
`GatedGenerator` holds its answer until a test releases it, to fill the queue or to watch a
disconnect stop a generation.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest
from fastapi.testclient import TestClient

from rag.examples import Example, ExampleBank
from rag.generate.base import Delta, GenerationConfig, Generator
from rag.pipeline import Pipeline
from rag.store import Index, Manifest
from rag.store_write import IndexWriter
from rag.types import Chunk, Document, Message
from serve.app import create_app
from serve.limits import Limits
from serve.state import Pipelines, ServerConfig, ServerState
from tests.fakes import FakeEmbedder, ScriptedGenerator


class HttpResponse(Protocol):
    """What tests read from a response, from httpx or from the test client's own httpx."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


DOCS = {
    "leave.md": ("Leave", "Full-time staff get 25 days of paid annual leave each year."),
    "pricing.md": ("Pricing", "The Premium plan costs 29 dollars per month, billed yearly."),
    "devices.md": ("Devices", "Report a stolen laptop to the help desk on extension 4400."),
}


def build_index(folder: Path, docs: dict[str, tuple[str, str]] = DOCS) -> Path:
    """Write ``docs`` (one chunk each) into a real index folder, vectors from FakeEmbedder."""
    embedder = FakeEmbedder()
    with IndexWriter(folder) as writer:
        writer.begin(Manifest(embedder="fake", dimension=64, chunk_tokens=256, chunk_overlap=32))
        for doc_id, (title, text) in docs.items():
            document = Document(id=doc_id, source=doc_id, title=title, text=text)
            chunk = Chunk(id=0, doc_id=doc_id, text=text, start=0, end=len(text), title=title)
            writer.add_document(document, [chunk], embedder.embed_batch([text]))
        writer.commit()
    return folder


def cite_first(messages: Sequence[Message]) -> str:
    """Answers from the first context block and cites it, as a reading model would."""
    for line in messages[-1].content.splitlines():
        if line.startswith("[1] "):
            return f"According to {line[4:].strip()}, the answer is in passage [1]."
    return "I don't know."


class GatedGenerator(Generator):
    """Streams "Hold" then a "." every 20 ms until ``release``; notes when it is closed.

    A generator can only be closed between tokens, so it keeps yielding while it waits, like a
    model decoding a long answer.
    """

    name = "gated"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.closed = threading.Event()
        self.finished = threading.Event()

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        self.started.release()
        try:
            yield Delta(text="Hold")
            deadline = time.monotonic() + 30
            while not self.release.wait(timeout=0.02):
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never released the generator")
                yield Delta(text=".")
            yield Delta(text=" on [1].")
            yield Delta(finish_reason="stop", prompt_tokens=10, completion_tokens=3)
            self.finished.set()
        except GeneratorExit:
            self.closed.set()
            raise


def make_state(
    index_dir: Path | None,
    generator: Generator | None = None,
    *,
    limits: Limits | None = None,
    api_keys: Sequence[str] = (),
    concurrency: int = 1,
    queue_size: int = 8,
    adapter_generator: Generator | None = None,
    examples: Sequence[Example] = (),
) -> ServerState:
    generator = generator or ScriptedGenerator(script=cite_first)

    def load() -> Pipelines:
        embedder = FakeEmbedder()
        index = Index.open(index_dir) if index_dir is not None else None

        def pipeline(gen: Generator) -> Pipeline:
            return Pipeline(
                gen,
                index=index,
                embedder=embedder,
                examples=ExampleBank(list(examples), embedder=embedder),
            )

        adapter = pipeline(adapter_generator) if adapter_generator is not None else None
        return Pipelines(base=pipeline(generator), adapter=adapter, index=index)

    config = ServerConfig(
        index_dir=index_dir,
        model_name="scripted",
        api_keys=tuple(api_keys),
        limits=limits or Limits(),
        concurrency=concurrency,
        queue_size=queue_size,
    )
    return ServerState(load, config)


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready: {client.get('/readyz').json()}")
        time.sleep(0.01)


@contextmanager
def serving(state: ServerState) -> Iterator[TestClient]:
    with TestClient(create_app(state), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return build_index(tmp_path / "index")


@pytest.fixture
def client(index_dir: Path) -> Iterator[TestClient]:
    with serving(make_state(index_dir)) as client:
        yield client


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def live_server(state: ServerState) -> Iterator[str]:
    """The app under a real uvicorn on a free loopback port (in a thread); yields its URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(state), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not server.started or not state.ready:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("the test server did not start")
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
