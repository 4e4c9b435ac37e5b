"""Whether a generated QA set leads to the decision a human one does: two decision reports on
the same documents, with the same settings, compared.

Per variant, F1 on each set and their difference (the sets hold different questions, so the
difference is unpaired: its interval combines the two sets' standard errors); the variants'
orderings compared by Kendall's tau-b; the fine-tune verdicts and the recommended settings side
by side. Whether generated questions are systematically easier or harder is measured paired by
variant: each variant's F1 difference is one observation, their mean is the shift, and a
sign-flip test over the variants asks whether it is consistently one way. A constant shift moves
every variant alike, so it changes neither the ordering nor the paired differences the fine-tune
rule reads; the corrected F1 (generated minus the shift) puts the generated figures on the human
set's scale for a reader comparing absolute values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval.stats import Estimate, mean_interval, sign_flip_p

#: The target the issue sets: the same recommendation, and the variants ordered alike.
TAU_TARGET = 0.8


@dataclass(frozen=True)
class VariantPair:
    run: str
    human: Estimate
    generated: Estimate
    #: Generated minus human, with an unpaired 95% interval.
    difference: Estimate


@dataclass(frozen=True)
class Agreement:
    variants: list[VariantPair]
    #: Kendall's tau-b between the variants' F1 on the two sets (None: fewer than two variants).
    tau: float | None
    human_verdict: str
    generated_verdict: str
    human_settings: dict[str, Any]
    generated_settings: dict[str, Any]
    #: The mean over variants of generated minus human F1, its interval over the variants, and
    #: the sign-flip p-value of "no systematic shift".
    shift: Estimate
    shift_p: float

    @property
    def same_verdict(self) -> bool:
        return self.human_verdict == self.generated_verdict

    @property
    def meets_target(self) -> bool:
        return self.same_verdict and self.tau is not None and self.tau >= TAU_TARGET

    def corrected(self, pair: VariantPair) -> float:
        """The generated F1 on the human set's scale: minus the mean shift."""
        return pair.generated.value - self.shift.value

    def lines(self, name: str) -> list[str]:
        """The table and the verdicts, as the validation script prints them."""
        head = f"{'variant':<16}{'human F1':<26}{'generated F1':<26}{'gen - human':<27}corrected"
        out = [f"== {name}", head]
        for pair in self.variants:
            out.append(
                f"{pair.run:<16}{pair.human.format():<26}{pair.generated.format():<26}"
                f"{pair.difference.format(signed=True):<27}{self.corrected(pair):.2f}"
            )
        tau = "n/a" if self.tau is None else f"{self.tau:.2f}"
        out.append(
            f"Kendall tau-b of the variants' F1: {tau} (target >= {TAU_TARGET}); fine-tune "
            f"verdict: human {self.human_verdict!r}, generated {self.generated_verdict!r} "
            f"({'the same' if self.same_verdict else 'DIFFERENT'})."
        )
        direction = "easier" if self.shift.value > 0 else "harder"
        significant = self.shift_p < 0.05
        out.append(
            f"Generated questions are {direction} by {abs(self.shift.value):.2f} F1 on average "
            f"over {self.shift.n} variants ({self.shift.format(signed=True)}, sign-flip p "
            f"{self.shift_p:.3f}: {'systematic' if significant else 'not a consistent shift'}); "
            "the corrected column subtracts it."
        )
        out.append(
            f"Recommended settings: human {self.human_settings}, generated "
            f"{self.generated_settings}."
        )
        out.append(f"Target met: {'yes' if self.meets_target else 'no'}.")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "variants": [
                {
                    "run": p.run,
                    "human": p.human.to_dict(),
                    "generated": p.generated.to_dict(),
                    "difference": p.difference.to_dict(),
                    "corrected": self.corrected(p),
                }
                for p in self.variants
            ],
            "tau": self.tau,
            "human_verdict": self.human_verdict,
            "generated_verdict": self.generated_verdict,
            "same_verdict": self.same_verdict,
            "human_settings": self.human_settings,
            "generated_settings": self.generated_settings,
            "shift": self.shift.to_dict(),
            "shift_p": self.shift_p,
            "meets_target": self.meets_target,
        }


def compare_reports(
    human: dict[str, Any], generated: dict[str, Any], per_question: dict[str, Any]
) -> Agreement:
    """``human`` and ``generated`` are two report.json payloads; ``per_question`` maps
    ``"human"``/``"generated"`` to {run: [F1 per question]} (from results.jsonl), for the
    unpaired intervals."""
    runs = [
        r["run"]
        for r in human["runs"]
        if not r["sweep"] and any(g["run"] == r["run"] for g in generated["runs"])
    ]
    pairs = [
        VariantPair(
            run,
            mean_interval(per_question["human"][run]),
            mean_interval(per_question["generated"][run]),
            unpaired_difference(per_question["generated"][run], per_question["human"][run]),
        )
        for run in runs
    ]
    differences = [p.generated.value - p.human.value for p in pairs]
    return Agreement(
        variants=pairs,
        tau=kendall_tau([p.human.value for p in pairs], [p.generated.value for p in pairs]),
        human_verdict=str(human["decision"]["verdict"]),
        generated_verdict=str(generated["decision"]["verdict"]),
        human_settings=_settings(human),
        generated_settings=_settings(generated),
        shift=mean_interval(differences, bounds=(-1.0, 1.0)),
        shift_p=sign_flip_p(differences),
    )


def _settings(report: dict[str, Any]) -> dict[str, Any]:
    settings = report.get("settings") or {}
    return {key: settings.get(key) for key in ("k", "shots", "mode")}


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties in either ranking counted as scipy counts them)."""
    if len(a) < 2:
        return None
    from scipy.stats import kendalltau

    tau = float(kendalltau(a, b).statistic)
    return None if math.isnan(tau) else tau


def unpaired_difference(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """mean(a) - mean(b) for two independent samples, with a 95% normal interval on the
    combined standard error (bound-padded like `mean_interval`, so it is never a point)."""
    if not a or not b:
        return Estimate(math.nan, math.nan, math.nan, 0)
    import numpy as np

    def padded_variance(values: Sequence[float]) -> float:
        data = np.concatenate([np.asarray(values, dtype=np.float64), [0.0, 1.0]])
        return float(data.var(ddof=1)) / len(data)

    value = float(np.mean(a) - np.mean(b))
    half = 1.96 * math.sqrt(padded_variance(a) + padded_variance(b))
    return Estimate(value, max(-1.0, value - half), min(1.0, value + half), min(len(a), len(b)))
