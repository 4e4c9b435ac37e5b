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
from eval.stats import padded_spread, paired_bootstrap, questions_needed
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
        r"Rule: lora(-rag)? adds [+-]\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\] \(n=4\) over "
        r"rag-few-shot, Holm p \d\.\d{3} \(fine-tune for a significant gain of at least 0\.05, "
        r"--min-gain\): undecided: about [\d,]+ more questions would settle a gain of 0\.05",
        text,
    )
    assert "Holm-adjusted over the 6 comparisons below; intervals 95% simultaneous" in text
    assert "nothing reaches the target F1 0.99" in text
    assert "retrieval misses" in text and "reading misses" in text
    assert "Even with the gold passage (oracle) F1 is only 0.33" in text
    # The training costs stand right under the gain they would buy.
    rule = next(i for i, line in enumerate(summary.recommendation) if line.startswith("Rule: lora"))
    assert summary.recommendation[rule + 1].startswith("- What training would cost, beside lora")
    assert "GPU-hours" in summary.recommendation[rule + 2]
    assert "train from scratch, compute-optimal" in summary.recommendation[rule + 3]
    markdown = (tmp_path / "report.md").read_text()
    assert "Holm-adjusted over the 6 comparisons" in markdown.split("## Accuracy per variant")[1]
    assert "| Holm p |" in markdown


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


def two_runs(base: list[float], lora: list[float]) -> list[Row]:
    return synthetic("rag-few-shot", "rag-few-shot", base) + synthetic("lora-rag", "lora-rag", lora)


def verdict(rows: list[Row], **options: Any) -> str:
    summary = summarize(rows, **options)
    rule = next(line for line in summary.recommendation if line.startswith("Rule: lora-rag"))
    return rule.split("--min-gain): ")[1]


def test_fine_tune_needs_a_significant_gain_worth_its_cost() -> None:
    base = [1.0] * 30 + [0.0] * 30
    better = [1.0] * 55 + [0.0] * 5
    summary = summarize(two_runs(base, better), target=0.5)
    assert summary.advice.decision.verdict == "fine-tune"
    assert summary.recommendation[-2].endswith(
        "significant, and at least the minimum gain of 0.05: fine-tune."
    )
    assert summary.recommendation[-1].startswith("Rule: lora-rag reaches the target F1 0.50")
    # The same gain against a higher bar; a significant but small gain.
    assert verdict(two_runs(base, better), min_gain=0.5) == (
        "significant, but below the minimum gain of 0.50: not worth it."
    )
    partial = [0.5 + 0.005 * (i % 7) for i in range(60)]
    slightly = [f + 0.02 for f in partial]
    assert verdict(two_runs(partial, slightly)).startswith("significant, but below the minimum")
    assert verdict(two_runs(better, base)) == "significantly worse: do not fine-tune."
    # 400 questions that differ on 8, four each way: settled, no gain worth having.
    same = [1.0] * 200 + [0.0] * 200
    swapped = [0.0] * 4 + [1.0] * 196 + [1.0] * 4 + [0.0] * 196
    assert verdict(two_runs(same, swapped)) == (
        "not significant, and the interval rules out a gain of 0.05: do not fine-tune."
    )
    alone = summarize(synthetic("rag", "rag", base))
    assert "no baseline" in alone.recommendation[0]
    assert alone.advice.decision.verdict == "not tested"


def test_six_questions_are_undecided_not_fine_tune() -> None:
    # The case: a +0.05 gain on 6 questions, with a second adapter variant compared.
    base = [0.0, 0.2, 0.0, 0.5, 0.0, 0.0]
    gains = [0.01, 0.02, 0.03, 0.05, 0.19, 0.0]
    lora_rag = [b + g for b, g in zip(base, gains, strict=True)]
    old = paired_bootstrap(lora_rag, base, seed=0)
    assert old.significant and old.value > 0  # what used to say "significant: fine-tune"
    rows = two_runs(base, lora_rag) + synthetic("lora", "lora", [0.0] * 6)
    summary = summarize(rows)
    decision = summary.advice.decision
    assert decision.verdict == "undecided" and decision.run == "lora-rag"
    assert decision.comparison is not None and decision.comparison.family == 2
    planned = questions_needed(padded_spread(gains), 0.05, alpha=decision.comparison.alpha_step)
    assert decision.questions == planned and decision.more_questions == planned - 6
    line = next(line for line in summary.recommendation if line.startswith("Rule: lora-rag"))
    assert line.startswith("Rule: lora-rag adds +0.05 [")
    assert line.endswith(
        f"undecided: about {planned - 6:,} more questions would settle a gain of 0.05 "
        f"({planned:,} in all, from the spread of these 6 per-question differences)."
    )
    assert "fine-tune." not in line
    assert summary.to_dict()["decision"]["more_questions"] == planned - 6


def test_the_report_rebuilds_from_the_rows_under_another_rule(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path)
    results.start({"model": "scripted", "qa": "fixture"})
    results.append(two_runs([1.0] * 30 + [0.0] * 30, [1.0] * 55 + [0.0] * 5))
    before = results.path.read_bytes()
    assert write_report(tmp_path).advice.decision.verdict == "fine-tune"
    assert write_report(tmp_path, min_gain=0.5).advice.decision.verdict == "not worth it"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["min_gain"] == 0.5 and report["decision"]["verdict"] == "not worth it"
    assert report["runs"][1]["diff_f1"]["p_holm"] < 0.001
    assert "not worth it" in (tmp_path / "report.md").read_text()
    assert results.path.read_bytes() == before


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
