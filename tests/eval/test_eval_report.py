"""The report agrees with results.jsonl, is self-contained, and states a checkable rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from eval.costs import Hardware, estimate_costs, model_parameters
from eval.report import write_report
from eval.results import ResultsFile, Row
from eval.runner import RunnerConfig, run_eval
from eval.summary import summarize
from eval.svg import Bar, Point, bar_chart, line_chart, stacked_bars
from eval.variants import default_variants, plan_runs
from rag.errors import InputError
from tests.eval.eval_fakes import ITEMS, make_pipeline, reader


def fill(out: Path, base: Any = reader) -> ResultsFile:
    results = ResultsFile(out)
    results.start(
        {"model": "scripted", "qa": "fixture", "adapter": None},
        {"corpus_tokens": 40_000, "reader_parameters": 5e8},
    )

    def factory(adapter: bool):
        return make_pipeline(base if not adapter else lambda m: "Nairobi [1].")

    runs = plan_runs(default_variants(True), shots=2, k=3, sweep=(0, 1, 3, 5))
    run_eval(ITEMS, runs, factory, results, RunnerConfig(progress=False))
    return results


def test_report_files_agree_with_results(tmp_path: Path) -> None:
    results = fill(tmp_path)
    summary = write_report(tmp_path, target=0.99)
    rows = results.rows()
    report = json.loads((tmp_path / "report.json").read_text())
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for run in report["runs"]:
        mine = [r for r in rows if r.run == run["run"]]
        assert run["n"] == len(mine)
        assert run["f1"]["value"] == pytest.approx(sum(r.f1 for r in mine) / len(mine))
        assert run["em"]["value"] == pytest.approx(sum(r.em for r in mine) / len(mine))
        counts = {a: sum(1 for r in mine if r.attribution == a) for a in run["attribution"]}
        assert run["attribution"] == counts
        if not run["sweep"]:
            figure = summary.get(run["run"]).f1.format()  # type: ignore[union-attr]
            assert figure in markdown and figure in html
            assert f"(n={len(mine)})" in figure
    sweep = {point["shots"]: point["f1"]["value"] for point in report["sweep"]}
    assert sorted(sweep) == [0, 1, 2, 3, 5]
    assert sweep[5] == pytest.approx(sum(r.f1 for r in rows if r.run == "rag@5shot") / len(ITEMS))
    assert report["recall_curve"][0] == {"k": 1, "recall": 1.0, "n": 3}
    assert report["recommendation"] == summary.recommendation
    for line in summary.recommendation:
        assert line in html.replace("&#x27;", "'").replace("&quot;", '"') or "&" in line


def test_html_is_self_contained(tmp_path: Path) -> None:
    fill(tmp_path)
    write_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") >= 5
    urls = set(re.findall(r"https?://[^\"' )]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert "<script" not in html and "<link" not in html


def test_recommendation_states_the_rule(tmp_path: Path) -> None:
    fill(tmp_path, base=lambda messages: "Paris [1].")  # right about France only
    summary = write_report(tmp_path, target=0.99)
    text = "\n".join(summary.recommendation)
    assert re.search(
        r"Rule: lora-rag adds [+-]\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\] \(n=4\) over "
        r"rag-few-shot: (not significant|significantly worse): do not fine-tune",
        text,
    )
    assert "nothing reaches the target F1 0.99" in text
    assert "retrieval misses" in text and "reading misses" in text
    assert "Even with the gold passage (oracle) F1 is only 0.33" in text
    assert "GPU-hours" in text and "compute-optimal" in text


def synthetic(run: str, variant: str, f1s: list[float]) -> list[Row]:
    return [
        Row(
            qid=f"q{i}",
            run=run,
            variant=variant,
            shots=2,
            k=3,
            question="?",
            answers=["a"],
            answerable=True,
            prediction="a",
            refused=False,
            em=f,
            f1=f,
            correct=f >= 0.5,
            attribution="correct" if f >= 0.5 else "reading miss",
            gold_in_context=True,
            gold_known=False,
            gold_doc_rank=None,
            gold_passage_rank=1,
        )
        for i, f in enumerate(f1s)
    ]


def test_rule_says_fine_tune_only_when_significant() -> None:
    base = [1.0] * 30 + [0.0] * 30
    better = [1.0] * 55 + [0.0] * 5
    rows = synthetic("rag-few-shot", "rag-few-shot", base) + synthetic(
        "lora-rag", "lora-rag", better
    )
    summary = summarize(rows, target=0.5)
    assert summary.recommendation[-2].endswith(": significant: fine-tune.")
    assert summary.recommendation[-1].startswith("Rule: lora-rag reaches the target F1 0.50")
    same = synthetic("rag-few-shot", "rag-few-shot", base) + synthetic("lora-rag", "lora-rag", base)
    assert summarize(same).recommendation[-1].endswith("not significant: do not fine-tune.")
    alone = summarize(synthetic("rag", "rag", base)).recommendation
    assert "no baseline" in alone[0]


def test_costs_follow_6nd_and_20_tokens_per_parameter() -> None:
    hardware = Hardware(peak_flops=1e15, utilization=0.5, usd_per_hour=2.0)
    lines = estimate_costs(
        corpus_tokens=2_000_000, reader_parameters=5e8, hardware=hardware, finetune_epochs=3
    )
    finetune, scratch, reader_sized = lines
    assert finetune.flops == 6 * 5e8 * 6e6
    assert scratch.parameters == 100_000 and scratch.flops == 6 * 1e5 * 2e6
    assert reader_sized.tokens == 1e10
    assert reader_sized.gpu_hours == pytest.approx(6 * 5e8 * 1e10 / 5e14 / 3600)
    assert reader_sized.usd == pytest.approx(reader_sized.gpu_hours * 2.0)
    assert model_parameters("qwen2.5-0.5b") == 5e8
    assert model_parameters("smollm2-135m") == 135e6
    assert model_parameters("mystery") is None


def test_no_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run `rag eval` first"):
        write_report(tmp_path)


def test_svg_helpers_escape_and_draw() -> None:
    svg = bar_chart("F1 <per> variant", [Bar("a&b", 0.5, 0.4, 0.6, "n=3")], "F1", y_max=1.0)
    assert svg.startswith("<svg") and "a&amp;b" in svg and "&lt;per&gt;" in svg
    assert svg.count("<line") >= 5 + 3  # grid lines plus the error bar and its two caps
    lines = line_chart("t", {"s": [Point(0, 0.1), Point(5, 0.3, 0.2, 0.4)]}, "x", "y")
    assert "<polyline" in lines and "<circle" in lines
    stacked = stacked_bars("t", [("rag", {"correct": 3, "refused": 1})], ["correct", "refused"])
    assert "(n=4)" in stacked and stacked.count("<rect") == 2 + 2
