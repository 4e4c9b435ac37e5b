"""One run's figures from its rows of results.jsonl: what the report's tables show for it.

F1 and EM with their intervals (``eval/stats.py``), the comparison with the baseline (computed
with the whole family by ``eval/summary.py``), retrieval recall@k and MRR, refusal, citation and
cost metrics, and the failure attribution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eval.metrics import CitationEvaluator, CostEvaluator, RefusalEvaluator, RetrievalEvaluator
from eval.results import Row
from eval.stats import Comparison, Estimate, mean_interval
from eval.variants import ATTRIBUTIONS, VARIANTS


@dataclass(frozen=True)
class RunSummary:
    run: str
    variant: str
    shots: int
    adapter: bool
    sweep: bool
    n: int
    f1: Estimate
    em: Estimate
    #: The paired F1 difference from the baseline, within the report's family of comparisons.
    diff_f1: Comparison | None
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

    @property
    def oracle(self) -> bool:
        """Whether the run is given the gold passage (an upper bound, not a deployable setting)."""
        variant = VARIANTS.get(self.variant)
        return variant is not None and variant.oracle

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("f1", "em", "diff_f1"):
            value = out[key]
            out[key] = value.to_dict() if value is not None else None
        return out


def summarize_run(name: str, rows: Sequence[Row], diff: Comparison | None) -> RunSummary:
    first = rows[0]
    uses_retrieval = retrieves(first)
    ks = sorted({1, 3, 5, first.k} & set(range(1, first.k + 1)))
    evaluate = RetrievalEvaluator(ks)
    counts = Counter(row.attribution for row in rows)
    variant = VARIANTS.get(first.variant)
    return RunSummary(
        run=name,
        variant=first.variant,
        shots=first.shots,
        adapter=variant.adapter if variant is not None else first.variant.startswith("lora"),
        sweep=first.sweep,
        n=len(rows),
        f1=mean_interval([row.f1 for row in rows]),
        em=mean_interval([row.em for row in rows]),
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


def retrieves(row: Row) -> bool:
    """Whether the row's run retrieved passages (by its variant; by its rows if unknown)."""
    variant = VARIANTS.get(row.variant)
    return variant.retrieval if variant is not None else bool(row.retrieved)


def _mean_or_none(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
