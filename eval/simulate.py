"""F1-like paired scores with a known gain, to check the decision rule by simulation.

Per-question F1 is mostly 0 or 1 with some partial credit, and two variants often score a
question alike (the same answer, or the same miss). A ``Scenario`` draws the baseline's score
from such a distribution; the variant keeps the baseline's score with probability
``agreement`` and otherwise draws its own from the distribution shifted so that the mean
difference is exactly ``gain``. ``relabel`` swaps each question's two scores at random: an A/A
comparison (no difference by construction) with the scenario's spread.

The tests (tests/eval/test_eval_decision_sim.py) assert on these rates; ``bench/decision_sim.py``
prints them as a table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eval.recommend import MIN_GAIN, finetune_decision
from eval.stats import (
    ALPHA,
    PERMUTATIONS,
    Estimate,
    compare_paired,
    mean_interval,
    padded_spread,
    paired_bootstrap,
    questions_needed,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The baseline's mean F1.
    mean: float
    #: Share of answers with partial credit (F1 strictly between 0 and 1).
    partial: float
    #: Probability that the variant scores a question exactly as the baseline does.
    agreement: float
    #: Mean partial credit: Beta(2, 2) at 1/2; lower for wordy answers that share a word or two.
    partial_mean: float = 0.5

    @property
    def _beta(self) -> tuple[float, float]:
        return 2.0, 2.0 * (1.0 - self.partial_mean) / self.partial_mean

    def shares(self, mean: float) -> tuple[float, float]:
        """(share of F1 = 0, share of F1 = 1) for a distribution with this ``mean``."""
        one = mean - self.partial * self.partial_mean
        zero = 1.0 - self.partial - one
        if one < 0 or zero < 0:
            raise ValueError(f"{self.name}: no F1-like distribution with mean {mean:.3f}")
        return zero, one

    def variant_mean(self, gain: float) -> float:
        """The mean of the variant's own draws that makes the mean difference ``gain``."""
        return self.mean + gain / (1.0 - self.agreement)

    def spread(self, gain: float) -> float:
        """The standard deviation of the per-question differences, exactly."""
        shifted = self.variant_mean(gain)
        variances = [self._second_moment(m) - m * m for m in (self.mean, shifted)]
        square = (1 - self.agreement) * (sum(variances) + (shifted - self.mean) ** 2)
        return math.sqrt(square - gain * gain)

    def _second_moment(self, mean: float) -> float:
        a, b = self._beta
        return self.shares(mean)[1] + self.partial * a * (a + 1) / ((a + b) * (a + b + 1))

    def draw(self, rng: Any, n: int, gain: float = 0.0) -> tuple[Any, Any]:
        """(baseline, variant) per-question F1 for ``n`` questions."""
        base = self._scores(rng, n, self.mean)
        return base, self.variant_of(rng, base, gain)

    def variant_of(self, rng: Any, base: Any, gain: float) -> Any:
        """A variant's per-question F1 against the baseline's ``base``."""
        own = self._scores(rng, len(base), self.variant_mean(gain))
        same = rng.random(len(base)) < self.agreement
        return base * same + own * ~same

    def _scores(self, rng: Any, n: int, mean: float) -> Any:
        zero, one = self.shares(mean)
        u = rng.random(n)
        partial = rng.beta(*self._beta, size=n)
        return (u >= zero) * ((u < zero + one) * 1.0 + (u >= zero + one) * partial)


SCENARIOS = (
    # Shaped like the README's measurements: SQuAD F1 ~0.3, the bank FAQ ~0.55.
    Scenario("squad-like", mean=0.32, partial=0.2, agreement=0.6),
    Scenario("bank-like", mean=0.55, partial=0.3, agreement=0.8),
    # A weak reader: almost every answer 0, so almost every difference a tie.
    Scenario("near-zero", mean=0.06, partial=0.08, agreement=0.8),
    # A weak wordy reader (smollm2): long answers sharing a word or two with the gold one, so
    # small partial credit everywhere and few exact ties: the six-question case.
    Scenario("wordy", mean=0.1, partial=0.8, agreement=0.2, partial_mean=0.12),
)


