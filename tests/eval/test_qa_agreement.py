"""Comparing a generated set's decision report with a human set's."""

from __future__ import annotations

from typing import Any

import pytest

from eval.qa_agreement import TAU_TARGET, compare_reports, kendall_tau, unpaired_difference

RUNS = ("closed-book", "rag", "rag-few-shot", "oracle", "lora-rag")


def report(verdict: str, k: int) -> dict[str, Any]:
    return {
        "runs": [{"run": r, "sweep": False} for r in RUNS] + [{"run": "rag@k1", "sweep": True}],
        "decision": {"verdict": verdict},
        "settings": {"k": k, "shots": 2, "mode": "hybrid", "lines": []},
    }


def scores(means: dict[str, float], n: int = 40) -> dict[str, list[float]]:
    """Per-question F1 with the given means (a share of 1s, the rest 0s)."""
    return {run: [1.0] * round(m * n) + [0.0] * (n - round(m * n)) for run, m in means.items()}


HUMAN = {"closed-book": 0.05, "rag": 0.3, "rag-few-shot": 0.35, "oracle": 0.55, "lora-rag": 0.4}


def test_a_uniformly_easier_set_orders_alike_and_its_shift_is_measured() -> None:
    easier = {run: m + 0.1 for run, m in HUMAN.items()}
    agreement = compare_reports(
        report("undecided", 3),
        report("undecided", 3),
        {"human": scores(HUMAN), "generated": scores(easier)},
    )
    assert [p.run for p in agreement.variants] == list(RUNS)  # sweep points are not compared
    assert agreement.tau == pytest.approx(1.0) and agreement.same_verdict
    assert agreement.meets_target
    assert agreement.shift.value == pytest.approx(0.1, abs=0.01) and agreement.shift.n == 5
    assert agreement.shift_p == pytest.approx(1 / 16)  # five alike signs: 2 of 32 patterns
    corrected = [agreement.corrected(p) for p in agreement.variants]
    assert corrected == pytest.approx([p.human.value for p in agreement.variants], abs=0.02)
    text = "\n".join(agreement.lines("bank"))
    assert "Generated questions are easier by 0.10 F1" in text and "Target met: yes." in text
    assert "human {'k': 3, 'shots': 2, 'mode': 'hybrid'}" in text


def test_a_different_order_or_verdict_misses_the_target() -> None:
    swapped = {**HUMAN, "lora-rag": 0.2, "rag": 0.45}
    agreement = compare_reports(
        report("fine-tune", 3),
        report("undecided", 1),
        {"human": scores(HUMAN), "generated": scores(swapped)},
    )
    assert agreement.tau is not None and agreement.tau < TAU_TARGET
    assert not agreement.same_verdict and not agreement.meets_target
    assert agreement.to_dict()["generated_settings"] == {"k": 1, "shots": 2, "mode": "hybrid"}
    assert "(DIFFERENT)" in "\n".join(agreement.lines("squad"))


def test_tau_and_the_unpaired_interval() -> None:
    assert kendall_tau([0.1, 0.2, 0.3], [0.2, 0.3, 0.9]) == pytest.approx(1.0)
    assert kendall_tau([0.1, 0.2, 0.3], [0.9, 0.3, 0.2]) == pytest.approx(-1.0)
    assert kendall_tau([0.1], [0.2]) is None
    assert kendall_tau([0.1, 0.1], [0.2, 0.2]) is None  # no ordering to compare
    same = unpaired_difference([1.0, 0.0] * 10, [1.0, 0.0] * 10)
    assert same.value == 0.0 and same.low < 0 < same.high
    tied = unpaired_difference([1.0] * 6, [1.0] * 6)  # padded: never a point
    assert tied.low < 0 < tied.high
    assert unpaired_difference([], [1.0]).n == 0
