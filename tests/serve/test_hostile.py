"""The hostile requests of issue 14, sent again: no 500s, bounded work, and what the server says.

Every probe of `CATALOG` is an exact request an outside tester sent (or its near kin), grouped by
the issue's numbered items, with the status and error code that must come back. They run against
the app under a real uvicorn (a fake embedder and a generator that counts a token per character,
so token limits bite as a real tokenizer's would); the slow test replays them against a real
`rag serve` with smollm2-135m and MiniLM. The tests below the catalog cover what one request
cannot show: the token cap is checked before a generation slot, uploads take turns one bounded
file at a time and stop when their client leaves, a restart removes what a crash left, and
request headers must arrive in time. Counts per item (sent, statuses, 5xx, hangs) go to
``volumes/hostile-*.json`` under the test's temporary folder.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.file_limits import FileLimits
from rag.generate.base import GenerationConfig
from rag.types import Message
from tests.fakes import FakeEmbedder, ScriptedGenerator
from tests.ingest.hostile_files import (
    deep_html,
    docx_bad_content_types,
    docx_inflating_text_node,
    docx_megabyte_paragraphs,
    long_integer_json,
    nested_json,
    nested_jsonl,
    pdf_flate_bomb,
    slow_html,
)
from tests.serve.conftest import (
    DOCS,
    ROOT,
    GatedGenerator,
    build_index,
    cite_first,
    live_server,
    make_state,
    rag_serve,
)
from tests.volumes import record_volumes

#: A hang: no answer within this long is a failure (nothing here should take a tenth of it).
TIMEOUT_S = 120
CORPUS = {**DOCS, "about.md": ("About", "Tarrow Kettles makes kettles in Tarrow since 1962.")}
GOOD_MD = b"# Parking\n\nParking permits are issued by the facilities team on floor two.\n"
#: Text that takes more than 4,096 tokens under any tokenizer (hex digits split often).
HEX_15K = "".join(f"{n:08x}" for n in range(1875))
SURROGATE = "warranty \ud800 policy"
USER = {"role": "user", "content": "How many days of leave do staff get?"}
#: A short answer, for the probes that must succeed (a real model decodes slowly here).
SHORT = {"max_tokens": 8, "k": 2, "shots": 0}


@dataclass(frozen=True)
class Probe:
    """One request and the answer it must get (``code``/``param`` of the error, for 4xx)."""

    item: str
    name: str
    method: str
    path: str
    body: Any = None
    #: Uploads: names and the builders of their bytes (built when sent, not at import).
    files: Sequence[tuple[str, Callable[[], bytes]]] = ()
    status: int = 400
    code: str | None = None
    param: str | None = None


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": [USER], **SHORT, **fields}


#: OpenAI parameters refused (unsupported, or out of range): name, extra fields, code, param.
UNSUPPORTED: list[tuple[str, dict[str, Any], str, str]] = [
    ("n=2", {"n": 2}, "unsupported_parameter", "n"),
    ("n=1000", {"n": 1000}, "unsupported_parameter", "n"),
    ("n=0", {"n": 0}, "invalid_value", "n"),
    (
        "tools",
        {
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": "required",
        },
        "unsupported_parameter",
        "tools",
    ),
    ("tool_choice", {"tool_choice": "required"}, "unsupported_parameter", "tool_choice"),
    ("functions", {"functions": [{"name": "f"}]}, "unsupported_parameter", "functions"),
    (
        "json_schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "unsupported_parameter",
        "response_format",
    ),
    ("logprobs", {"logprobs": True}, "unsupported_parameter", "logprobs"),
    ("top_logprobs", {"top_logprobs": 3}, "unsupported_parameter", "top_logprobs"),
    ("penalty", {"presence_penalty": 1}, "unsupported_parameter", "presence_penalty"),
    ("logit_bias", {"logit_bias": {"50256": -100}}, "unsupported_parameter", "logit_bias"),
    ("top_p=5", {"top_p": 5}, "invalid_value", "top_p"),
    ("temperature=-1", {"temperature": -1}, "invalid_value", "temperature"),
    ('model=""', {"model": ""}, "invalid_value", "model"),
]


CATALOG = [
    # 1. A lone UTF-16 surrogate in any text field (a 500 in the tokenizer, a dropped
    # connection in the model name).
    *[
        Probe("1-surrogates", name, "POST", path, body, code="invalid_unicode", param=param)
        for name, path, body, param in [
            ("search", "/v1/search", {"query": SURROGATE}, "query"),
            ("ask", "/v1/ask", {"question": SURROGATE}, "question"),
            (
                "chat",
                "/v1/chat/completions",
                {"messages": [{"role": "user", "content": SURROGATE}]},
                "messages.0.content",
            ),
            (
                "chat-stream",
                "/v1/chat/completions",
                {"messages": [{"role": "user", "content": SURROGATE}], "stream": True},
                "messages.0.content",
            ),
            ("chat-model", "/v1/chat/completions", chat(model="rag\ud800"), "model"),
            ("ask-model", "/v1/ask", {"question": "leave?", "model": "rag\ud800"}, "model"),
            (
                "ask-history",
                "/v1/ask",
                {"question": "and then?", "history": [{"role": "user", "content": SURROGATE}]},
                "history.0.content",
            ),
            (
                "text-part",
                "/v1/chat/completions",
                {"messages": [{"role": "user", "content": [{"type": "text", "text": SURROGATE}]}]},
                "messages.0.content",
            ),
            ("stop", "/v1/chat/completions", chat(stop=["\udfff"]), "stop"),
            ("doc-ids", "/v1/search", {"query": "leave", "doc_ids": ["a\ud800"]}, "doc_ids.0"),
            ("glob", "/v1/search", {"query": "leave", "source_glob": "*\ud800"}, "source_glob"),
        ]
    ],
    Probe(
        "1-surrogates",
        "paired-emoji",
        "POST",
        "/v1/search",
        {"query": "leave \U0001f600"},
        status=200,
    ),
    # 2. A question over the token budget (500 prompt_error): the user's input, so a 400.
    Probe(
        "2-token-budget",
        "chinese-ask",
        "POST",
        "/v1/ask",
        {"question": "量" * 15_000},
        code="context_length_exceeded",
    ),
    Probe(
        "2-token-budget",
        "chinese-chat",
        "POST",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "量" * 15_000}]},
        code="context_length_exceeded",
    ),
    Probe(
        "2-token-budget",
        "combining-accents",
        "POST",
        "/v1/ask",
        {"question": "e" + "\u0301" * 5_000},
        code="context_length_exceeded",
    ),
    # 3. Unreadable uploads (500s): each refused with its reason; with a good file, a 201 that
    # lists the failure.
    *[
        Probe(
            "3-unreadable-uploads",
            name,
            "POST",
            "/v1/documents",
            files=[(name, build)],
            code="unreadable_file",
        )
        for name, build in [
            ("content-types.docx", docx_bad_content_types),
            ("nested.json", nested_json),
            ("nested.jsonl", nested_jsonl),
            ("digits.json", long_integer_json),
            ("inflated.docx", docx_inflating_text_node),
        ]
    ],
    Probe(
        "3-unreadable-uploads",
        "good-and-bad",
        "POST",
        "/v1/documents",
        files=[("garage.md", lambda: GOOD_MD), ("nested2.json", nested_json)],
        status=201,
    ),
    # 4. Decompression bombs and parser traps: refused (or read) within the per-file bounds.
    Probe(
        "4-bombs",
        "paragraphs.docx",
        "POST",
        "/v1/documents",
        files=[("paragraphs.docx", docx_megabyte_paragraphs)],
        code="unreadable_file",
    ),
    Probe(
        "4-bombs",
        "bomb.pdf",
        "POST",
        "/v1/documents",
        files=[("bomb.pdf", pdf_flate_bomb)],
        code="unreadable_file",
    ),
    Probe(
        "4-bombs",
        "deep.html",
        "POST",
        "/v1/documents",
        files=[("deep.html", deep_html)],
        status=201,
    ),
    # 5. Limits in tokens, not characters: 64 messages of 15,000 characters.
    Probe(
        "5-work-limits",
        "64-long-messages",
        "POST",
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": HEX_15K}] * 64},
        code="context_length_exceeded",
    ),
    Probe(
        "5-work-limits",
        "63-long-then-short",
        "POST",
        "/v1/chat/completions",
        chat(messages=[{"role": "user", "content": HEX_15K}] * 63 + [USER]),
        status=200,
    ),
    # 6. Silent acceptance: unsupported parameters and out-of-range values are refused.
    *[
        Probe(
            "6-unsupported",
            name,
            "POST",
            "/v1/chat/completions",
            chat(**extra),
            code=code,
            param=param,
        )
        for name, extra, code, param in UNSUPPORTED
    ],
    Probe(
        "6-unsupported",
        "supported-values",
        "POST",
        "/v1/chat/completions",
        chat(
            n=1,
            tools=[],
            tool_choice="none",
            response_format={"type": "text"},
            logprobs=False,
            top_p=0.5,
            seed=7,
            presence_penalty=0,
        ),
        status=200,
    ),
    # 7. Smaller: an empty query is refused by the schema and the server alike.
    Probe(
        "7-smaller",
        "empty-query",
        "POST",
        "/v1/search",
        {"query": ""},
        param="query",
        code="invalid_value",
    ),
]


@dataclass
class Tally:
    """What was sent per item and what came back."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    hangs: list[str] = field(default_factory=list)

    def send(self, client: httpx.Client, item: str, method: str, path: str, **kw: Any) -> Any:
        self.sent[item] += 1
        try:
            response = client.request(method, path, **kw)
        except httpx.TimeoutException:
            self.hangs.append(f"{item}: {method} {path}")
            raise
        self.statuses.setdefault(item, Counter())[response.status_code] += 1
        return response

    def probe(self, client: httpx.Client, probe: Probe) -> httpx.Response:
        if probe.files:
            kw: dict[str, Any] = {"files": [("files", (n, build())) for n, build in probe.files]}
        else:  # ensure_ascii: a lone surrogate travels as its \\ud800 escape, as a client sends it
            headers = {"Content-Type": "application/json"}
            kw = {"content": json.dumps(probe.body), "headers": headers}
        response: httpx.Response = self.send(client, probe.item, probe.method, probe.path, **kw)
        return response

    def summary(self) -> dict[str, Any]:
        return {
            "sent": dict(sorted(self.sent.items())),
            "requests": sum(self.sent.values()),
            "statuses": {k: dict(sorted(c.items())) for k, c in sorted(self.statuses.items())},
            "5xx": sum(n for c in self.statuses.values() for s, n in c.items() if s >= 500),
            "hangs": len(self.hangs),
        }


