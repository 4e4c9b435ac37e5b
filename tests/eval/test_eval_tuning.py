"""The recommended settings: the fine-tune rule applied to the k and demonstrations sweeps and
to the search modes, written to settings.json, and read back as an index's defaults."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from eval.evaluate import EvalRequest, evaluate
from eval.qa import write_qa_jsonl
from eval.results import Row
from eval.search_modes import summarize_modes
from eval.tuning import apply_settings, choose_settings
from rag.errors import ConfigError
from rag.settings import AnswerDefaults, answer_defaults
from tests.eval.eval_fakes import ITEMS, make_pipeline


def run(name: str, variant: str, shots: int, k: int, f1s: Sequence[float]) -> list[Row]:
    return [
        Row(
            qid=f"q{i}",
            run=name,
            variant=variant,
            shots=shots,
            k=k,
            question="?",
            answers=["a"],
            answerable=True,
            prediction="a",
            refused=False,
            em=f1,
            f1=f1,
            correct=f1 > 0.5,
            attribution="correct",
            gold_in_context=True,
            gold_known=False,
            gold_doc_rank=None,
            gold_passage_rank=None,
            sweep=name != variant,
        )
        for i, f1 in enumerate(f1s)
    ]


def runs(base: Sequence[float], k3: Sequence[float], shots5: Sequence[float]) -> dict:
    return {
        "rag-few-shot": run("rag-few-shot", "rag-few-shot", 2, 5, base),
        "rag": run("rag", "rag", 0, 5, base),
        "rag-few-shot@k3": run("rag-few-shot@k3", "rag-few-shot", 2, 3, k3),
        "rag@5shot": run("rag@5shot", "rag-few-shot", 5, 5, shots5),
        # Not a setting of the product: never a candidate.
        "oracle": run("oracle", "oracle", 2, 5, [1.0] * len(base)),
        "lora-rag": run("lora-rag", "lora-rag", 2, 5, [1.0] * len(base)),
    }


def test_a_significantly_better_k_replaces_the_default() -> None:
    n = 30
    settings = choose_settings(runs([0.2] * n, [0.9] * n, [0.2] * n), mode="hybrid", min_gain=0.05)
    assert settings is not None
    assert settings.values() == {"k": 3, "shots": 2, "mode": "hybrid"}
    k = settings.get("k")
    assert k.changed and k.candidate == "rag-few-shot@k3" and k.decision is not None
    assert k.decision.comparison is not None and k.decision.comparison.family == 3
    lines = settings.lines()
    assert lines[0].startswith("Recommended settings: k=3, shots=2, mode=hybrid")
    assert lines[1].startswith("- k (passages): 3 instead of 5: rag-few-shot@k3 (k=3) F1 +0.70")
    # Identical scores: the padded interval still holds the minimum gain at n=30.
    assert (
        lines[2].startswith("- demonstrations: keep 2; the best other") and "undecided" in lines[2]
    )


def test_the_default_stays_when_nothing_is_better_by_the_minimum_gain() -> None:
    n = 200
    tiny = [0.5] * n
    slightly = [0.52] * n  # significant (every question +0.02) but below --min-gain 0.05
    settings = choose_settings(runs(tiny, slightly, tiny), mode="hybrid", min_gain=0.05)
    assert settings is not None and not any(c.changed for c in settings.choices)
    k = settings.get("k")
    assert k.decision is not None and k.decision.verdict == "not worth it"
    assert settings.get("mode").decision is None  # no search modes measured
    assert (
        settings.get("mode").line() == "- search mode: keep hybrid (no other value was measured)."
    )


def test_an_undecided_point_keeps_the_default_and_says_what_would_settle_it() -> None:
    base = [0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    better = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    settings = choose_settings(runs(base, better, base), mode="hybrid", min_gain=0.05)
    assert settings is not None
    k = settings.get("k")
    assert not k.changed and k.decision is not None and k.decision.verdict == "undecided"
    assert "is undecided: about" in k.line() and "more questions would settle" in k.line()


def test_the_search_mode_follows_the_rule_on_recall() -> None:
    n = 40
    found = [
        {"qid": f"q{i}", "mode": mode, "gold_doc_rank": rank}
        for i in range(n)
        for mode, rank in (("hybrid", None if i % 2 else 2), ("dense", None), ("keyword", 1))
    ]
    modes = summarize_modes(found, used="hybrid", k=3)
    settings = choose_settings(
        runs([0.5] * n, [0.5] * n, [0.5] * n), mode="hybrid", search_modes=modes, min_gain=0.05
    )
    assert settings is not None and settings.values()["mode"] == "keyword"
    assert "gold-document recall" in settings.get("mode").line()
    assert choose_settings({}, mode="hybrid", min_gain=0.05) is None


def test_eval_writes_settings_and_the_index_takes_them(tmp_path: Path) -> None:
    write_qa_jsonl(ITEMS, tmp_path / "qa.jsonl")
    index = tmp_path / "index"
    index.mkdir()
    request = EvalRequest(
        qa=str(tmp_path / "qa.jsonl"),
        index=index,
        model="scripted",
        out=tmp_path / "report",
        variants=("rag", "rag-few-shot"),
        sweep=(0, 1),
        k_sweep=(1, 2),
        k=3,
        shots=1,
        demos_from_qa=0,
    )
    summary = evaluate(
        request, cache_dir=tmp_path, pipeline_for=lambda a: make_pipeline(), progress=False
    )
    report = json.loads((request.out / "report.json").read_text())
    assert [p["k"] for p in report["k_sweep"]] == [1, 2, 3]  # the baseline is k=3's point
    assert [p["shots"] for p in report["sweep"]] == [0, 1]  # at k=3 only
    written = json.loads((request.out / "settings.json").read_text())
    assert summary.settings is not None and written["k"] == summary.settings.values()["k"]
    assert written["source"]["qa"] == request.qa and written["lines"] == summary.settings.lines()
    markdown = (request.out / "report.md").read_text()
    assert "## Recommended settings" in markdown and "## Accuracy vs passages retrieved" in markdown
    assert "F1 vs passages retrieved (k)" in (request.out / "report.html").read_text()

    with pytest.raises(ConfigError, match="is not an index folder"):
        apply_settings(request.out, index)
    (index / "CURRENT").write_text("gen-000001\n")
    stored = apply_settings(request.out, index)
    defaults = answer_defaults(None, index)
    assert stored == index / "settings.json" and defaults.source == stored
    assert (defaults.k, defaults.shots, defaults.mode) == (
        written["k"],
        written["shots"],
        written["mode"],
    )
    assert answer_defaults(None, tmp_path) == AnswerDefaults()  # no settings.json: built-in
