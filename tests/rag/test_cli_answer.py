"""`rag search`, `rag ask` and `rag chat` over a fake pipeline (the real models are e2e tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rag import pipeline as pipeline_module
from rag import retrieve as retrieve_module
from rag.cli_answer import register
from rag.examples import ExampleBank
from rag.pipeline import Pipeline
from rag.retrieve import Retriever
from rag.types import Chunk, Message
from tests.fakes import FakeEmbedder, FakeIndex, ScriptedGenerator

CHUNKS = [
    Chunk(
        1,
        "leave.md",
        "Staff get 25 days of paid annual leave.",
        ("Leave",),
        None,
        title="HR",
        source="docs/leave.md",
    ),
    Chunk(
        2,
        "pricing.md",
        "The Premium plan costs 29 dollars.",
        (),
        3,
        title="Pricing",
        source="docs/pricing.pdf",
    ),
]


def reply(messages: Sequence[Message]) -> str:
    """Answers from the block that holds the asked-about topic, citing its number."""
    last = messages[-1].content
    question = last.rsplit("Question:", 1)[-1].lower()
    title = "Pricing" if "cost" in question else "HR"
    for line in last.splitlines():
        if line.startswith("[") and f"] {title}" in line:
            marker = line.split()[0]
            return f"29 dollars {marker}." if title == "Pricing" else f"25 days {marker}."
    return "I don't know."


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    embedder = FakeEmbedder()
    index = FakeIndex(CHUNKS, embedder)
    calls: list[dict[str, object]] = []

    def fake_build(index_dir: Path | None, model: str, **kwargs: object) -> Pipeline:
        generator = ScriptedGenerator(script=reply)
        calls.append({"index_dir": index_dir, "model": model, "generator": generator, **kwargs})
        return Pipeline(
            generator,
            index=index if index_dir is not None else None,
            embedder=embedder,
            examples=ExampleBank.default(),
            condense="rules",
        )

    monkeypatch.setattr(pipeline_module, "build_pipeline", fake_build)
    monkeypatch.setattr(
        retrieve_module,
        "open_retriever",
        lambda path, device=None, cache_dir=None: Retriever(index, embedder),
    )
    app = typer.Typer()
    register(app)
    app.calls = calls  # type: ignore[attr-defined]
    return app


def test_search_prints_hits_and_json(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["search", "annual leave", "--index", "idx", "--k", "1"])
    assert result.exit_code == 0, result.output
    assert "[1] HR > Leave — docs/leave.md" in result.output and "dense=" in result.output
    result = CliRunner().invoke(app, ["search", "annual leave", "--index", "idx", "--json"])
    hits = json.loads(result.output)
    assert hits[0]["chunk"]["doc_id"] == "leave.md" and "dense" in hits[0]["ranks"]


def test_ask_streams_then_lists_cited_sources(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["ask", "How much annual leave?", "--index", "idx", "--model", "m", "--shots", "0"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("25 days [1].\n")
    assert "Sources:\n  [1] HR > Leave — docs/leave.md" in result.output
    assert app.calls[-1]["model"] == "m"  # type: ignore[attr-defined]


def test_ask_json_and_closed_book(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["ask", "How much annual leave?", "--index", "idx", "--json"])
    answer = json.loads(result.output)
    assert answer["citations"][0]["chunk"]["source"] == "docs/leave.md"
    assert set(answer["timings"]) == {"retrieve_ms", "prompt_ms", "first_token_ms", "total_ms"}
    result = CliRunner().invoke(app, ["ask", "Anything?", "--variant", "closed-book"])
    assert result.exit_code == 0 and app.calls[-1]["index_dir"] is None  # type: ignore[attr-defined]
    assert "Sources: none." in result.output


def test_ask_rejects_an_unknown_mode(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["ask", "Q?", "--index", "idx", "--mode", "semantic"])
    assert result.exit_code != 0 and "Unknown search mode" in str(result.exception)


def test_chat_keeps_history_and_handles_commands(app: typer.Typer) -> None:
    lines = [
        "/sources",
        "How much annual leave?",
        "/sources",
        "And what does the Premium plan cost?",
        "/bogus",
        "/reset",
        "/quit",
        "never read",
    ]
    stdin = "\n".join(lines) + "\n"
    result = CliRunner().invoke(app, ["chat", "--index", "idx"], input=stdin)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "No answer yet." in out
    assert "25 days [1]." in out and "  [1] HR > Leave — docs/leave.md" in out
    assert "29 dollars [1]." in out
    assert "Unknown command /bogus" in out and "(history cleared)" in out
    assert "never read" not in out


def test_chat_ends_at_end_of_input(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["chat", "--index", "idx"], input="How much annual leave?\n")
    assert result.exit_code == 0 and "25 days [1]." in result.output


@pytest.mark.parametrize("name", ["closed-book", "few-shot", "rag", "rag-few-shot"])
def test_ask_runs_the_variant_it_names(app: typer.Typer, name: str) -> None:
    from rag.variants import VARIANTS

    result = CliRunner().invoke(app, ["ask", "How much annual leave?", "--variant", name])
    assert result.exit_code == 0, result.output
    call = app.calls[-1]  # type: ignore[attr-defined]
    variant = VARIANTS[name]
    assert (call["index_dir"] is not None) == variant.retrieval and call["adapter"] is None
    [chat] = call["generator"].prompts
    assert (len(chat) - 2) // 2 == (2 if variant.demonstrations else 0)  # demonstration turns
    assert ("[1] HR" in chat[-1].content) == variant.retrieval


def test_the_lora_variants_and_the_adapter_go_together(app: typer.Typer, tmp_path: Path) -> None:
    lora = CliRunner().invoke(app, ["ask", "Q?", "--variant", "lora"])
    assert lora.exit_code != 0 and "needs --adapter" in str(lora.exception)
    adapter = ["--adapter", str(tmp_path)]
    mixed = CliRunner().invoke(app, ["ask", "Q?", "--variant", "rag", *adapter])
    assert mixed.exit_code != 0 and "runs without the adapter" in str(mixed.exception)
    oracle = CliRunner().invoke(app, ["ask", "Q?", "--variant", "oracle"])
    assert oracle.exit_code != 0 and "rag eval --variants oracle" in str(oracle.exception)
    tuned = CliRunner().invoke(app, ["ask", "How much annual leave?", *adapter])
    assert tuned.exit_code == 0, tuned.output  # lora-rag: the default with an adapter
    assert app.calls[-1]["adapter"] == tmp_path  # type: ignore[attr-defined]


def test_ask_and_chat_take_their_defaults_from_the_settings(
    app: typer.Typer, tmp_path: Path
) -> None:
    """The index folder's settings.json (what `rag eval --apply-settings` stores) sets k, shots
    and mode; --settings names another file; an option on the command line wins."""
    index = tmp_path / "index"
    index.mkdir()
    (index / "settings.json").write_text(json.dumps({"k": 1, "shots": 0, "mode": "keyword"}))
    asked = ["ask", "How much annual leave?", "--index", str(index), "--json"]

    def sent(*args: str) -> tuple[list[Message], dict[str, Any]]:
        result = CliRunner().invoke(app, [*asked, *args])
        assert result.exit_code == 0, result.output
        [chat] = app.calls[-1]["generator"].prompts  # type: ignore[attr-defined]
        return chat, json.loads(result.output)

    chat, answer = sent()
    assert len(chat) == 2 and "[2]" not in chat[-1].content  # no demonstrations, one passage
    assert set(answer["hits"][0]["ranks"]) == {"keyword"}
    chat, answer = sent("--k", "2", "--mode", "hybrid")
    assert "[2]" in chat[-1].content and set(answer["hits"][0]["ranks"]) == {"dense", "keyword"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"k": 2, "shots": 1, "mode": "dense", "lines": ["ignored"]}))
    chat, answer = sent("--settings", str(other))
    assert len(chat) == 4 and set(answer["hits"][0]["ranks"]) == {"dense"}

    result = CliRunner().invoke(app, ["chat", "--index", str(index)], input="How much leave?\n")
    assert result.exit_code == 0, result.output
    [chat] = app.calls[-1]["generator"].prompts  # type: ignore[attr-defined]
    assert len(chat) == 2 and "[2]" not in chat[-1].content

    other.write_text(json.dumps({"k": 0}))
    bad = CliRunner().invoke(app, [*asked, "--settings", str(other)])
    assert bad.exit_code != 0 and "is not a settings file (k: Input should be greater" in str(
        bad.exception
    )