def check(probe: Probe, response: httpx.Response) -> None:
    assert response.status_code == probe.status, (probe.name, response.text[:500])
    if probe.status >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        if probe.code is not None:
            assert error["code"] == probe.code, (probe.name, error)
        if probe.param is not None:
            assert error["param"] == probe.param, (probe.name, error)


class CharTokens(ScriptedGenerator):
    """Counts a token per character (as a tokenizer does on CJK or combining marks) and records
    the generation settings each request reached it with."""

    def __init__(self) -> None:
        super().__init__(script=cite_first, context_window=32_768)
        self.configs: list[GenerationConfig] = []

    def count_tokens(self, text: str) -> int:
        return len(text)

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Any]:
        self.configs.append(config)
        return super().stream(messages, config)


@pytest.fixture(scope="module")
def tally(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tally]:
    counts = Tally()
    yield counts
    record_volumes(tmp_path_factory, "hostile-server", counts.summary())


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Any]]:
    index = build_index(tmp_path_factory.mktemp("hostile") / "index", CORPUS)
    generator = CharTokens()
    state = make_state(index, generator, queue_size=64)
    with live_server(state) as url, httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        yield client, generator


@pytest.mark.parametrize("probe", CATALOG, ids=lambda p: f"{p.item}:{p.name}")
def test_each_hostile_request_gets_its_answer(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally, probe: Probe
) -> None:
    client, _ = hostile
    check(probe, tally.probe(client, probe))


