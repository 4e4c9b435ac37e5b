"""Schemathesis against the live server: schema-valid and schema-invalid requests to every
operation, failing on any 5xx, hang, undocumented status or answer that breaks its schema.

A bounded number of examples per operation and mode keeps it to a minute or two on two cores.
The counts per operation land in ``volumes/fuzz.json`` under the test's temporary folder (and on
stdout), for the note that reports them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
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
