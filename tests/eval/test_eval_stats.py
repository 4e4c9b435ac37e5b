"""Paired bootstrap: deterministic with a seed, right about clear and null differences."""

from __future__ import annotations

import random

import pytest

from eval.stats import Estimate, bootstrap_mean, paired_bootstrap


def scores(seed: int, n: int, p: float) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for _ in range(n)]


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    a, b = scores(1, 80, 0.6), scores(2, 80, 0.5)
    first = paired_bootstrap(a, b, seed=3)
    assert paired_bootstrap(a, b, seed=3) == first
    assert paired_bootstrap(a, b, seed=4) != first
    assert first.low <= first.value <= first.high
    assert first.n == 80


def test_clear_difference_is_significant_and_null_is_not() -> None:
    better = [1.0] * 40 + [0.0] * 10
    worse = [0.0] * 40 + [0.0] * 10
    clear = paired_bootstrap(better, worse, seed=0)
    assert clear.value == pytest.approx(0.8)
    assert clear.significant and clear.low > 0.6
    same = paired_bootstrap(better, better, seed=0)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    assert not same.significant


def test_pairing_cancels_question_difficulty() -> None:
    # Question difficulty varies a lot; variant A is always 0.05 better on the same question.
    rng = random.Random(0)
    b = [rng.random() * 0.9 for _ in range(60)]
    a = [x + 0.05 for x in b]
    paired = paired_bootstrap(a, b, seed=0)
    unpaired_a, unpaired_b = bootstrap_mean(a, seed=0), bootstrap_mean(b, seed=1)
    assert paired.significant
    assert unpaired_a.low < unpaired_b.high  # the unpaired intervals overlap


def test_mean_interval_and_formatting() -> None:
    estimate = bootstrap_mean([0.0, 1.0, 1.0, 1.0], seed=0)
    assert estimate.value == 0.75 and 0.0 <= estimate.low <= 0.75 <= estimate.high <= 1.0
    assert estimate.format().endswith("(n=4)")
    assert Estimate(0.02, -0.03, 0.07, 200).format(signed=True) == "+0.02 [-0.03, 0.07] (n=200)"
    assert bootstrap_mean([], seed=0).format() == "n/a (n=0)"
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 0.0])
