"""Intervals, paired tests and sample sizes that hold at small n.

Variants answer the same questions, so a comparison is paired: it works on the per-question
differences, which cancels each question's own difficulty. Per-question F1 is bounded and
tie-heavy (mostly 0 or 1, and two variants often score a question alike), which breaks the
usual small-n tools: six tied questions make every resampling interval a single point. So:

- The test is an exact sign-flip permutation test on the differences: under "no difference" each
  question's two answers are exchangeable, so each difference is as likely negated. Exact
  enumeration up to ``EXACT_LIMIT`` non-zero differences, seeded Monte Carlo above.
- Intervals are t-intervals over the values plus one pseudo-observation at each end of the scale
  (Agresti-Coull's "add a success and a failure"; Bonett-Price for paired proportions). At six
  questions that is honest width instead of a point; at a few hundred it is the plain t-interval.
  Coverage is checked by simulation (``eval/simulate.py``, ``bench/decision_sim.py``): percentile
  and BCa bootstraps cover a known gain 34-70% of the time at n = 6 on F1-like data, this >= 93%.
- A family of comparisons with one baseline is corrected with Holm's step-down; its intervals are
  simultaneous (Bonferroni: each at 1 - alpha/m).
- ``questions_needed`` is the paired test's power calculation from the observed spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALPHA = 0.05
POWER = 0.8
#: Sign-flip tests enumerate all 2**k sign patterns up to this many non-zero differences.
EXACT_LIMIT = 24
#: Monte Carlo sign patterns above it (p-value error ~0.002 at p = 0.05).
PERMUTATIONS = 10_000


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval over ``n`` questions."""

    value: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (meaningful for a difference)."""
        return self.n > 0 and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "confidence": self.confidence,
            "significant": self.significant,
        }

    def format(self, signed: bool = False, digits: int = 2) -> str:
        """``0.71 [0.66, 0.76] (n=200)``; signed for differences: ``+0.02 [-0.03, 0.07]``."""
        if self.n == 0 or math.isnan(self.value):
            return "n/a (n=0)"
        sign = "+" if signed else ""
        return (
            f"{self.value:{sign}.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] "
            f"(n={self.n})"
        )


def mean_interval(
    values: Sequence[float], *, bounds: tuple[float, float] = (0.0, 1.0), confidence: float = 0.95
) -> Estimate:
    """The mean of ``values`` (each within ``bounds``) with a bound-padded t-interval."""
    import numpy as np

    _check_confidence(confidence)
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, confidence)
    low_end, high_end = bounds
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    padded = np.concatenate([data, [low_end, high_end]])
    center = float(padded.mean())
    half = _t(0.5 + confidence / 2, n + 1) * _spread(padded) / math.sqrt(n + 2)
    return Estimate(mean, max(low_end, center - half), min(high_end, center + half), n, confidence)


def padded_spread(differences: Sequence[float], bound: float = 1.0) -> float:
    """The standard deviation of ``differences`` padded with -bound and +bound, as the interval
    uses it: never zero, so six tied questions do not plan for zero more."""
    import numpy as np

    return _spread(np.concatenate([np.asarray(differences, dtype=np.float64), [-bound, bound]]))


def sign_flip_p(
    differences: Sequence[float], *, seed: int = 0, resamples: int = PERMUTATIONS
) -> float:
    """Two-sided p-value of the paired sign-flip test on the mean difference."""
    import numpy as np

    data = np.asarray(differences, dtype=np.float64)
    data = data[data != 0.0]  # a tie reads the same under either sign
    observed = abs(float(data.sum()))
    # Sums of the same values in another order differ in the last bits.
    tolerance = 1e-9 * max(1.0, float(np.abs(data).sum()))
    if observed <= tolerance:
        return 1.0
    if len(data) <= EXACT_LIMIT:
        return _exact_tail(data, observed - tolerance)
    rng = np.random.default_rng(seed)
    total, extreme, done = float(data.sum()), 0, 0
    step = max(1, 2_000_000 // len(data))  # bounds memory at ~16 MB
    while done < resamples:
        size = min(step, resamples - done)
        flipped = rng.integers(0, 2, size=(size, len(data)), dtype=np.int8) @ data
        extreme += int(np.count_nonzero(np.abs(total - 2 * flipped) >= observed - tolerance))
        done += size
    return (extreme + 1) / (resamples + 1)


def _exact_tail(data: Any, threshold: float) -> float:
    """P(|sum of randomly signed data| >= threshold) over all 2**k patterns, meeting in the
    middle: the sums of each half's 2**(k/2) patterns, one half sorted and searched."""
    import numpy as np

    def sums(part: Any) -> Any:
        out = np.zeros(1)
        for value in part:
            out = np.concatenate([out + value, out - value])
        return out

    half = len(data) // 2
    left, right = sums(data[:half]), np.sort(sums(data[half:]))
    above = len(right) - np.searchsorted(right, threshold - left, side="left")
    below = np.searchsorted(right, -threshold - left, side="right")
    return float((above.sum() + below.sum()) / 2.0 ** len(data))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (compare each with alpha), in the input's order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def questions_needed(spread: float, gain: float, *, alpha: float, power: float = POWER) -> int:
    """Paired questions for a two-sided level-``alpha`` test to detect a mean difference of
    ``gain`` with probability ``power``, given the differences' standard deviation ``spread``
    (t quantiles, iterated to their degrees of freedom)."""
    if gain <= 0 or spread <= 0:
        raise ValueError(f"need gain > 0 and spread > 0, got gain={gain} spread={spread}")
    from scipy.stats import norm

    n = ((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * spread / gain) ** 2
    for _ in range(50):
        df = max(n - 1, 1.0)
        updated = ((_t(1 - alpha / 2, df) + _t(power, df)) * spread / gain) ** 2
        if abs(updated - n) < 0.01:
            break
        n = updated
    return max(2, math.ceil(n))


def questions_to_narrow(spread: float, width: float, *, confidence: float) -> int:
    """Paired questions at which the interval's full width is about ``width``: narrower, it
    cannot hold both zero and a gain of ``width``."""
    from scipy.stats import norm

    _check_confidence(confidence)
    return max(2, math.ceil((2 * norm.ppf(0.5 + confidence / 2) * spread / width) ** 2))


@dataclass(frozen=True)
class Comparison:
    """One variant against the baseline, within a family corrected together."""

    #: The paired mean difference, its interval simultaneous over the family.
    difference: Estimate
    #: The sign-flip test's p-value, alone and Holm-adjusted over the family.
    p_value: float
    p_holm: float
    #: Comparisons in the family.
    family: int
    #: The level Holm's step-down tests this comparison at, given the others' p-values.
    alpha_step: float
    #: Standard deviation of the per-question differences (padded, as the interval uses it).
    spread: float
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        return self.p_holm < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.difference.to_dict(),
            "significant": self.significant,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "comparisons": self.family,
            "alpha_step": self.alpha_step,
            "spread": self.spread,
        }


