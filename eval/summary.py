"""From results.jsonl rows to the report's figures, and the recommendation as a checkable rule.

Every figure here is computed from the rows; nothing is typed in. Each run gets its F1/EM with a
bootstrap interval, its paired difference from the baseline (``rag-few-shot``) on the questions
both answered, retrieval recall@k and MRR, refusal, citation and cost metrics and the failure
attribution. The recommendation names the numbers it rests on, so a reader can check it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eval.costs import CostLine
from eval.metrics import (
    CitationEvaluator,
    CostEvaluator,
    RefusalEvaluator,
    RetrievalEvaluator,
)
from eval.recommend import recommend
from eval.results import Row
from eval.search_modes import ModeRecall
from eval.stats import Estimate, bootstrap_mean, paired_bootstrap
from eval.variants import ATTRIBUTIONS, BASELINE, VARIANTS


@dataclass
class RunSummary:
    run: str
    variant: str
    shots: int
    adapter: bool
    sweep: bool
    n: int
    f1: Estimate
    em: Estimate
    diff_f1: Estimate | None
    retrieval: dict[str, float] | None
    passage_retrieval: dict[str, float] | None
    refusal: dict[str, float]
    citation: dict[str, float]
    cost: dict[str, float]
    attribution: dict[str, int]
    #: Share of answers matching the original (pre-swap) answer: answered from memory.
    memory_rate: float | None = None
    #: Share of predictions containing a gold answer (lenient accuracy for wordy models).
    contains_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("f1", "em", "diff_f1"):
            value = out[key]
            out[key] = value.to_dict() if value is not None else None
        return out


@dataclass
class Summary:
    runs: list[RunSummary]
    #: (shots, F1 estimate) for retrieval runs without adapter or oracle, by shots.
    sweep: list[tuple[int, Estimate]]
    #: (k, recall, n) of the gold document, and of a passage holding the answer.
    recall_curve: list[tuple[int, float, int]]
    passage_recall_curve: list[tuple[int, float, int]]
    recommendation: list[str]
    target: float | None = None
    costs: list[CostLine] = field(default_factory=list)
    #: The throughput and price the costs assume, in words.
    cost_basis: str = ""
    #: Gold-document recall of each search mode, the one the runs used first.
    search_modes: list[ModeRecall] = field(default_factory=list)

    def get(self, run: str) -> RunSummary | None:
        return next((r for r in self.runs if r.run == run), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": BASELINE,
            "target_f1": self.target,
            "runs": [r.to_dict() for r in self.runs],
            "sweep": [{"shots": s, "f1": e.to_dict()} for s, e in self.sweep],
            "recall_curve": [{"k": k, "recall": v, "n": n} for k, v, n in self.recall_curve],
            "passage_recall_curve": [
                {"k": k, "recall": v, "n": n} for k, v, n in self.passage_recall_curve
            ],
            "recommendation": self.recommendation,
            "costs": [c.to_dict() for c in self.costs],
            "cost_basis": self.cost_basis,
            "search_modes": [m.to_dict() for m in self.search_modes],
        }


def summarize(
    rows: Sequence[Row],
    *,
    target: float | None = None,
    costs: Sequence[CostLine] = (),
    cost_basis: str = "",
    seed: int = 0,
    resamples: int = 2000,
    search_modes: Sequence[ModeRecall] = (),
) -> Summary:
    by_run: dict[str, list[Row]] = {}
    for row in rows:
        by_run.setdefault(row.run, []).append(row)
    baseline = {row.qid: row.f1 for row in by_run.get(BASELINE, [])}
    runs = [_summarize_run(name, rs, baseline, seed, resamples) for name, rs in by_run.items()]
    runs.sort(key=lambda r: (r.sweep, _order(r.variant), r.shots))
    retrieval_rows = _retrieval_rows(by_run)
    summary = Summary(
        runs=runs,
        sweep=_sweep(by_run, seed, resamples),
        recall_curve=_curve(retrieval_rows, "gold_doc_rank", lambda r: r.gold_known),
        passage_recall_curve=_curve(retrieval_rows, "gold_passage_rank", lambda r: r.answerable),
        recommendation=[],
        target=target,
        costs=list(costs),
        cost_basis=cost_basis,
        search_modes=list(search_modes),
    )
    summary.recommendation = recommend(summary)
    return summary


def _summarize_run(
    name: str, rows: list[Row], baseline: dict[str, float], seed: int, resamples: int
) -> RunSummary:
    first = rows[0]
    paired = [(row.f1, baseline[row.qid]) for row in rows if row.qid in baseline]
    diff = None
    if first.run != BASELINE and paired:
        diff = paired_bootstrap(
            [a for a, _ in paired], [b for _, b in paired], seed=seed, resamples=resamples
        )
    uses_retrieval = _retrieves(first)
    ks = sorted({1, 3, 5, first.k} & set(range(1, first.k + 1)))
    evaluate = RetrievalEvaluator(ks)
    counts = Counter(row.attribution for row in rows)
    return RunSummary(
        run=name,
        variant=first.variant,
        shots=first.shots,
        adapter=first.variant.startswith("lora"),
        sweep=first.sweep,
        n=len(rows),
        f1=bootstrap_mean([row.f1 for row in rows], seed=seed, resamples=resamples),
        em=bootstrap_mean([row.em for row in rows], seed=seed, resamples=resamples),
        diff_f1=diff,
        retrieval=(
            evaluate([r.gold_doc_rank for r in rows], [r.gold_known for r in rows])
            if uses_retrieval and any(r.gold_known for r in rows)
            else None
        ),
        passage_retrieval=(
            evaluate([r.gold_passage_rank for r in rows], [r.answerable for r in rows])
            if uses_retrieval
            else None
        ),
        refusal=RefusalEvaluator()([r.refused for r in rows], [r.answerable for r in rows]),
        citation=CitationEvaluator()([r.citation_correct for r in rows]),
        cost=CostEvaluator()(
            [r.total_ms for r in rows],
            [r.prompt_tokens for r in rows],
            [r.completion_tokens for r in rows],
        ),
        attribution={a: counts.get(a, 0) for a in ATTRIBUTIONS},
        memory_rate=_mean_or_none([r.memory_em for r in rows if r.memory_em is not None]),
        contains_rate=sum(r.contains_answer for r in rows) / len(rows),
    )


def _mean_or_none(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _order(variant: str) -> int:
    names = list(VARIANTS)
    return names.index(variant) if variant in names else len(names)


def _retrieval_rows(by_run: dict[str, list[Row]]) -> list[Row]:
    """Rows of one run with plain retrieval (every retrieval run retrieves the same)."""
    for name in (BASELINE, "rag", *sorted(by_run)):
        rows = by_run.get(name, [])
        if rows and _retrieves(rows[0]) and not rows[0].variant.startswith("lora"):
            return rows
    return []


def _retrieves(row: Row) -> bool:
    variant = VARIANTS.get(row.variant)
    return variant.retrieval if variant is not None else bool(row.retrieved)


def _curve(rows: Sequence[Row], field_name: str, known: Any) -> list[tuple[int, float, int]]:
    scored = [getattr(row, field_name) for row in rows if known(row)]
    if not scored:
        return []
    k_max = max(row.k for row in rows)
    return [
        (k, sum(1 for r in scored if r is not None and r <= k) / len(scored), len(scored))
        for k in range(1, k_max + 1)
    ]


def _sweep(by_run: dict[str, list[Row]], seed: int, resamples: int) -> list[tuple[int, Estimate]]:
    points: dict[int, list[Row]] = {}
    for rows in by_run.values():
        first = rows[0]
        if first.variant in ("rag", BASELINE):
            points.setdefault(first.shots, rows)
    return [
        (shots, bootstrap_mean([r.f1 for r in points[shots]], seed=seed, resamples=resamples))
        for shots in sorted(points)
    ]
