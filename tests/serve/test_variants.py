"""One vocabulary: a variant the server offers runs what the evaluation runs under that name.

The evaluation (the real `evaluate`, fake models) and the server (the real app) answer the same
question over the same index with the same demonstrations. Each generator records the chat it
is sent, so for every name the test compares what actually ran on both sides: the same chat,
sent to the same generator (the base model's or the adapter's), and the `variant` the server
reports equals the run's configuration that the evaluation recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eval.evaluate import EvalRequest, evaluate
from eval.qa import QAItem, write_qa_jsonl
from eval.results import ResultsFile
from eval.variants import RunSpec, plan_runs
from rag.examples import ExampleBank
from rag.generate.base import Generator
from rag.pipeline import Pipeline
from rag.store import Index
from rag.types import Message
from rag.variants import DEFAULT_VARIANT, VARIANTS
from tests.fakes import FakeEmbedder, ScriptedGenerator
from tests.serve.conftest import cite_first, make_state, serving

QUESTION = "How many days of paid annual leave do staff get?"
EXAMPLES = ExampleBank.default().examples
SERVABLE = [name for name, v in VARIANTS.items() if not v.oracle]


def run_evaluation(
    index_dir: Path, tmp_path: Path
) -> tuple[list[RunSpec], dict[str, list[Message]]]:
    """Every variant through `evaluate`, one question; the chat each run sent, by run name."""
    write_qa_jsonl([QAItem("q1", QUESTION, ("25 days",), ("leave.md",))], tmp_path / "qa.jsonl")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    request = EvalRequest(
        qa=str(tmp_path / "qa.jsonl"),
        index=index_dir,
        model="scripted",
        out=tmp_path / "report",
        adapter=adapter,
        sweep=(),
        k_sweep=(),
        demos_from_qa=0,
    )
    generators = {False: ScriptedGenerator(cite_first), True: ScriptedGenerator(cite_first)}

    def pipeline_for(with_adapter: bool) -> Pipeline:
        embedder = FakeEmbedder()
        return Pipeline(
            generators[with_adapter],
            index=Index.open(index_dir),
            embedder=embedder,
            examples=ExampleBank(EXAMPLES, embedder=embedder),
        )

    evaluate(request, cache_dir=tmp_path, pipeline_for=pipeline_for, progress=False)
    runs = plan_runs(request.variant_names(), shots=request.shots, k=request.k)
    assert {run.name for run in runs} == set(VARIANTS)
    # The runner answers run after run, so each generator's prompts follow the runs' order.
    sent = {
        run.name: prompt
        for with_adapter, generator in generators.items()
        for run, prompt in zip(
            [r for r in runs if r.variant.adapter == with_adapter],
            generator.prompts,
            strict=True,
        )
    }
    rows = {row.run: row for row in ResultsFile(request.out).rows()}
    for run in runs:  # what results.jsonl records for each run is its configuration
        assert (rows[run.name].variant, rows[run.name].shots, rows[run.name].k) == (
            run.config.name,
            run.config.shots,
            run.config.k,
        )
    return runs, sent


def ask_server(
    client: TestClient, name: str | None, route: str, status: int = 200
) -> dict[str, object]:
    """The body of ``route``'s answer to QUESTION asked of variant ``name`` (None: no model)."""
    if route == "/v1/ask":
        request: dict[str, object] = {"question": QUESTION}
    else:
        request = {"messages": [{"role": "user", "content": QUESTION}]}
    if name is not None:
        request["model"] = name
    response = client.post(route, json=request)
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize("route", ["/v1/ask", "/v1/chat/completions"])
def test_every_served_variant_runs_what_the_evaluation_runs(
    index_dir: Path, tmp_path: Path, route: str
) -> None:
    runs, eval_sent = run_evaluation(index_dir, tmp_path)
    base, tuned = ScriptedGenerator(cite_first), ScriptedGenerator(cite_first)
    state = make_state(index_dir, base, adapter_generator=tuned, examples=EXAMPLES)
    with serving(state) as client:
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert models == SERVABLE  # every variant of the report but the oracle
        for run in runs:
            if run.variant.oracle:
                continue
            generator: Generator = tuned if run.variant.adapter else base
            sent_before = len(base.prompts) + len(tuned.prompts)
            body = ask_server(client, run.name, route)
            assert body["model"] == run.name
            assert body["variant"] == run.config.to_dict()
            assert len(base.prompts) + len(tuned.prompts) == sent_before + 1
            assert isinstance(generator, ScriptedGenerator) and generator.prompts
            assert generator.prompts[-1] == eval_sent[run.name], run.name
        ask_server(client, "oracle", route, status=404)  # it needs a QA set's gold passage
        assert ask_server(client, None, route)["model"] == DEFAULT_VARIANT


def test_the_chats_differ_as_the_variants_say(index_dir: Path, tmp_path: Path) -> None:
    """The comparison above is not vacuous: retrieval and demonstrations show in the chat."""
    _, sent = run_evaluation(index_dir, tmp_path)
    for name in SERVABLE:
        variant, chat = VARIANTS[name], sent[name]
        demonstrations = (len(chat) - 2) // 2  # system, demo turns, question
        assert demonstrations == (2 if variant.demonstrations else 0), name
        assert ("[1] Leave" in chat[-1].content) == variant.retrieval, name
