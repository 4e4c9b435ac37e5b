"""The search-mode comparison: measured once per question and mode, paired, and acted on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.evaluate import EvalRequest, evaluate
from eval.qa import write_qa_jsonl
from eval.results import ResultsFile
from eval.search_modes import MODES_FILE, mode_verdict, read_modes, summarize_modes
from rag.errors import ConfigError
from tests.eval.eval_fakes import ITEMS, make_pipeline


def rows(ranks: dict[str, list[int | None]]) -> list[dict[str, object]]:
    return [
        {"qid": f"q{i}", "mode": mode, "gold_doc_rank": rank}
        for mode, found in ranks.items()
        for i, rank in enumerate(found)
    ]


def test_the_used_mode_comes_first_and_others_are_paired_against_it() -> None:
    n = 40
    modes = summarize_modes(
        rows(
            {"dense": [None] * n, "keyword": [1] * n, "hybrid": [2] * (n // 2) + [None] * (n // 2)}
        ),
        used="hybrid",
        k=3,
    )
    assert [m.mode for m in modes] == ["hybrid", "dense", "keyword"]
    hybrid, dense, keyword = modes
    assert dict((k, e.value) for k, e in hybrid.recall) == {1: 0.0, 3: 0.5, 5: 0.5, 10: 0.5}
    assert hybrid.diff is None and hybrid.at_k.value == 0.5 and hybrid.at_k.n == n
    assert keyword.diff is not None and keyword.diff.significant
    assert keyword.diff.difference.value == 0.5 and keyword.diff.family == 2
    assert dense.diff is not None and dense.diff.difference.value == -0.5
    verdict = mode_verdict(modes)
    assert verdict is not None
    assert verdict.startswith("Rule: keyword search puts a gold document in the top 3 for 1.00")
    assert "rerun with `rag eval --mode keyword`" in verdict


def test_no_switch_without_a_significant_gain() -> None:
    same = [1, None, 2, None, 3, 1]
    modes = summarize_modes(
        rows({"hybrid": same, "dense": same, "keyword": same}), used="hybrid", k=3
    )
    assert mode_verdict(modes) == (
        "Rule: no search mode puts a gold document in the top 3 significantly more often than "
        "hybrid, which does for 0.67 [0.19, 1.00] (n=6) of questions: keep --mode hybrid."
    )
    assert summarize_modes([], used="hybrid", k=3) == []
    assert mode_verdict([]) is None


def request(tmp_path: Path, out: str, **overrides: object) -> EvalRequest:
    write_qa_jsonl(ITEMS, tmp_path / "qa.jsonl")
    fields: dict[str, object] = {
        "qa": str(tmp_path / "qa.jsonl"),
        "index": tmp_path,
        "model": "scripted",
        "out": tmp_path / out,
        "variants": ("rag", "rag-few-shot"),
        "sweep": (),
        "k_sweep": (),
        "k": 2,
        "shots": 1,
        "demos_from_qa": 0,
        **overrides,
    }
    return EvalRequest(**fields)  # type: ignore[arg-type]


def test_eval_measures_every_mode_once_and_reports_them(tmp_path: Path) -> None:
    built: list[bool] = []

    def factory(adapter: bool):
        built.append(adapter)
        return make_pipeline()

    req = request(tmp_path, "report")
    evaluate(req, cache_dir=tmp_path, pipeline_for=factory, progress=False)
    measured = read_modes(req.out)
    with_gold = [item.id for item in ITEMS if item.doc_ids]
    assert sorted((r["qid"], r["mode"]) for r in measured) == sorted(
        (qid, mode) for qid in with_gold for mode in ("hybrid", "dense", "keyword")
    )
    report = json.loads((req.out / "report.json").read_text())
    assert [m["mode"] for m in report["search_modes"]] == ["hybrid", "dense", "keyword"]
    assert "Gold document by search mode" in (req.out / "report.md").read_text()
    assert "| search mode |" in (req.out / "report.md").read_text()
    assert "Recall@k: gold document by search mode" in (req.out / "report.html").read_text()

    # A rerun with nothing left to answer neither re-measures nor builds a pipeline.
    (req.out / MODES_FILE).write_text(
        (req.out / MODES_FILE).read_text().replace('"gold_doc_rank": 1', '"gold_doc_rank": 2')
    )
    before = (req.out / MODES_FILE).read_text()
    built.clear()
    evaluate(req, cache_dir=tmp_path, pipeline_for=factory, progress=False)
    assert built == [] and (req.out / MODES_FILE).read_text() == before


def test_the_runs_search_with_the_requested_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown search mode: fuzzy"):
        request(tmp_path, "bad", mode="fuzzy")
    modes: list[str] = []

    def spying(adapter: bool):
        pipeline = make_pipeline()
        search = pipeline.retriever.search  # type: ignore[union-attr]

        def recorded(query: str, **options):
            modes.append(options["mode"])
            return search(query, **options)

        pipeline.retriever.search = recorded  # type: ignore[union-attr,method-assign]
        return pipeline

    req = request(tmp_path, "keyword", mode="keyword", variants=("rag",))
    evaluate(req, cache_dir=tmp_path, pipeline_for=spying, progress=False)
    assert ResultsFile(req.out).config()["mode"] == "keyword"
    answered = len(ITEMS)  # one search per question for the run (the rest: the mode comparison)
    assert modes.count("keyword") == answered + sum(1 for item in ITEMS if item.doc_ids)
    assert modes.count("dense") == modes.count("hybrid") == modes.count("keyword") - answered
    # Another mode is another configuration: it does not mix into these rows.
    with pytest.raises(ConfigError, match="mode: 'keyword' -> 'hybrid'"):
        evaluate(
            request(tmp_path, "keyword", variants=("rag",)),
            cache_dir=tmp_path,
            pipeline_for=lambda a: make_pipeline(),
            progress=False,
        )