def test_token_errors_give_the_numbers_and_long_history_is_trimmed_to_the_cap(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally
) -> None:
    client, generator = hostile
    probe = CATALOG[[p.name for p in CATALOG].index("chinese-ask")]
    message = tally.probe(client, probe).json()["error"]["message"]
    assert "15,004 prompt tokens" in message and "at most 4,096" in message
    seen = len(generator.prompts)
    trimmed = CATALOG[[p.name for p in CATALOG].index("63-long-then-short")]
    check(trimmed, tally.probe(client, trimmed))
    [prompt] = generator.prompts[seen:]
    assert generator.count_prompt_tokens(prompt) <= 4096


def test_supported_values_reach_the_generator(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally
) -> None:
    client, generator = hostile
    probe = CATALOG[[p.name for p in CATALOG].index("supported-values")]
    check(probe, tally.probe(client, probe))
    assert (generator.configs[-1].top_p, generator.configs[-1].seed) == (0.5, 7)


def test_the_token_cap_is_checked_before_a_generation_slot(index_dir: Path, tally: Tally) -> None:
    class Gated(GatedGenerator):
        def count_tokens(self, text: str) -> int:
            return len(text)

    generator = Gated()
    state = make_state(index_dir, generator, concurrency=1, queue_size=0)
    with live_server(state) as url, httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        holder = threading.Thread(target=lambda: client.post("/v1/ask", json={"question": "hi"}))
        holder.start()
        assert generator.started.acquire(timeout=30)  # the only slot is taken, no queue
        too_long = {"question": HEX_15K}
        refused = tally.send(client, "5-work-limits", "POST", "/v1/ask", json=too_long)
        assert refused.status_code == 400, refused.text  # not 429: refused before the gate
        assert refused.json()["error"]["code"] == "context_length_exceeded"
        busy = tally.send(client, "5-work-limits", "POST", "/v1/ask", json={"question": "hi"})
        assert busy.status_code == 429
        generator.release.set()
        holder.join(timeout=30)


