"""The paired test, intervals, Holm and the power calculation, checked against first principles."""

from __future__ import annotations

import itertools
import random

import pytest

from eval import stats
from eval.stats import (
    Estimate,
    bootstrap_mean,
    compare_paired,
    holm,
    mean_interval,
    paired_bootstrap,
    questions_needed,
    sign_flip_p,
)


def scores(seed: int, n: int, p: float) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < p) for _ in range(n)]


def brute_force_p(differences: list[float]) -> float:
    """Every sign pattern of the non-zero differences, counted one by one."""
    values = [d for d in differences if d != 0]
    observed = abs(sum(values))
    patterns = list(itertools.product((1, -1), repeat=len(values)))
    sums = [abs(sum(s * v for s, v in zip(p, values, strict=True))) for p in patterns]
    extreme = sum(total >= observed - 1e-9 for total in sums)
    return extreme / len(patterns)


@pytest.mark.parametrize("seed", range(6))
def test_exact_sign_flip_matches_enumeration(seed: int) -> None:
    rng = random.Random(seed)
    # F1-like differences: ties (0), whole answers (+-1) and partial credit, repeated values.
    pool = [0.0, 0.0, 0.0, 1.0, -1.0, 0.5, -0.5, 2 / 3, -1 / 3, 0.25]
    differences = [rng.choice(pool) for _ in range(rng.randint(1, 14))]
    assert sign_flip_p(differences) == pytest.approx(brute_force_p(differences))


def test_sign_flip_at_six_questions() -> None:
    # Six questions all better: the most extreme of 64 sign patterns, both tails: 2/64.
    assert sign_flip_p([1.0] * 6) == pytest.approx(2 / 64)
    # Five better by a little, one tie: the case, 2/32 > 0.05 even before Holm.
    assert sign_flip_p([0.01, 0.02, 0.03, 0.05, 0.19, 0.0]) == pytest.approx(2 / 32)
    assert sign_flip_p([0.0] * 6) == 1.0
    assert sign_flip_p([]) == 1.0
    assert sign_flip_p([0.5, -0.5]) == 1.0


def test_monte_carlo_is_seeded_and_agrees_with_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    differences = [rng.choice([1.0, -1.0, 0.5, 0.0, 1.0]) for _ in range(20)]
    exact = sign_flip_p(differences)
    monkeypatch.setattr(stats, "EXACT_LIMIT", 5)
    sampled = sign_flip_p(differences, seed=3, resamples=20_000)
    assert sampled == sign_flip_p(differences, seed=3, resamples=20_000)
    assert sampled != sign_flip_p(differences, seed=4, resamples=20_000)
    assert sampled == pytest.approx(exact, abs=0.01)
    assert sign_flip_p([1.0] * 40, resamples=999) == pytest.approx(1 / 1000)  # never below 1/(B+1)


def test_holm_adjusts_step_down_and_keeps_order() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.2]) == [0.2]
    assert holm([0.6, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_questions_needed_matches_the_paired_t_test_tables() -> None:
    # Standardized effect 0.5, 0.2 and 0.8, two-sided 5%, 80% power: 34, 199 and 15 pairs
    # (Cohen's tables; G*Power gives the same).
    assert questions_needed(1.0, 0.5, alpha=0.05) == 34
    assert questions_needed(1.0, 0.2, alpha=0.05) == 199
    assert questions_needed(0.4, 0.32, alpha=0.05) == 15
    assert questions_needed(1.0, 0.5, alpha=0.01) > 34  # a stricter level needs more
    with pytest.raises(ValueError, match="gain > 0"):
        questions_needed(0.4, 0.0, alpha=0.05)


def test_interval_is_honest_at_six_tied_questions() -> None:
    # Six ties: every resampling interval is the single point 0; this one is not.
    tied = mean_interval([0.0] * 6, bounds=(-1.0, 1.0))
    assert tied.value == 0.0 and tied.low < -0.3 and tied.high > 0.3
    assert paired_bootstrap([0.0] * 6, [0.0] * 6).high == 0.0
    zero = mean_interval([0.0] * 6)
    assert zero.low == 0.0 and 0.3 < zero.high < 0.5  # within the scale, not a point
    perfect = mean_interval([1.0] * 6)
    assert perfect.value == 1.0 and perfect.high == 1.0 and perfect.low > 0.5


def test_interval_approaches_the_t_interval_at_large_n() -> None:
    values = scores(3, 400, 0.3)
    padded = mean_interval(values)
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    half = 1.966 * sd / len(values) ** 0.5  # t quantile at 399 degrees of freedom
    assert padded.value == pytest.approx(mean)
    assert padded.low == pytest.approx(mean - half, abs=0.003)
    assert padded.high == pytest.approx(mean + half, abs=0.003)
    assert mean_interval([]).format() == "n/a (n=0)"


def test_compare_paired_corrects_the_family_together() -> None:
    base = [0.0] * 30 + [1.0] * 30
    clear = [1.0] * 60
    same = list(base)
    out = compare_paired({"clear": (clear, base), "same": (same, base)}, seed=0)
    assert set(out) == {"clear", "same"}
    assert out["clear"].family == 2 and out["clear"].difference.confidence == pytest.approx(0.975)
    assert out["clear"].p_holm == pytest.approx(min(1.0, 2 * out["clear"].p_value))
    assert out["clear"].significant and out["clear"].difference.value == pytest.approx(0.5)
    assert out["clear"].alpha_step == pytest.approx(0.025)  # the smallest p is tested first
    assert out["same"].alpha_step == pytest.approx(0.05)
    assert not out["same"].significant and out["same"].p_value == 1.0
    assert out["same"].spread > 0  # padded: a plan never rests on zero spread
    assert compare_paired({"empty": ([], [])}) == {}
    with pytest.raises(ValueError, match="differ in length"):
        compare_paired({"bad": ([1.0], [1.0, 0.0])})


def test_bootstrap_stays_deterministic_for_the_search_modes() -> None:
    a, b = scores(1, 80, 0.6), scores(2, 80, 0.5)
    first = paired_bootstrap(a, b, seed=3)
    assert paired_bootstrap(a, b, seed=3) == first
    assert paired_bootstrap(a, b, seed=4) != first
    assert first.low <= first.value <= first.high and first.n == 80
    estimate = bootstrap_mean([0.0, 1.0, 1.0, 1.0], seed=0)
    assert estimate.value == 0.75 and 0.0 <= estimate.low <= 0.75 <= estimate.high <= 1.0
    assert Estimate(0.02, -0.03, 0.07, 200).format(signed=True) == "+0.02 [-0.03, 0.07] (n=200)"
    assert bootstrap_mean([], seed=0).format() == "n/a (n=0)"
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1.0], [1.0, 0.0])
