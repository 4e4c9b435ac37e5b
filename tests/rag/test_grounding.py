"""An answer copied from a demonstration is caught; one read from the context is not."""

from __future__ import annotations

from rag.examples import Example, ExampleBank, Passage
from rag.grounding import copied_from_demos, quoted_blocks
from rag.pipeline import AskOptions, Pipeline
from rag.types import Chunk
from tests.fakes import ScriptedGenerator

DEMO = "Report it immediately to the IT service desk on extension 4400 [1]."
CONTEXT = ["Call the card hotline at 1-800-555-0100 to block a lost card at once."]


def test_copied_demo_answer_is_detected() -> None:
    assert copied_from_demos(DEMO, [DEMO], CONTEXT)


def test_answer_from_context_is_not_flagged() -> None:
    answer = "Call the card hotline at 1-800-555-0100 to block the card [1]."
    assert not copied_from_demos(answer, [DEMO], CONTEXT)


def test_phrase_shared_by_demo_and_context_is_not_a_copy() -> None:
    demo = "Report it immediately to the card hotline."
    context = ["Report it immediately to the card hotline, day or night."]
    assert not copied_from_demos("Report it immediately to the card hotline [1].", [demo], context)


def test_no_demos_means_nothing_to_copy() -> None:
    assert not copied_from_demos(DEMO, [], CONTEXT)


def test_pipeline_replaces_a_copied_answer_with_the_refusal_and_warns() -> None:
    demo = Example(
        question="Who do I call if my laptop is stolen?",
        passages=(Passage(title="Security", text="Call the IT service desk on extension 4400."),),
        answer=DEMO,
    )
    generator = ScriptedGenerator(replies=[DEMO])
    pipeline = Pipeline(generator, examples=ExampleBank([demo]))
    context = [Chunk(id=1, doc_id="cards.md", text=CONTEXT[0], title="Cards")]
    answer = pipeline.ask(
        "How do I report a stolen card?", options=AskOptions(shots=1), context=context
    )
    assert answer.refused and answer.text == "I don't know."
    assert answer.citations == []
    assert len(answer.warnings) == 1 and "4400" in answer.warnings[0]


def test_uncited_answer_is_attributed_to_the_block_it_quotes() -> None:
    context = [
        "Savings accounts pay 2% interest, paid monthly.",
        "The referrer and referred person cannot be registered at the same address.",
    ]
    answer = "No. The referrer and referred person cannot be registered at the same address."
    assert quoted_blocks(answer, context) == [2]
    assert quoted_blocks("Probably yes, ask a branch.", context) == []


def test_pipeline_marks_quoted_sources_as_inferred() -> None:
    text = "The referrer and referred person cannot be registered at the same address."
    chunks = [
        Chunk(id=1, doc_id="rates.md", text="Savings accounts pay 2% interest."),
        Chunk(id=2, doc_id="refer.md", text=text + " This prevents abuse."),
    ]
    pipeline = Pipeline(ScriptedGenerator(replies=["No. " + text]))
    answer = pipeline.ask("Can I refer my flatmate?", options=AskOptions(shots=0), context=chunks)
    assert [(c.marker, c.chunk.doc_id, c.inferred) for c in answer.citations] == [
        (2, "refer.md", True)
    ]
    cited = Pipeline(ScriptedGenerator(replies=["No [2]."])).ask(
        "Can I refer my flatmate?", options=AskOptions(shots=0), context=chunks
    )
    assert [(c.marker, c.inferred) for c in cited.citations] == [(2, False)]