# -- uploads -------------------------------------------------------------------------------------


def upload(client: httpx.Client, tally: Tally, item: str, *files: tuple[str, bytes]) -> Any:
    return tally.send(client, item, "POST", "/v1/documents", files=[("files", f) for f in files])


def listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in client.get("/v1/documents").json()["data"]}


def test_an_upload_named_like_a_corpus_document_keeps_both(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally
) -> None:
    client, _ = hostile
    before = listed(client)["about.md"]
    response = upload(client, tally, "7-smaller", ("about.md", b"# About us\n\nAn upload.\n"))
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["ids"] == ["uploads/about.md"]
    documents = listed(client)
    assert documents["about.md"] == before  # the corpus document, untouched
    assert documents["uploads/about.md"]["title"] == "About us"


def test_a_bad_replacement_keeps_the_good_upload(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally
) -> None:
    client, _ = hostile
    assert upload(client, tally, "7-smaller", ("notes.md", GOOD_MD)).status_code == 201
    good = listed(client)["uploads/notes.md"]
    refused = upload(client, tally, "7-smaller", ("notes.md", b"\x00\x01\x02 not text"))
    assert refused.status_code == 400, refused.text  # not a 201 when every file failed
    error = refused.json()["error"]
    assert error["code"] == "unreadable_file" and "notes.md: binary file" in error["message"]
    assert listed(client)["uploads/notes.md"] == good
    hits = client.post("/v1/search", json={"query": "parking permits facilities", "k": 5})
    assert "uploads/notes.md" in {h["doc_id"] for h in hits.json()["hits"]}


