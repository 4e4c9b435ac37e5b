"""Every bad input gets a clear 4xx in OpenAI's error format, never a 500."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from serve.limits import Limits
from tests.serve.conftest import GatedGenerator, HttpResponse, live_server, make_state, serving

QUESTION = {"role": "user", "content": "How many days of leave?"}
LIMITS = Limits(max_body_bytes=4_000, max_messages=4, max_message_chars=200, max_new_tokens=64)


@pytest.fixture
def strict(index_dir: Path) -> Iterator[TestClient]:
    with serving(make_state(index_dir, limits=LIMITS, api_keys=["k1", "k2"])) as client:
        client.headers["Authorization"] = "Bearer k2"
        yield client


def error_of(response: HttpResponse, status: int) -> dict[str, Any]:
    """The OpenAI error object, after checking the status and the exact shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def chat(client: TestClient, **body: Any) -> HttpResponse:
    return client.post("/v1/chat/completions", json={"messages": [QUESTION], **body})


def test_missing_or_wrong_key_is_401(strict: TestClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic k1"},
    ):
        response = strict.post(
            "/v1/chat/completions", json={"messages": [QUESTION]}, headers=headers
        )
        error = error_of(response, 401)
        assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    for path in ("/v1/models", "/metrics", "/v1/documents", "/openapi.json", "/no/such/route"):
        error_of(strict.get(path, headers={"Authorization": ""}), 401)
    assert chat(strict).status_code == 200
    assert strict.get("/v1/models", headers={"Authorization": "Bearer k1"}).status_code == 200


def test_probes_and_the_page_need_no_key(strict: TestClient) -> None:
    anonymous = {"Authorization": ""}
    for path in ("/healthz", "/readyz", "/", "/static/chat.js", "/static/chat.css"):
        assert strict.get(path, headers=anonymous).status_code == 200, path


def test_body_over_the_limit_is_413(strict: TestClient) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 5_000}]}
    error = error_of(strict.post("/v1/chat/completions", json=big), 413)
    assert "4000 bytes" in error["message"] and error["code"] == "request_too_large"


def test_body_over_the_limit_without_content_length_is_413(strict: TestClient) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1_000
        yield b'"}]}'

    response = strict.post(
        "/v1/chat/completions", content=body(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    error_of(response, 413)


def test_too_many_messages_is_400_with_the_limit(strict: TestClient) -> None:
    messages = [QUESTION] * 5
    error = error_of(strict.post("/v1/chat/completions", json={"messages": messages}), 400)
    assert "limit is 4" in error["message"] and error["code"] == "too_many_messages"


def test_too_long_a_message_is_400_with_the_limit(strict: TestClient) -> None:
    messages = [{"role": "user", "content": "y" * 201}]
    error = error_of(strict.post("/v1/chat/completions", json={"messages": messages}), 400)
    assert "limit is 200" in error["message"] and error["param"] == "messages.0.content"


def test_max_tokens_over_the_limit_is_400(strict: TestClient) -> None:
    error = error_of(chat(strict, max_tokens=65), 400)
    assert "limit is 64" in error["message"] and error["param"] == "max_tokens"


def test_malformed_json_is_400(strict: TestClient) -> None:
    response = strict.post(
        "/v1/chat/completions",
        content=b'{"messages": [',
        headers={"Content-Type": "application/json"},
    )
    error = error_of(response, 400)
    assert error["code"] == "invalid_json" and "Malformed JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [QUESTION], "stream": "yes"}, "stream"),
        ({"messages": [QUESTION], "max_tokens": "many"}, "max_tokens"),
        ({"messages": [QUESTION], "max_tokens": 0}, "max_tokens"),
        ({"messages": [QUESTION], "temperature": 3}, "temperature"),
        ({"model": 7, "messages": [QUESTION]}, "model"),
        ({}, "messages"),
        ([1, 2], None),
    ],
)
def test_wrong_types_are_400_naming_the_field(
    strict: TestClient, body: Any, param: str | None
) -> None:
    error = error_of(strict.post("/v1/chat/completions", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": "   "}],
        [{"role": "user", "content": None}],
        [QUESTION, {"role": "assistant", "content": "hi"}],
    ],
)
def test_empty_messages_are_400(strict: TestClient, messages: list[Any]) -> None:
    error = error_of(strict.post("/v1/chat/completions", json={"messages": messages}), 400)
    assert error["param"] == "messages"


def test_unknown_model_is_404_model_not_found(strict: TestClient) -> None:
    error = error_of(chat(strict, model="gpt-4o"), 404)
    assert error["code"] == "model_not_found"
    assert (
        "gpt-4o" in error["message"]
        and "closed-book, few-shot, rag, rag-few-shot)" in error["message"]
    )


