"""Which search mode finds the gold documents: hybrid, dense and keyword on the same questions.

Retrieval alone (no generation), so it costs seconds and answers the question a retrieval miss
raises: would another mode have found the passage? For each evaluated question with gold
documents and each mode, ``search_modes.jsonl`` in the output folder holds the rank of the first
gold document in the top ``MAX_K`` (null: not there), searched with the pipeline's relevance
floor, as the answering code searches. The report compares each mode with the one the runs used
at the runs' k, paired question by question, with the statistics of the fine-tune decision
(`eval/stats.py`: a sign-flip test, Holm over the other modes, bound-padded intervals).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.qa import QAItem
from eval.stats import Comparison, Estimate, compare_paired, mean_interval
from eval.variants import is_gold_doc
from rag.retrieve import SEARCH_MODES, parse_mode

if TYPE_CHECKING:
    from rag.pipeline import Pipeline

MAX_K = 10
MODES_FILE = "search_modes.jsonl"


def measured(out: Path, items: Sequence[QAItem]) -> bool:
    """Whether ``out`` already holds every mode for every question with gold documents."""
    wanted = {(item.id, mode) for item in items if item.doc_ids for mode in SEARCH_MODES}
    return wanted <= {(row["qid"], row["mode"]) for row in read_modes(out)}


def measure_modes(pipeline: Pipeline, items: Sequence[QAItem], out: Path) -> Path | None:
    """Search every question with gold documents in every mode; None without retrieval or gold."""
    retriever = pipeline.retriever
    known = [item for item in items if item.doc_ids]
    if retriever is None or not known:
        return None
    rows = []
    for item in known:
        for mode in SEARCH_MODES:
            hits = retriever.search(
                item.question, k=MAX_K, mode=parse_mode(mode), min_score=pipeline.min_score
            )
            rank = next(
                (i for i, hit in enumerate(hits, 1) if is_gold_doc(hit.chunk, item.doc_ids)), None
            )
            rows.append({"qid": item.id, "mode": mode, "gold_doc_rank": rank})
    path = out / MODES_FILE
    partial = path.with_suffix(".jsonl.tmp")
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    os.replace(partial, path)
    return path


def read_modes(out: Path) -> list[dict[str, Any]]:
    path = out / MODES_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass(frozen=True)
class ModeRecall:
    """Recall of the gold document for one mode, and its paired difference from the used one."""

    mode: str
    #: The runs' k, at which modes are compared.
    k: int
    #: (k, share of questions with a gold document in the top k) for k = 1, 3, 5, 10.
    recall: list[tuple[int, Estimate]]
    #: Recall at the runs' k, and its paired difference from the mode the runs used (None for
    #: that one), Holm-corrected over the other modes.
    at_k: Estimate
    diff: Comparison | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "k": self.k,
            "recall": [{"k": k, **e.to_dict()} for k, e in self.recall],
            "at_k": self.at_k.to_dict(),
            "diff": self.diff.to_dict() if self.diff is not None else None,
        }


def summarize_modes(
    rows: Sequence[dict[str, Any]], *, used: str, k: int, seed: int = 0
) -> list[ModeRecall]:
    """Per mode, recall@k with its interval; the used mode first. Empty without rows."""
    ranks: dict[str, dict[str, int | None]] = {}
    for row in rows:
        ranks.setdefault(row["mode"], {})[row["qid"]] = row["gold_doc_rank"]
    if used not in ranks:
        return []
    qids = sorted(set.intersection(*(set(by_qid) for by_qid in ranks.values())))

    def found(mode: str, at: int) -> list[float]:
        return [1.0 if (r := ranks[mode][q]) is not None and r <= at else 0.0 for q in qids]

    known = SEARCH_MODES
    modes = sorted(ranks, key=lambda m: (m != used, known.index(m) if m in known else 9))
    diffs = compare_paired(
        {mode: (found(mode, k), found(used, k)) for mode in modes if mode != used}, seed=seed
    )
    return [
        ModeRecall(
            mode,
            k,
            [(at, mean_interval(found(mode, at))) for at in sorted({1, 3, 5, MAX_K})],
            mean_interval(found(mode, k)),
            diffs.get(mode),
        )
        for mode in modes
    ]


def mode_verdict(modes: Sequence[ModeRecall]) -> str | None:
    """A checkable rule: switch modes only when another one finds significantly more.

    ``modes`` as ``summarize_modes`` returns them: the mode the runs used first.
    """
    if len(modes) < 2:
        return None
    base = modes[0]
    used, k = base.mode, base.k
    better = [
        m
        for m in modes[1:]
        if m.diff is not None and m.diff.significant and m.diff.difference.value > 0
    ]
    if not better:
        return (
            f"Rule: no search mode puts a gold document in the top {k} significantly more often "
            f"than {used}, which does for {base.at_k.format()} of questions: keep --mode {used}."
        )
    best = max(better, key=lambda m: m.at_k.value)
    assert best.diff is not None
    return (
        f"Rule: {best.mode} search puts a gold document in the top {k} for {best.at_k.format()} "
        f"of questions, {used} (used here) for {base.at_k.format()}: "
        f"{best.diff.difference.format(signed=True)}, significantly better: rerun with "
        f"`rag eval --mode {best.mode}` to confirm, then answer with it (`rag ask --mode "
        f'{best.mode}`, "mode": "{best.mode}" in API requests).'
    )
