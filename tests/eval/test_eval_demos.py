"""Demonstrations from the QA set: disjoint from the evaluated questions, leak-free, seeded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from eval.demos import demo_pool, write_demos
from eval.qa import QAItem
from rag.examples import load_examples


def item(
    i: int, question: str | None = None, *, answerable: bool = True, context: str | None = ""
) -> QAItem:
    return QAItem(
        id=f"q{i}",
        question=question or f"What is fact number {i} about topic {i * 7}?",
        answers=(f"answer {i}",),
        answerable=answerable,
        context=f"Passage {i}: the answer is answer {i}." if context == "" else context,
    )


def test_pool_is_disjoint_leak_free_and_seeded() -> None:
    evaluated = [item(0), item(1)]
    others = [
        item(2),
        item(3, answerable=False),
        item(4, context=None),
        item(5, question=evaluated[0].question),  # a near-duplicate of an evaluated question
        *[item(i) for i in range(6, 20)],
    ]
    pool = demo_pool([*evaluated, *others], evaluated, 5, seed=1)
    ids = {p.id for p in pool}
    assert len(pool) == 5
    assert not ids & {"q0", "q1", "q3", "q4", "q5"}
    assert [p.id for p in pool] == [p.id for p in demo_pool([*evaluated, *others], evaluated, 5, 1)]


def test_written_demos_load_as_an_example_bank(tmp_path: Path) -> None:
    path = write_demos([item(2), item(3)], tmp_path)
    examples = load_examples(path)
    assert [e.question for e in examples] == [item(2).question, item(3).question]
    assert examples[0].answer == "answer 2 [1]"
    assert examples[0].passages[0].text == "Passage 2: the answer is answer 2."


def test_eval_says_which_demonstrations_it_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from eval.evaluate import EvalRequest, evaluate
    from eval.qa import write_qa_jsonl
    from eval.results import ResultsFile
    from tests.eval.eval_fakes import make_pipeline

    items = [item(i) for i in range(6)]
    write_qa_jsonl(items, tmp_path / "qa.jsonl")

    def run(out: Path, limit: int | None) -> str:
        request = EvalRequest(
            qa=str(tmp_path / "qa.jsonl"),
            index=tmp_path,
            model="scripted",
            out=out,
            variants=("rag-few-shot",),
            sweep=(),
            limit=limit,
            shots=1,
        )
        evaluate(
            request, cache_dir=tmp_path, pipeline_for=lambda a: make_pipeline(), progress=False
        )
        return str(ResultsFile(out).config()["demonstrations"])

    assert run(tmp_path / "some", 4) == "2 unevaluated questions of the QA set (demos.jsonl)"
    assert (tmp_path / "some" / "demos.jsonl").is_file()
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="eval"):
        assert run(tmp_path / "all", None).startswith("the bundled bank: no unevaluated question")
    assert "Sample fewer with --limit" in caplog.text
    assert not (tmp_path / "all" / "demos.jsonl").exists()