def test_no_answer_names_a_server_path(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client, _ = hostile
    root = str(tmp_path_factory.getbasetemp())
    answers = [
        tally.send(client, "7-smaller", "GET", "/readyz"),
        upload(client, tally, "7-smaller", ("paths.md", b"# Paths\n\nNo paths here.\n")),
        upload(client, tally, "7-smaller", ("bad.json", nested_json()), ("ok.md", GOOD_MD)),
        tally.send(client, "7-smaller", "DELETE", "/v1/documents/uploads/paths.md"),
    ]
    for response in answers:
        assert response.status_code in (200, 201), response.text
        assert root not in response.text and "/tmp/" not in response.text, response.text


def test_the_openapi_document_says_400_and_refuses_an_empty_query(
    hostile: tuple[httpx.Client, CharTokens], tally: Tally
) -> None:
    client, _ = hostile
    document = tally.send(client, "7-smaller", "GET", "/openapi.json").json()
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"] and "400" in operation["responses"]
    query = document["components"]["schemas"]["SearchRequest"]["properties"]["query"]
    assert query["minLength"] == 1


def test_uploads_take_turns_one_bounded_file_at_a_time(index_dir: Path, tally: Tally) -> None:
    """A file that would keep a reader busy for minutes holds the index for one time budget
    (1 s here); a small upload sent meanwhile waits for that, not for the slow file."""
    state = make_state(index_dir, file_limits=FileLimits(seconds=1))
    slow = slow_html()
    with live_server(state) as url, httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        results: dict[str, Any] = {}

        def send(name: str, data: bytes) -> None:
            results[name] = upload(client, tally, "4-bombs", (name, data))

        first = threading.Thread(target=send, args=("slow.html", slow))
        first.start()
        time.sleep(0.5)
        send("small.md", GOOD_MD)
        first.join(timeout=TIMEOUT_S)
        assert results["small.md"].status_code == 201, results["small.md"].text
        slow_error = results["slow.html"].json()["error"]
        assert "took longer than 1 s to read" in slow_error["message"]
        assert set(listed(client)) == {*DOCS, "uploads/small.md"}


class SlowEmbedder(FakeEmbedder):
    """Embeds a batch in 0.2 s and tells when it starts, to leave in the middle of it."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def embed_batch(self, texts: Sequence[str]) -> Any:
        self.started.set()
        time.sleep(0.2)
        return super().embed_batch(texts)


def multipart(name: str, data: bytes) -> bytes:
    boundary = "hostile-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    request = (
        "POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return request + body


def test_an_upload_whose_client_leaves_stops_before_it_commits(
    index_dir: Path, tally: Tally
) -> None:
    embedder = SlowEmbedder()
    state = make_state(index_dir, embedder=embedder)
    many = "".join(f"Paragraph {n} about kettles and more kettles.\n\n" for n in range(30_000))
    with live_server(state) as url, httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
            raw.sendall(multipart("long.md", many.encode()))
            tally.sent["4-bombs"] += 1
            assert embedder.started.wait(timeout=TIMEOUT_S)
        calls = embedder.calls
        uploads = index_dir / "uploads"
        deadline = time.monotonic() + TIMEOUT_S
        while list(uploads.rglob("long.md")) and time.monotonic() < deadline:
            time.sleep(0.1)  # the route removes the file once ingestion stopped
        assert not list(uploads.rglob("long.md"))
        assert embedder.calls <= calls + 2  # stopped at the next batch, not ~30 batches later
        assert "uploads/long.md" not in listed(client)
        assert upload(client, tally, "4-bombs", ("after.md", GOOD_MD)).status_code == 201


def test_a_restart_removes_what_a_crash_left(index_dir: Path, tally: Tally) -> None:
    with live_server(make_state(index_dir)) as url, httpx.Client(base_url=url) as client:
        assert upload(client, tally, "4-bombs", ("kept.md", GOOD_MD)).status_code == 201
        before = listed(client)
    kept = sorted(p for p in (index_dir / "uploads").rglob("*") if p.is_file())
    leftovers = [
        index_dir / "tmp-crashed" / "chunks.sqlite",
        index_dir / "uploads" / "0123456789abcdef" / "orphan.md",
        index_dir / "uploads" / "0123456789abcdef" / ".orphan.md.part",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by a crash")
    with live_server(make_state(index_dir)) as url, httpx.Client(base_url=url) as client:
        assert listed(client) == before
    assert not (index_dir / "tmp-crashed").exists()
    assert not (index_dir / "uploads" / "0123456789abcdef").exists()
    assert sorted(p for p in (index_dir / "uploads").rglob("*") if p.is_file()) == kept


# -- request headers -----------------------------------------------------------------------------


def test_unfinished_request_headers_time_out(index_dir: Path, tally: Tally) -> None:
    """40 connections that never finish their headers (and one that sends nothing) are closed
    with a 408 once the header timeout passes; a finished request is not cut, however long its
    answer takes."""
    generator = GatedGenerator()
    state = make_state(index_dir, generator)
    with live_server(state, header_timeout=1.0) as url:
        port = int(url.rsplit(":", 1)[1])
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(41)]
        for raw in sockets[:40]:
            raw.sendall(b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app")
        tally.sent["7-header-timeout"] += 41
        answers = [raw.recv(4096) for raw in sockets]  # the server answers, then closes
        for raw in sockets:
            assert raw.recv(4096) == b""
            raw.close()
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[0]
        assert b"request_timeout" in answers[0]

        def released_later() -> None:
            time.sleep(2.5)  # well past the header timeout
            generator.release.set()

        threading.Thread(target=released_later).start()
        slow = httpx.post(f"{url}/v1/ask", json={"question": "hold on"}, timeout=TIMEOUT_S)
        tally.sent["7-header-timeout"] += 1
        assert slow.status_code == 200 and "Hold" in slow.json()["answer"]


# -- the same requests against a real server ---------------------------------------------------


@pytest.mark.slow
def test_a_real_server_answers_every_hostile_request(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`rag serve` with smollm2-135m over the sample corpus indexed with MiniLM: the real
    tokenizers, embedder and model behind every probe. No 5xx, no hang, no traceback."""
    from ingest.pipeline import ingest_paths

    folder = tmp_path_factory.mktemp("hostile-real")
    index = folder / "index"
    ingest_paths([ROOT / "corpora" / "sample" / "docs"], index)
    counts = Tally()
    args = ("--model", "smollm2-135m", "--device", "cpu")
    with rag_serve(folder, index, *args) as url, httpx.Client(base_url=url, timeout=600) as client:
        for probe in CATALOG:
            check(probe, counts.probe(client, probe))
    log = (folder / "server.log").read_text()
    record_volumes(tmp_path_factory, "hostile-real-server", counts.summary())
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
    assert counts.summary()["5xx"] == 0 and not counts.hangs