def compare_paired(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    bounds: tuple[float, float] = (0.0, 1.0),
    alpha: float = ALPHA,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
) -> dict[str, Comparison]:
    """Each named (variant, baseline) pair of per-question scores, corrected together."""
    differences = {}
    for name, (a, b) in pairs.items():
        if len(a) != len(b):
            raise ValueError(f"paired samples of {name} differ in length: {len(a)} vs {len(b)}")
        differences[name] = [x - y for x, y in zip(a, b, strict=True)]
    names = [name for name in differences if differences[name]]
    family = len(names)
    raw = [sign_flip_p(differences[name], seed=seed, resamples=resamples) for name in names]
    adjusted = holm(raw)
    ranks = {index: rank for rank, index in enumerate(sorted(range(family), key=raw.__getitem__))}
    width = bounds[1] - bounds[0]
    out = {}
    for index, name in enumerate(names):
        out[name] = Comparison(
            difference=mean_interval(
                differences[name], bounds=(-width, width), confidence=1 - alpha / family
            ),
            p_value=raw[index],
            p_holm=adjusted[index],
            family=family,
            alpha_step=alpha / (family - ranks[index]),
            spread=padded_spread(differences[name], width),
            alpha=alpha,
        )
    return out


def bootstrap_mean(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Estimate:
    """The mean of ``values`` with a percentile-bootstrap interval."""
    return paired_bootstrap(
        values, [0.0] * len(values), resamples=resamples, seed=seed, confidence=confidence
    )


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """mean(a) - mean(b) over paired items, with a percentile-bootstrap interval (too narrow
    at small n: see the module docstring)."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    _check_confidence(confidence)
    n = len(a)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, confidence)
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    # Chunks bound memory at ~8 MB whatever the number of questions.
    step = max(1, 1_000_000 // n)
    for start in range(0, resamples, step):
        stop = min(resamples, start + step)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = differences[indices].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(differences.mean()), float(low), float(high), n, confidence)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _spread(values: Any) -> float:
    return float(values.std(ddof=1))


def _t(quantile: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(quantile, df))