def test_native_routes_validate_too(strict: TestClient) -> None:
    error_of(strict.post("/v1/ask", json={"question": ""}), 400)
    error_of(strict.post("/v1/ask", json={"question": "hi", "k": -1}), 400)
    error_of(strict.post("/v1/ask", json={"question": "hi", "kk": 1}), 400)
    error_of(strict.post("/v1/ask", json={"question": "hi", "model": "nope"}), 404)
    error_of(strict.post("/v1/search", json={"query": 5}), 400)
    error_of(strict.post("/v1/search", json={"query": "  "}), 400)
    error_of(strict.delete("/v1/documents/missing.md"), 404)


def test_unknown_route_and_wrong_method_use_the_same_format(strict: TestClient) -> None:
    error_of(strict.get("/v1/nothing-here"), 404)
    error_of(strict.get("/v1/chat/completions"), 405)


def test_a_bug_is_a_500_in_the_same_format(index_dir: Path) -> None:
    state = make_state(index_dir)
    with serving(state) as client:
        assert state.pipelines is not None

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise ZeroDivisionError("a bug")

        state.pipelines.base.search = broken  # type: ignore[method-assign]
        error = error_of(client.post("/v1/search", json={"query": "leave"}), 500)
        assert error["type"] == "server_error" and "a bug" not in error["message"]


def test_full_queue_is_429_with_retry_after(index_dir: Path) -> None:
    generator = GatedGenerator()
    state = make_state(index_dir, generator, concurrency=1, queue_size=1)
    with live_server(state) as url:
        results: list[httpx.Response] = []

        def ask() -> None:
            results.append(httpx.post(f"{url}/v1/ask", json={"question": "leave?"}, timeout=30))

        first = threading.Thread(target=ask)
        first.start()
        assert generator.started.acquire(timeout=10)  # the only slot is taken
        queued = threading.Thread(target=ask)
        queued.start()
        assert state.gate is not None
        for _ in range(500):
            if state.gate.waiting == 1:
                break
            threading.Event().wait(0.01)
        assert state.gate.waiting == 1
        refused = httpx.post(f"{url}/v1/chat/completions", json={"messages": [QUESTION]})
        error = error_of(refused, 429)
        assert error["type"] == "rate_limit_error" and error["code"] == "queue_full"
        assert int(refused.headers["retry-after"]) >= 1
        generator.release.set()
        first.join(timeout=10)
        queued.join(timeout=10)
        assert [r.status_code for r in results] == [200, 200]
        metrics = httpx.get(f"{url}/metrics").text
        assert "rag_queue_rejected_total 1.0" in metrics


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_stops_its_generation(index_dir: Path, stream: bool) -> None:
    generator = GatedGenerator()
    state = make_state(index_dir, generator)
    with live_server(state) as url:
        body = {"messages": [QUESTION], "stream": stream}
        with httpx.Client(timeout=10) as http:
            if stream:
                with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                    for line in response.iter_lines():
                        if "Hold" in line:
                            break  # leave after the first words
            else:
                with contextlib.suppress(httpx.ReadTimeout):
                    http.post(f"{url}/v1/chat/completions", json=body, timeout=1.0)
        assert generator.closed.wait(timeout=10), "the generation kept running"
        assert not generator.finished.is_set()
        assert state.gate is not None
        for _ in range(500):
            if state.gate.running == 0:
                break
            threading.Event().wait(0.01)
        assert state.gate.running == 0  # the slot is free again
        assert "rag_generations_cancelled_total 1.0" in httpx.get(f"{url}/metrics").text


def test_a_client_that_leaves_the_queue_never_starts_generating(index_dir: Path) -> None:
    generator = GatedGenerator()
    state = make_state(index_dir, generator, concurrency=1, queue_size=4)
    with live_server(state) as url:
        holder = threading.Thread(
            target=lambda: httpx.post(f"{url}/v1/ask", json={"question": "leave?"}, timeout=30)
        )
        holder.start()
        assert generator.started.acquire(timeout=10)
        with contextlib.suppress(httpx.ReadTimeout):  # queued behind the holder, then gone
            httpx.post(f"{url}/v1/chat/completions", json={"messages": [QUESTION]}, timeout=0.5)
        assert state.gate is not None
        for _ in range(500):
            if state.gate.waiting == 0:
                break
            threading.Event().wait(0.01)
        assert state.gate.waiting == 0
        generator.release.set()
        holder.join(timeout=10)
        threading.Event().wait(0.3)
        assert not generator.started.acquire(timeout=0.1), "the abandoned request was generated"
        assert 'status="499"' in httpx.get(f"{url}/metrics").text
