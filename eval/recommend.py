"""The report's closing recommendation, stated as rules a reader can check against the tables.

The fine-tune rule: an adapter variant must beat the baseline by a gain the sign-flip test finds
significant after Holm's correction over every comparison the recommendation states, and the
gain must reach the minimum worth its cost (``--min-gain``, default 0.05 F1). Four outcomes:

- ``fine-tune``: significant, and the estimate reaches the minimum gain;
- ``not worth it``: significant, but the estimate falls short of it (or it is significantly
  worse);
- ``no worthwhile gain``: not significant, and the interval's upper end is below the minimum;
- ``undecided``: the interval holds both zero and the minimum gain. Then the questions that would
  settle it: the paired test's power calculation (80% to find the minimum gain, at the level
  Holm's step-down gives this comparison) from the observed spread of per-question differences.

What fine-tuning and training from scratch would cost stands beside the gain. When a target F1
is set and nothing reaches it, the recommendation says what would: whether failures are retrieval
or reading misses and what the gold passage (oracle) reaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eval.costs import CostLine
from eval.run_summary import RunSummary
from eval.search_modes import ModeRecall, mode_verdict
from eval.stats import Comparison, questions_needed, questions_to_narrow
from eval.variants import BASELINE

#: The smallest F1 gain (0..1) worth fine-tuning for, unless --min-gain says otherwise.
MIN_GAIN = 0.05

Verdict = Literal["fine-tune", "undecided", "not worth it", "no worthwhile gain", "not tested"]
#: When several adapter variants were run, the first verdict in this order is the report's.
PRECEDENCE: tuple[Verdict, ...] = ("fine-tune", "undecided", "not worth it", "no worthwhile gain")


@dataclass(frozen=True)
class Decision:
    """Whether to fine-tune, and the comparison that decides it."""

    verdict: Verdict
    min_gain: float
    #: The adapter run the verdict rests on (None: no adapter run was compared).
    run: str | None = None
    comparison: Comparison | None = None
    #: Questions in all that would settle a gain of ``min_gain`` (undecided only).
    questions: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.min_gain < 1.0:
            raise ValueError(f"the minimum gain is an F1 difference in (0, 1), got {self.min_gain}")

    @property
    def more_questions(self) -> int | None:
        if self.questions is None or self.comparison is None:
            return None
        return self.questions - self.comparison.difference.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "min_gain": self.min_gain,
            "run": self.run,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "questions": self.questions,
            "more_questions": self.more_questions,
        }


@dataclass(frozen=True)
class Recommendation:
    lines: tuple[str, ...]
    decision: Decision


def decide(run: str, comparison: Comparison, min_gain: float = MIN_GAIN) -> Decision:
    """The fine-tune rule for one adapter run's comparison with the baseline."""
    diff = comparison.difference
    if comparison.significant:
        worth = diff.value >= min_gain
        return Decision("fine-tune" if worth else "not worth it", min_gain, run, comparison)
    if diff.high < min_gain:
        return Decision("no worthwhile gain", min_gain, run, comparison)
    n = diff.n
    questions = questions_needed(comparison.spread, min_gain, alpha=comparison.alpha_step)
    if questions <= n:
        # As many questions as 80% power asks for, and this sample fell between: the number
        # at which the interval is too narrow to hold both zero and the minimum gain.
        questions = max(
            n + 1,
            questions_to_narrow(comparison.spread, min_gain, confidence=diff.confidence),
        )
    return Decision("undecided", min_gain, run, comparison, questions)


def finetune_decision(candidates: Mapping[str, Comparison], min_gain: float = MIN_GAIN) -> Decision:
    """The verdict over every adapter run compared: the first by ``PRECEDENCE``, then the
    larger gain."""
    decisions = [decide(run, comparison, min_gain) for run, comparison in candidates.items()]
    if not decisions:
        return Decision("not tested", min_gain)
    return min(
        decisions,
        key=lambda d: (PRECEDENCE.index(d.verdict), -_gain(d)),
    )


def recommend(
    runs: Sequence[RunSummary],
    *,
    min_gain: float = MIN_GAIN,
    target: float | None = None,
    costs: Sequence[CostLine] = (),
    cost_basis: str = "",
    search_modes: Sequence[ModeRecall] = (),
) -> Recommendation:
    main = [r for r in runs if not r.sweep]
    decision = finetune_decision(
        {r.run: r.diff_f1 for r in main if r.adapter and r.diff_f1 is not None}, min_gain
    )
    base = next((r for r in main if r.run == BASELINE), None)
    if base is None:
        line = (
            f"{BASELINE} was not run, so there is no baseline to compare against: rerun with "
            f"{BASELINE} among --variants."
        )
        return Recommendation((line,), decision)
    lines = [f"{BASELINE} reaches F1 {base.f1.format()}."]
    compared = [r for r in main if r.diff_f1 is not None]
    if compared:
        first = compared[0].diff_f1
        assert first is not None
        lines.append(describe_method(first))
    for run in compared:
        diff = run.diff_f1
        assert diff is not None
        lines.append(
            f"{run.run}: F1 {run.f1.format()}; difference from {BASELINE} "
            f"{diff.difference.format(signed=True)}, {_p(diff)}: {_significance(diff)}."
        )
    lines.append(_finetune_line(decision))
    lines.extend(_cost_lines(decision, costs, cost_basis))
    verdict = mode_verdict(search_modes)
    if verdict is not None:
        lines.append(verdict)
    if target is not None:
        lines.extend(_target_lines(main, base, target))
    return Recommendation(tuple(lines), decision)


