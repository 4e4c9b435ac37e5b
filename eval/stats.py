"""Bootstrap confidence intervals: how sure a difference between two variants is.

Variants answer the same questions, so differences are paired: each resample draws question
indices once and scores both variants on them, which cancels the questions' own difficulty and
gives far tighter intervals than comparing two independent intervals. Seeded, so a report
rebuilt from the same results shows the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A mean with its percentile-bootstrap interval over ``n`` questions."""

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
    """mean(a) - mean(b) over paired items, with a percentile-bootstrap interval."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
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
