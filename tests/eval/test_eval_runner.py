"""The runner through the real Pipeline (scripted generator, fake embedder, in-memory index):
rows, attribution, the oracle, batching, and resuming a killed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.results import ResultsFile, Row
from eval.runner import RunnerConfig, run_eval
from eval.variants import attribute, default_variants, plan_runs
from rag.errors import ConfigError
from rag.pipeline import Pipeline
from tests.eval.eval_fakes import ITEMS, make_pipeline

QUIET = RunnerConfig(batch_size=3, progress=False)


def by_key(rows: list[Row]) -> dict[tuple[str, str], Row]:
    return {(row.qid, row.run): row for row in rows}


def test_every_variant_through_the_pipeline(tmp_path: Path) -> None:
    runs = plan_runs(default_variants(False), shots=2, k=3, sweep=(0, 1, 3, 5))
    names = [run.name for run in runs]
    # rag covers the 0-shot sweep point; the others are added once.
    assert names == [
        "closed-book",
        "few-shot",
        "rag",
        "rag-few-shot",
        "oracle",
        "rag@1shot",
        "rag@3shot",
        "rag@5shot",
    ]
    results = ResultsFile(tmp_path)
    results.start({"model": "scripted"})
    added = run_eval(ITEMS, runs, lambda adapter: make_pipeline(), results, QUIET)
    rows = by_key(results.rows())
    assert added == len(rows) == 8 * 4 - 1  # the oracle skips q4: no passage, no gold document

    rag = rows[("q1", "rag-few-shot")]
    assert (rag.prediction, rag.em, rag.f1, rag.correct) == ("Paris [1].", 1.0, 1.0, True)
    assert rag.gold_doc_rank == 1 and rag.gold_passage_rank == 1 and rag.gold_in_context
    assert rag.citation_correct is True and rag.citations[0]["doc_id"] == "france.md"
    assert rag.attribution == "correct" and rag.batch_size == 3 and rag.prompt_tokens > 0

    assert rows[("q1", "closed-book")].attribution == "correct"  # the fake "knows" France
    assert rows[("q2", "closed-book")].attribution == "refused"
    assert rows[("q2", "closed-book")].retrieved == []
    assert rows[("q4", "rag")].attribution == "correct"  # unanswerable, refused
    assert rows[("q4", "rag")].f1 == 1.0
    # The oracle reads the given passage (q3) or the gold document's chunks (q1, q2).
    assert all(rows[(q, "oracle")].correct for q in ("q1", "q2", "q3"))
    assert rows[("q3", "oracle")].retrieved == []
    assert rows[("q1", "rag@5shot")].shots == 5 and rows[("q1", "rag@5shot")].sweep


def test_wrong_answers_are_attributed(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path)
    runs = plan_runs(["closed-book", "rag"], shots=0, k=1)
    run_eval(
        ITEMS[:2], runs, lambda adapter: make_pipeline(lambda m: "Berlin [1]."), results, QUIET
    )
    rows = by_key(results.rows())
    assert rows[("q1", "rag")].attribution == "reading miss"  # the gold passage was there
    assert rows[("q1", "closed-book")].attribution == "retrieval miss"  # it never is
    assert (
        attribute(answerable=True, refused=False, correct=False, gold_in_context=False)
        == "retrieval miss"
    )
    assert (
        attribute(answerable=False, refused=False, correct=False, gold_in_context=False)
        == "reading miss"
    )


class CountingFactory:
    def __init__(self) -> None:
        self.built: list[bool] = []
        self.questions = 0

    def __call__(self, adapter: bool) -> Pipeline:
        self.built.append(adapter)

        def script(messages: object) -> str:
            self.questions += 1
            return "Paris [1]." if not adapter else "Lima [1]."

        return make_pipeline(script)


def test_rerun_resumes_after_a_kill(tmp_path: Path) -> None:
    runs = plan_runs(["rag", "rag-few-shot", "lora", "lora-rag"], shots=1, k=2)
    assert [run.variant.adapter for run in runs] == [False, False, True, True]
    results = ResultsFile(tmp_path)
    results.start({"model": "scripted", "adapter": "a"})
    first = CountingFactory()
    run_eval(ITEMS, runs, first, results, QUIET)
    assert first.built == [False, True]  # the base pipeline goes before the adapter's loads
    complete = results.path.read_text().splitlines(keepends=True)
    assert len(complete) == 16
    # Simulate a kill: 9 rows made it, the 10th was cut mid-line.
    results.path.write_text("".join(complete[:9]) + complete[9][:40])
    results.start({"model": "scripted", "adapter": "a"})
    second = CountingFactory()
    added = run_eval(ITEMS, runs, second, results, QUIET)
    assert added == 7
    rows = results.rows()
    assert len(rows) == 16 and len(by_key(rows)) == 16
    assert by_key(rows)[("q4", "lora-rag")].prediction == "Lima [1]."
    assert [json.loads(line) for line in results.path.read_text().splitlines()]  # all valid
    third = CountingFactory()
    assert run_eval(ITEMS, runs, third, results, QUIET) == 0 and third.built == []


def test_a_rerun_with_another_configuration_is_refused(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path)
    results.start({"model": "a", "k": 3}, {"limit": 10})
    run_eval(ITEMS[:1], plan_runs(["rag"], shots=0, k=3), lambda a: make_pipeline(), results, QUIET)
    results.start({"model": "a", "k": 3}, {"limit": 20})  # a bigger sample adds rows: fine
    assert results.config()["limit"] == 20
    with pytest.raises(ConfigError, match="model: 'a' -> 'b'"):
        results.start({"model": "b", "k": 3})


def test_the_fingerprint_names_the_prompt_templates(tmp_path: Path) -> None:
    from eval.evaluate import EvalRequest
    from rag.prompt import templates_digest

    request = EvalRequest(qa="x.jsonl", index=tmp_path, model="m", out=tmp_path)
    assert request.fingerprint()["prompts"] == templates_digest()
    results = ResultsFile(tmp_path)
    results.start(request.fingerprint())
    run_eval(ITEMS[:1], plan_runs(["rag"], shots=0, k=3), lambda a: make_pipeline(), results, QUIET)
    with pytest.raises(ConfigError, match="prompts: "):
        results.start({**request.fingerprint(), "prompts": "edited"})


def test_counterfactual_answers_from_memory_are_counted(tmp_path: Path) -> None:
    from eval.qa import QAItem
    from eval.summary import summarize

    swapped = QAItem(
        "cf1",
        "What is the capital of France?",
        ("Lyon",),
        ("france.md",),
        extra={"original_answers": ["Paris"]},
    )
    results = ResultsFile(tmp_path)
    run_eval([swapped], plan_runs(["rag"], shots=0, k=1), lambda a: make_pipeline(), results, QUIET)
    [row] = results.rows()
    assert row.f1 == 0.0 and row.memory_em == 1.0  # "Paris": the remembered, pre-swap answer
    assert summarize([row]).runs[0].memory_rate == 1.0


def test_a_wordy_answer_that_states_the_gold_answer_is_correct(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path)
    wordy = make_pipeline(lambda messages: "The capital of France is Paris [1].")
    run_eval(ITEMS[:1], plan_runs(["rag"], shots=0, k=1), lambda a: wordy, results, QUIET)
    [row] = results.rows()
    assert row.f1 == pytest.approx(1 / 3) and row.em == 0.0  # "capital of france is paris"
    assert row.contains_answer and row.correct and row.attribution == "correct"
