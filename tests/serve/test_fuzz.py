"""Schemathesis against the live server: schema-valid and schema-invalid requests to every
operation, failing on any 5xx, hang, undocumented status or answer that breaks its schema.

A bounded number of examples per operation and mode keeps it to a minute or two on two cores.
The counts per operation land in ``volumes/fuzz.json`` under the test's temporary folder (and on
stdout), for the note that reports them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from serve.app import create_app
from tests.serve.conftest import live_server, make_state
from tests.volumes import record_volumes

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 30}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    from tests.serve.conftest import build_index

    index = build_index(tmp_path_factory.mktemp("fuzz") / "index")
    state = make_state(index, queue_size=64)
    with live_server(state) as url:
        yield url, create_app(make_state(index)).openapi()


def operations(document: dict) -> list[str]:
    return [f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops]


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_every_operation_holds_under_generated_requests(
    server: tuple[str, dict], mode: GenerationMode, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, document = server
    schema = schemathesis.openapi.from_dict(document)
    statuses: dict[str, Counter[int]] = {}
    hangs: list[str] = []
    session = requests.Session()
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        label = operation.label
        seen = statuses.setdefault(label, Counter())

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            try:
                response = case.call(base_url=url, session=session, timeout=TIMEOUT_S)
            except requests.Timeout:
                hangs.append(label)  # noqa: B023 (the loop variable of this very call)
                raise
            seen[response.status_code] += 1  # noqa: B023
            case.validate_response(response, checks=checks)

        try:
            exercise()
        except Unsatisfiable:
            # Nothing to negate: an operation without a body or parameters (GET /v1/models).
            assert mode is GenerationMode.NEGATIVE and not operation.body and not seen, label
    summary = {
        "mode": str(mode),
        "requests": sum(sum(c.values()) for c in statuses.values()),
        "per_operation": {label: dict(sorted(c.items())) for label, c in statuses.items()},
        "5xx": sum(n for c in statuses.values() for s, n in c.items() if s >= 500),
        "hangs": len(hangs),
    }
    record_volumes(tmp_path_factory, f"fuzz-{mode}", summary)
    assert set(statuses) == set(operations(document))
    assert summary["5xx"] == 0 and not hangs, summary


def test_the_document_says_400_not_422(server: tuple[str, dict]) -> None:
    _, document = server
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            assert "422" not in operation["responses"], (method, path)
            assert "400" in operation["responses"], (method, path)
    query = document["components"]["schemas"]["SearchRequest"]["properties"]["query"]
    assert query["minLength"] == 1 and query["pattern"] == r"\S"


# -- Hypothesis over what Schemathesis cannot reach ------------------------------------------------
# Its multipart uploads carry no usable file name (every one is a 400), and its strings never
# hold a lone surrogate.

SEEDS = {
    ".md": b"# Title\n\nSome text under it.\n\n## More\n\n- a list\n",
    ".html": b"<html><head><title>T</title></head><body><main><h1>H</h1><p>x</p></main></body>",
    ".json": b'[{"id": "a", "title": "A", "text": "alpha"}, {"text": "beta"}]',
    ".jsonl": b'{"text": "one"}\n{"text": "two"}\n',
    ".txt": b"plain text\nover lines\n",
}


def seeds() -> dict[str, bytes]:
    from tests.ingest.hostile_files import plain_docx
    from tests.ingest.ingest_files import make_pdf

    return {**SEEDS, ".docx": plain_docx(), ".pdf": make_pdf(["Page one", "Page two"])}


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file of a kind the server reads: random bytes, or a valid one cut, spliced or
    overwritten at random places."""
    suffix = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[suffix])
    if draw(st.booleans()):
        data = bytearray(draw(st.binary(min_size=1, max_size=4096)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["cut", "splice", "overwrite"]))
        noise = draw(st.binary(min_size=1, max_size=64))
        if action == "cut":
            del data[at:]
        elif action == "splice":
            data[at:at] = noise
        else:
            data[at : at + len(noise)] = noise
    return f"fuzz{suffix}", bytes(data) or b"x"


def test_mangled_uploads_are_ingested_or_refused_never_5xx(
    server: tuple[str, dict], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, _ = server
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:

        @given(upload=mangled())
        @settings(max_examples=40, deadline=None, database=None, derandomize=True)
        def send(upload: tuple[str, bytes]) -> None:
            response = client.post("/v1/documents", files=[("files", upload)])
            statuses[response.status_code] += 1
            assert response.status_code in (201, 400), response.text
            if response.status_code == 400:
                assert response.json()["error"]["code"] in ("unreadable_file", "empty_file")

        send()
    record_volumes(
        tmp_path_factory,
        "fuzz-uploads",
        {"requests": sum(statuses.values()), "statuses": dict(statuses)},
    )
    assert not any(status >= 500 for status in statuses)


def text_with_surrogates() -> st.SearchStrategy[str]:
    lone = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
    return st.one_of(st.text(max_size=200), st.tuples(st.text(max_size=50), lone).map("".join))


def test_any_text_in_any_field_is_answered_never_5xx(
    server: tuple[str, dict], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, _ = server
    statuses: Counter[int] = Counter()
    routes = {
        "/v1/search": lambda t: {"query": t, "source_glob": t[:20] or None},
        "/v1/ask": lambda t: {"question": t, "model": t[:10] or None, "max_tokens": 4},
        "/v1/chat/completions": lambda t: {
            "messages": [{"role": "user", "content": t}],
            "stop": [t[:5] or "x"],
            "max_tokens": 4,
        },
    }
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as client:

        @given(route=st.sampled_from(sorted(routes)), text=text_with_surrogates())
        @settings(max_examples=60, deadline=None, database=None, derandomize=True)
        def send(route: str, text: str) -> None:
            body = json.dumps(routes[route](text))  # lone surrogates travel as \ud800 escapes
            headers = {"Content-Type": "application/json"}
            response = client.post(route, content=body, headers=headers)
            statuses[response.status_code] += 1
            assert response.status_code < 500, response.text

        send()
    record_volumes(
        tmp_path_factory,
        "fuzz-text",
        {"requests": sum(statuses.values()), "statuses": dict(statuses)},
    )
