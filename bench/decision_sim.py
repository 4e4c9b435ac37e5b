"""How often the fine-tune rule is wrong, by number of questions: the simulation table.

Simulated evaluations on F1-like per-question scores (eval/simulate.py: tie-heavy, bounded,
shaped like the README's SQuAD and bank runs, and a near-zero reader like smollm2), run
through the report's own test, intervals and rule. For each scenario and n:

- A/A: how often the rule says "fine-tune" when there is nothing to find: two variants that
  draw alike; a real gain's answers relabelled at random; two adapter variants at once (the
  multiple-comparison case). The old rule (percentile bootstrap above zero) on the alike draws.
- Coverage: how often the 95% interval holds a known gain of the minimum size, new and old.
- Power: the questions the power calculation asks for (from the true spread, and from a pilot
  evaluation's observed spread as the report computes it), and how often a gain of exactly the
  minimum is then found (significant) and called "fine-tune" (about half: it is the break-even).

    PYTHONPATH=. python bench/decision_sim.py                 # the note's table (minutes)
    PYTHONPATH=. python bench/decision_sim.py --reps 100      # a quick look

Prints figures, never pass/fail; seeded, so a rerun prints the same table.
"""

from __future__ import annotations

import argparse
from typing import Any

from eval.recommend import MIN_GAIN
from eval.simulate import (
    SCENARIOS,
    bootstrap_interval,
    decision_rates,
    interval_rates,
    planned_rates,
)
from eval.stats import PERMUTATIONS, questions_needed

SIZES = (6, 20, 60, 200)
PILOTS = (6, 20, 60)


def row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated evaluations per cell")
    parser.add_argument("--resamples", type=int, default=PERMUTATIONS, help="sign patterns")
    parser.add_argument("--min-gain", type=float, default=MIN_GAIN)
    args = parser.parse_args()
    reps, gain, resamples = args.reps, args.min_gain, args.resamples
    pct = "{:.1%}".format
    print(f"{reps} simulated evaluations per cell; minimum gain {gain}; {resamples} sign patterns")
    print("\nFalse 'fine-tune' under A/A, and coverage of a known gain of the minimum size:\n")
    print(
        row(
            [
                "scenario",
                "n",
                "A/A alike",
                "A/A relabelled",
                "A/A, 2 adapters",
                "old rule, A/A alike",
                "coverage",
                "old coverage",
            ]
        )
    )
    print(row(["---"] * 8))
    for scenario in SCENARIOS:
        # Relabel a gain the scenario can hold: the sign-flip null is symmetric whatever it was.
        shuffled = 2 * gain if scenario.name == "squad-like" else gain
        for n in SIZES:
            alike = decision_rates(scenario, n, gain=0.0, reps=reps, resamples=resamples, seed=n)
            relabelled = decision_rates(
                scenario, n, gain=shuffled, reps=reps, relabel=True, resamples=resamples, seed=n
            )
            family = decision_rates(
                scenario, n, gain=0.0, reps=reps, adapters=2, resamples=resamples, seed=n
            )
            # The old rule on the same draws as "A/A alike": its interval above zero.
            _, old_false = interval_rates(
                scenario, n, gain=0.0, reps=reps, seed=n, interval=bootstrap_interval
            )
            held, _ = interval_rates(scenario, n, gain=gain, reps=reps, seed=n)
            old_held, _ = interval_rates(
                scenario, n, gain=gain, reps=reps, seed=n, interval=bootstrap_interval
            )
            print(
                row(
                    [
                        scenario.name,
                        n,
                        pct(alike.finetune),
                        pct(relabelled.finetune),
                        pct(family.finetune),
                        pct(old_false),
                        pct(held),
                        pct(old_held),
                    ]
                )
            )
    print(f"\nA true gain of exactly {gain} at the questions the power calculation asks for:\n")
    print(row(["scenario", "spread from", "questions (median)", "found", "fine-tune"]))
    print(row(["---"] * 5))
    for scenario in SCENARIOS:
        n = questions_needed(scenario.spread(gain), gain, alpha=0.05)
        truth = decision_rates(scenario, n, gain=gain, reps=reps, resamples=resamples, seed=1)
        print(row([scenario.name, "the truth", n, pct(truth.found), pct(truth.finetune)]))
        for pilot in PILOTS:
            planned = planned_rates(scenario, pilot, gain=gain, reps=reps, resamples=resamples)
            print(
                row(
                    [
                        scenario.name,
                        f"a {pilot}-question pilot",
                        planned.questions,
                        pct(planned.found),
                        pct(planned.finetune),
                    ]
                )
            )


if __name__ == "__main__":
    main()