def draws(
    scenario: Scenario, n: int, *, gain: float, reps: int, relabel: bool = False, seed: int = 0
) -> Iterator[tuple[Any, Any]]:
    """``reps`` seeded (baseline, variant) samples of ``n`` questions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(reps):
        base, variant = scenario.draw(rng, n, gain)
        if relabel:
            swap = rng.random(n) < 0.5
            base, variant = np.where(swap, variant, base), np.where(swap, base, variant)
        yield base, variant


def padded_interval(differences: Any) -> Estimate:
    """The report's interval for a paired difference (95%, one comparison)."""
    return mean_interval(differences, bounds=(-1.0, 1.0))


def bootstrap_interval(differences: Any) -> Estimate:
    """The interval the old rule used: a percentile bootstrap of the mean difference."""
    return paired_bootstrap(list(differences), [0.0] * len(differences))


def interval_rates(
    scenario: Scenario,
    n: int,
    *,
    gain: float,
    reps: int,
    seed: int = 0,
    interval: Callable[[Any], Estimate] = padded_interval,
) -> tuple[float, float]:
    """(share of intervals holding the true ``gain``, share lying wholly above zero). With
    ``gain=0`` the second is how often a rule "interval above zero: fine-tune" errs."""
    held = above = 0
    for base, variant in draws(scenario, n, gain=gain, reps=reps, seed=seed):
        estimate = interval(variant - base)
        held += estimate.low <= gain <= estimate.high
        above += estimate.low > 0
    return held / reps, above / reps


@dataclass(frozen=True)
class Rates:
    """How often the fine-tune rule said what, over ``reps`` simulated evaluations."""

    reps: int
    finetune: float
    #: A significant gain, after Holm over the adapters compared: the gain was found.
    found: float
    undecided: float
    #: The median number of questions evaluated (for ``planned_rates``: the plans' median).
    questions: int = 0


def decision_rates(
    scenario: Scenario,
    n: int,
    *,
    gain: float,
    reps: int,
    adapters: int = 1,
    relabel: bool = False,
    min_gain: float = MIN_GAIN,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
) -> Rates:
    """The rule's verdicts when ``adapters`` variants (each with ``gain``) meet the baseline.

    Several adapters are the multiple-comparison case: each draws its own answers against the
    same baseline, and Holm corrects them together (``relabel`` is for one pair only)."""
    if relabel and adapters != 1:
        raise ValueError("relabelling swaps one pair's scores: use gain=0 for an A/A family")
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    tally = _Tally()
    for rep, (base, variant) in enumerate(
        draws(scenario, n, gain=gain, reps=reps, relabel=relabel, seed=seed)
    ):
        others = [scenario.variant_of(rng, base, gain) for _ in range(adapters - 1)]
        tally.add([variant, *others], base, min_gain, seed=rep, resamples=resamples)
    return tally.rates([n])


def planned_rates(
    scenario: Scenario,
    pilot: int,
    *,
    gain: float = MIN_GAIN,
    reps: int,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
) -> Rates:
    """The report's promise checked end to end: from a ``pilot`` evaluation's observed spread,
    the questions the report would ask for (to settle a gain of ``gain``); then a fresh
    evaluation of that many questions with a true gain of ``gain``, one per pilot."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tally, planned = _Tally(), []
    for rep in range(reps):
        base, variant = scenario.draw(rng, pilot, gain)
        n = questions_needed(padded_spread(variant - base), gain, alpha=ALPHA)
        base, variant = scenario.draw(rng, n, gain)
        tally.add([variant], base, gain, seed=rep, resamples=resamples)
        planned.append(n)
    return tally.rates(planned)


class _Tally:
    def __init__(self) -> None:
        self.counts = {"fine-tune": 0, "found": 0, "undecided": 0}
        self.reps = 0

    def add(
        self, variants: list[Any], base: Any, min_gain: float, *, seed: int, resamples: int
    ) -> None:
        pairs = {f"adapter-{i}": (v, base) for i, v in enumerate(variants)}
        comparisons = compare_paired(pairs, seed=seed, resamples=resamples)
        decision = finetune_decision(comparisons, min_gain)
        self.reps += 1
        self.counts["fine-tune"] += decision.verdict == "fine-tune"
        self.counts["undecided"] += decision.verdict == "undecided"
        self.counts["found"] += any(
            c.significant and c.difference.value > 0 for c in comparisons.values()
        )

    def rates(self, questions: list[int]) -> Rates:
        return Rates(
            reps=self.reps,
            finetune=self.counts["fine-tune"] / self.reps,
            found=self.counts["found"] / self.reps,
            undecided=self.counts["undecided"] / self.reps,
            questions=sorted(questions)[len(questions) // 2],
        )
