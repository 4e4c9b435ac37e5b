"""From results.jsonl rows to the report's figures and its recommendation, built complete.

Every figure here is computed from the rows; nothing is typed in. Each run gets its figures
(``eval/run_summary.py``); the deployable runs are compared with the baseline
(``rag-few-shot``) on the questions both answered, as one family corrected together
(``eval/stats.py``); the recommendation (``eval/recommend.py``) is made from those figures and
names the numbers it rests on, so a reader can check it; the recommended settings
(``eval/tuning.py``) come from the sweeps by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eval.costs import CostLine
from eval.recommend import MIN_GAIN, Recommendation, recommend
from eval.results import Row
from eval.run_summary import RunSummary, retrieves, summarize_run
from eval.search_modes import ModeRecall
from eval.stats import PERMUTATIONS, Comparison, Estimate, compare_paired, mean_interval
from eval.tuning import RecommendedSettings, choose_settings
from eval.variants import BASELINE, VARIANTS


@dataclass(frozen=True)
class Summary:
    runs: list[RunSummary]
    #: (shots, F1 estimate) for retrieval runs without adapter or oracle at the baseline's k.
    sweep: list[tuple[int, Estimate]]
    #: (k, F1 estimate) for the same runs at the baseline's demonstrations.
    k_sweep: list[tuple[int, Estimate]]
    #: (k, recall, n) of the gold document, and of a passage holding the answer.
    recall_curve: list[tuple[int, float, int]]
    passage_recall_curve: list[tuple[int, float, int]]
    advice: Recommendation
    target: float | None = None
    min_gain: float = MIN_GAIN
    costs: list[CostLine] = field(default_factory=list)
    #: The throughput and price the costs assume, in words.
    cost_basis: str = ""
    #: Gold-document recall of each search mode, the one the runs used first.
    search_modes: list[ModeRecall] = field(default_factory=list)
    #: k, shots and mode by the decision's rule (None: the baseline was not run).
    settings: RecommendedSettings | None = None

    @property
    def recommendation(self) -> list[str]:
        """The advice's lines, as the CLI prints them and report.json keeps them."""
        return list(self.advice.lines)

    def get(self, run: str) -> RunSummary | None:
        return next((r for r in self.runs if r.run == run), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": BASELINE,
            "target_f1": self.target,
            "min_gain": self.min_gain,
            "runs": [r.to_dict() for r in self.runs],
            "sweep": [{"shots": s, "f1": e.to_dict()} for s, e in self.sweep],
            "k_sweep": [{"k": k, "f1": e.to_dict()} for k, e in self.k_sweep],
            "recall_curve": [{"k": k, "recall": v, "n": n} for k, v, n in self.recall_curve],
            "passage_recall_curve": [
                {"k": k, "recall": v, "n": n} for k, v, n in self.passage_recall_curve
            ],
            "recommendation": self.recommendation,
            "decision": self.advice.decision.to_dict(),
            "costs": [c.to_dict() for c in self.costs],
            "cost_basis": self.cost_basis,
            "search_modes": [m.to_dict() for m in self.search_modes],
            "settings": self.settings.to_dict() if self.settings is not None else None,
        }


def summarize(
    rows: Sequence[Row],
    *,
    min_gain: float = MIN_GAIN,
    target: float | None = None,
    costs: Sequence[CostLine] = (),
    cost_basis: str = "",
    seed: int = 0,
    resamples: int = PERMUTATIONS,
    search_modes: Sequence[ModeRecall] = (),
    mode: str = "hybrid",
) -> Summary:
    by_run: dict[str, list[Row]] = {}
    for row in rows:
        by_run.setdefault(row.run, []).append(row)
    diffs = _compare(by_run, seed, resamples)
    runs = [summarize_run(name, rs, diffs.get(name)) for name, rs in by_run.items()]
    runs.sort(key=lambda r: (r.sweep, _order(r.variant), r.shots))
    retrieval_rows = _retrieval_rows(by_run)
    base = by_run.get(BASELINE)
    return Summary(
        runs=runs,
        sweep=_sweep(by_run, "k", base[0].k) if base else [],
        k_sweep=_sweep(by_run, "shots", base[0].shots) if base else [],
        recall_curve=_curve(retrieval_rows, "gold_doc_rank", lambda r: r.gold_known),
        passage_recall_curve=_curve(retrieval_rows, "gold_passage_rank", lambda r: r.answerable),
        advice=recommend(
            runs,
            min_gain=min_gain,
            target=target,
            costs=costs,
            cost_basis=cost_basis,
            search_modes=search_modes,
        ),
        target=target,
        min_gain=min_gain,
        costs=list(costs),
        cost_basis=cost_basis,
        search_modes=list(search_modes),
        settings=choose_settings(
            by_run,
            mode=mode,
            search_modes=search_modes,
            min_gain=min_gain,
            seed=seed,
            resamples=resamples,
        ),
    )


def _compare(by_run: dict[str, list[Row]], seed: int, resamples: int) -> dict[str, Comparison]:
    """Every requested run against the baseline on the questions both answered, as one family
    (the sweep's extra points are a curve, not comparisons the recommendation states)."""
    baseline = {row.qid: row.f1 for row in by_run.get(BASELINE, [])}
    pairs = {}
    for name, rows in by_run.items():
        if name == BASELINE or rows[0].sweep:
            continue
        paired = [(row.f1, baseline[row.qid]) for row in rows if row.qid in baseline]
        if paired:
            pairs[name] = ([a for a, _ in paired], [b for _, b in paired])
    return compare_paired(pairs, seed=seed, resamples=resamples)


def _order(variant: str) -> int:
    names = list(VARIANTS)
    return names.index(variant) if variant in names else len(names)


def _retrieval_rows(by_run: dict[str, list[Row]]) -> list[Row]:
    """Rows of one run with plain retrieval (every retrieval run retrieves the same)."""
    for name in (BASELINE, "rag", *sorted(by_run)):
        rows = by_run.get(name, [])
        if rows and retrieves(rows[0]) and not rows[0].variant.startswith("lora"):
            return rows
    return []


def _curve(rows: Sequence[Row], field_name: str, known: Any) -> list[tuple[int, float, int]]:
    scored = [getattr(row, field_name) for row in rows if known(row)]
    if not scored:
        return []
    k_max = max(row.k for row in rows)
    return [
        (k, sum(1 for r in scored if r is not None and r <= k) / len(scored), len(scored))
        for k in range(1, k_max + 1)
    ]


def _sweep(by_run: dict[str, list[Row]], fixed: str, value: int) -> list[tuple[int, Estimate]]:
    """F1 of the retrieval runs (no adapter, no oracle) whose ``fixed`` setting ("k" or "shots")
    is the baseline's ``value``, by the other setting."""
    swept = "shots" if fixed == "k" else "k"
    points: dict[int, list[Row]] = {}
    for rows in by_run.values():
        first = rows[0]
        if first.variant in ("rag", BASELINE) and getattr(first, fixed) == value:
            points.setdefault(getattr(first, swept), rows)
    return [(x, mean_interval([r.f1 for r in points[x]])) for x in sorted(points)]