def describe_method(comparison: Comparison) -> str:
    """The test and intervals behind ``comparison`` and its family, in one sentence."""
    m = comparison.family
    each = f" (each at {comparison.difference.confidence:.1%})" if m > 1 else ""
    return (
        f"Differences from {BASELINE} are paired by question: p from a sign-flip permutation "
        f"test, Holm-adjusted over the {m} comparison{'s' if m > 1 else ''} below; intervals "
        f"{1 - comparison.alpha:.0%} simultaneous{each}."
    )


def _p(comparison: Comparison) -> str:
    p = comparison.p_holm
    return f"Holm p {'< 0.001' if p < 0.001 else f'{p:.3f}'}"


def _significance(comparison: Comparison) -> str:
    if not comparison.significant:
        return "not significant"
    return "significantly better" if comparison.difference.value > 0 else "significantly worse"


def _gain(decision: Decision) -> float:
    return decision.comparison.difference.value if decision.comparison is not None else 0.0


def _finetune_line(decision: Decision) -> str:
    comparison = decision.comparison
    if comparison is None:
        return (
            "Fine-tuning was not tested: train an adapter with `rag finetune` and rerun "
            "`rag eval --adapter DIR` to see whether it adds anything."
        )
    diff, gain = comparison.difference, f"{decision.min_gain:.2f}"
    if decision.verdict == "fine-tune":
        verdict = f"significant, and at least the minimum gain of {gain}: fine-tune"
    elif decision.verdict == "not worth it" and diff.value < 0:
        verdict = "significantly worse: do not fine-tune"
    elif decision.verdict == "not worth it":
        verdict = f"significant, but below the minimum gain of {gain}: not worth it"
    elif decision.verdict == "no worthwhile gain":
        verdict = f"not significant, and the interval rules out a gain of {gain}: do not fine-tune"
    else:
        verdict = (
            f"undecided: about {decision.more_questions:,} more questions would settle a gain of "
            f"{gain} ({decision.questions:,} in all, from the spread of these {diff.n} "
            "per-question differences)"
        )
    return (
        f"Rule: {decision.run} adds {diff.format(signed=True)} over {BASELINE}, {_p(comparison)} "
        f"(fine-tune for a significant gain of at least {gain}, --min-gain): {verdict}."
    )


def _cost_lines(decision: Decision, costs: Sequence[CostLine], basis: str) -> list[str]:
    if not costs:
        return []
    beside = (
        f"beside {decision.run}'s {decision.comparison.difference.value:+.2f} F1"
        if decision.comparison is not None
        else "for any gain"
    )
    lines = [f"- What training would cost, {beside}, at {basis}:"]
    for line in costs:
        lines.append(
            f"  - {line.what}: 6 x {line.parameters:.3g} parameters x {line.tokens:.3g} "
            f"tokens = {line.flops:.2e} FLOPs, {_amount(line.gpu_hours)} GPU-hours, "
            f"${_amount(line.usd)} ({line.note})"
        )
    return lines


def _target_lines(main: Sequence[RunSummary], base: RunSummary, target: float) -> list[str]:
    deployable = [r for r in main if not r.oracle]
    best = max(deployable, key=lambda r: (r.f1.value, r.run == BASELINE))
    if best.f1.value >= target:
        sure = (
            "its interval's lower end clears the target too"
            if best.f1.low >= target
            else f"but its interval's lower end ({best.f1.low:.2f}) does not: more questions "
            "would settle it"
        )
        return [
            f"Rule: {best.run} reaches the target F1 {target:.2f} with {best.f1.format()}; {sure}."
        ]
    lines = [
        f"Rule: nothing reaches the target F1 {target:.2f}; the best is {best.run} with "
        f"{best.f1.format()}. What would:"
    ]
    counts = base.attribution
    retrieval, reading = counts.get("retrieval miss", 0), counts.get("reading miss", 0)
    lines.append(
        f"- Of {base.n} questions, {BASELINE} answered {retrieval + reading} wrongly: "
        f"{retrieval} retrieval misses (gold passage not in the prompt), {reading} reading "
        f"misses (gold passage in the prompt, answer wrong); {counts.get('refused', 0)} refused."
    )
    oracle = next((r for r in main if r.oracle), None)
    if oracle is not None and oracle.f1.value >= target:
        lines.append(
            f"- With the gold passage (oracle) F1 is {oracle.f1.format()}, at or over the target: "
            "better retrieval alone could get there (another search mode, see the table of "
            "modes; a larger k; smaller chunks)."
        )
    elif oracle is not None:
        lines.append(
            f"- Even with the gold passage (oracle) F1 is only {oracle.f1.format()}: retrieval "
            "alone cannot reach the target; the reader must improve (a larger model, or "
            "`rag finetune --on qa --with-context` to train it on the prompts it reads)."
        )
    elif retrieval > reading:
        lines.append(
            "- Retrieval misses dominate: improve retrieval first (run `oracle` to "
            "confirm the reader can answer with the gold passage)."
        )
    else:
        lines.append("- Reading misses dominate: a larger reader or fine-tuning the reader.")
    return lines


def _amount(value: float) -> str:
    """Two decimals for everyday amounts, significant digits for tiny ones."""
    return f"{value:,.2f}" if value >= 0.1 else f"{value:.2g}"
