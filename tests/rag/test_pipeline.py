"""The answering pipeline with a fake embedder, an in-memory index and a scripted generator."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rag.errors import ConfigError
from rag.examples import ExampleBank
from rag.generate.base import GenerationConfig, GenerationResult
from rag.pipeline import AskOptions, Pipeline
from rag.types import Answer, Chunk, Message
from tests.fakes import FakeEmbedder, FakeIndex, ScriptedGenerator

CHUNKS = [
    Chunk(
        1,
        "leave.md",
        "Full-time staff get 25 days of paid annual leave.",
        title="Leave",
        source="leave.md",
    ),
    Chunk(
        2,
        "pricing.md",
        "The Premium plan costs 29 dollars per month.",
        title="Pricing",
        source="pricing.md",
    ),
    Chunk(
        3,
        "devices.md",
        "Report a stolen laptop on extension 4400.",
        title="Devices",
        source="devices.md",
    ),
]


def cite_leave(messages: Sequence[Message]) -> str:
    """Cites whichever numbered block holds the leave passage, like a model that reads."""
    question = messages[-1].content
    for line in question.splitlines():
        if line.startswith("[") and "Leave" in line:
            return f"25 days {line.split()[0]}."
    return "I don't know."


def make(generator: ScriptedGenerator | None = None, **kwargs: object) -> Pipeline:
    embedder = FakeEmbedder()
    return Pipeline(
        generator or ScriptedGenerator(script=cite_leave),
        index=FakeIndex(CHUNKS, embedder),
        embedder=embedder,
        examples=ExampleBank.default(embedder=embedder),
        **kwargs,  # type: ignore[arg-type]
    )


def test_ask_cites_the_chunk_that_holds_the_answer() -> None:
    pipeline = make()
    answer = pipeline.ask("How many days of paid annual leave do full-time staff get?")
    assert answer.text.startswith("25 days [")
    assert [c.chunk.doc_id for c in answer.citations] == ["leave.md"]
    assert not answer.refused and answer.invalid_markers == []
    assert answer.hits and answer.hits[0].chunk.doc_id == "leave.md"
    assert answer.prompt_tokens > 0 and answer.completion_tokens == 3
    assert answer.timings.first_token_ms is not None
    assert answer.timings.total_ms >= answer.timings.first_token_ms


def test_stream_yields_deltas_then_exactly_one_answer() -> None:
    items = list(make().stream("How many days of annual leave?", options=AskOptions(k=2)))
    assert isinstance(items[-1], Answer)
    assert not any(isinstance(i, Answer) for i in items[:-1])
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == items[-1].text


def test_build_messages_is_exactly_what_ask_sends() -> None:
    generator = ScriptedGenerator(script=cite_leave)
    pipeline = make(generator)
    options = AskOptions(k=2, shots=3)
    build = pipeline.build_messages("How many days of annual leave?", options=options)
    pipeline.ask("How many days of annual leave?", options=options)
    assert generator.prompts[0] == build.messages
    assert len(build.demos) == 3 and len(build.context) == 2
    assert build.messages[0].role == "system"


def test_an_uncovered_question_is_refused_without_generating() -> None:
    generator = ScriptedGenerator(replies=["made up [1]"])
    pipeline = make(generator, min_score=0.5)
    items = list(pipeline.stream("quantum chromodynamics of gluons"))
    answer = items[-1]
    assert isinstance(answer, Answer)
    assert answer.refused and answer.text == "I don't know." and answer.hits == []
    assert items[0] == "I don't know."
    assert generator.prompts == []


def test_options_min_score_overrides_the_pipeline_floor() -> None:
    pipeline = make(min_score=0.99)
    assert pipeline.ask("annual leave days").refused
    answer = pipeline.ask("annual leave days", options=AskOptions(min_score=-1.0))
    assert not answer.refused and answer.citations


def test_given_context_replaces_retrieval() -> None:
    generator = ScriptedGenerator(script=cite_leave)
    pipeline = make(generator)
    answer = pipeline.ask("Anything?", context=[CHUNKS[2], CHUNKS[0]])
    assert answer.citations[0].marker == 2 and answer.citations[0].chunk.id == 1
    assert answer.timings.retrieve_ms == 0.0
    assert "[1] Devices" in generator.prompts[0][-1].content


def test_closed_book_has_no_context_and_needs_no_index() -> None:
    generator = ScriptedGenerator(replies=["Paris."])
    pipeline = Pipeline(generator)
    answer = pipeline.ask("Capital of France?", options=AskOptions(retrieval=False, shots=0))
    assert answer.text == "Paris." and answer.hits == [] and answer.citations == []
    assert [m.role for m in generator.prompts[0]] == ["system", "user"]
    assert "Context:" not in generator.prompts[0][-1].content
    with pytest.raises(ConfigError, match="no index"):
        pipeline.ask("Capital of France?")


def test_invalid_markers_and_refusals_are_flagged() -> None:
    pipeline = make(ScriptedGenerator(replies=["25 days [1][9].", "I don't know [1]."]))
    answer = pipeline.ask("annual leave days", options=AskOptions(k=2))
    assert [c.marker for c in answer.citations] == [1] and answer.invalid_markers == [9]
    refused = pipeline.ask("annual leave days", options=AskOptions(k=2))
    assert refused.refused and refused.citations == []


def test_follow_ups_are_condensed_for_retrieval() -> None:
    generator = ScriptedGenerator(
        replies=["What does the Premium plan cost per month?", "29 dollars [1]."]
    )
    pipeline = make(generator)
    history = [
        Message("user", "Tell me about the Premium plan."),
        Message("assistant", "It is a plan [1]."),
    ]
    answer = pipeline.ask("And what does it cost?", history=history)
    assert answer.query == "What does the Premium plan cost per month?"
    assert answer.hits[0].chunk.doc_id == "pricing.md"
    final = generator.prompts[-1]
    assert (
        final[-2].content == "It is a plan [1]."
        and "Question: And what does it cost?" in final[-1].content
    )
    rules = make(ScriptedGenerator(replies=["29 dollars [1]."]), condense="rules")
    assert rules.ask("And what does it cost?", history=history).query.startswith("Tell me about")


def test_a_small_window_reports_what_was_dropped() -> None:
    pipeline = make(ScriptedGenerator(script=cite_leave, context_window=330))
    answer = pipeline.ask(
        "How many days of annual leave?", options=AskOptions(k=3, shots=4, max_new_tokens=64)
    )
    assert answer.dropped and all(d.startswith(("demo:", "context [")) for d in answer.dropped)
    assert answer.prompt_tokens <= 330 - 64


class BatchCounting(ScriptedGenerator):
    def __init__(self) -> None:
        super().__init__(script=cite_leave)
        self.batches: list[int] = []

    def generate_batch(
        self, batch: Sequence[Sequence[Message]], config: GenerationConfig
    ) -> list[GenerationResult]:
        self.batches.append(len(batch))
        return super().generate_batch(batch, config)


def test_ask_batch_generates_once_and_keeps_order() -> None:
    generator = BatchCounting()
    pipeline = make(generator, min_score=0.3)
    questions = ["annual leave days for staff", "quantum gluon physics", "paid annual leave"]
    answers = pipeline.ask_batch(questions)
    assert generator.batches == [2]
    assert [a.refused for a in answers] == [False, True, False]
    assert answers[0].citations[0].chunk.doc_id == "leave.md"
    oracle = pipeline.ask_batch(["Q1", "Q2"], contexts=[[CHUNKS[0]], None])
    assert oracle[0].citations[0].chunk.id == 1
    with pytest.raises(ConfigError, match="one context"):
        pipeline.ask_batch(["Q1"], contexts=[])


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        AskOptions(k=-1)
    with pytest.raises(ConfigError):
        AskOptions(mode="semantic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Pipeline(ScriptedGenerator(), refusal=" ")


def test_using_shares_the_loaded_parts_over_another_index_or_generator() -> None:
    pipeline = make(min_score=0.2, condense="rules")
    other_index = FakeIndex(CHUNKS[:1], pipeline.embedder or FakeEmbedder())
    tuned = ScriptedGenerator(replies=["Tuned."])
    copy = pipeline.using(index=other_index, generator=tuned)
    assert copy.index is other_index and copy.generator is tuned
    assert (copy.embedder, copy.examples) == (pipeline.embedder, pipeline.examples)
    assert (copy.min_score, copy.condense, copy.refusal) == (0.2, "rules", pipeline.refusal)
    assert pipeline.using(generator=tuned).index is pipeline.index
