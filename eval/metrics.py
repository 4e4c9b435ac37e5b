"""Answer, retrieval, refusal, citation and cost metrics.

Exact match and F1 follow the official SQuAD v1.1 evaluation script to the letter (lowercase,
drop punctuation, drop the articles a/an/the, collapse whitespace; the best score over the gold
answers), so our numbers compare with published ones. Evaluators are callables: plain inputs in,
a dict of metrics out, and a ``primary`` name for the one figure a report leads with.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from rag.citations import strip_markers

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD v1.1 normalization: lower, remove punctuation, articles, extra spaces."""

    def remove_articles(s: str) -> str:
        return _ARTICLES.sub(" ", s)

    def white_space_fix(s: str) -> str:
        return " ".join(s.split())

    def remove_punc(s: str) -> str:
        return "".join(ch for ch in s if ch not in _PUNCTUATION)

    return white_space_fix(remove_articles(remove_punc(text.lower())))


def strip_citations(text: str) -> str:
    """The answer without its ``[n]`` markers: they cite sources, they are not the answer."""
    return strip_markers(text)


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def max_over_ground_truths(
    metric: Callable[[str, str], float], prediction: str, ground_truths: Sequence[str]
) -> float:
    """The best score against any gold answer (0.0 when there is none)."""
    return max((metric(prediction, truth) for truth in ground_truths), default=0.0)


def score_answer(
    prediction: str, answers: Sequence[str], *, answerable: bool = True, refused: bool = False
) -> tuple[float, float]:
    """(EM, F1) of one answer, citation markers removed.

    An unanswerable question scores 1.0 on both when the model refused and 0.0 otherwise (the
    SQuAD 2.0 convention: an empty prediction matches an empty gold). A refusal of an answerable
    question scores 0.0.
    """
    if not answerable:
        return (1.0, 1.0) if refused else (0.0, 0.0)
    if refused:
        return 0.0, 0.0
    text = strip_citations(prediction)
    return (
        max_over_ground_truths(exact_match_score, text, answers),
        max_over_ground_truths(f1_score, text, answers),
    )


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """Whether ``text`` holds a gold answer, both normalized (token-aligned, not substring)."""
    haystack = f" {normalize_answer(text)} "
    return any(
        normalized and f" {normalized} " in haystack
        for normalized in (normalize_answer(answer) for answer in answers)
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


class AnswerEvaluator:
    """EM and F1 (0..1) over predictions and their gold answers; primary ``f1``."""

    primary = "f1"

    def __call__(
        self,
        predictions: Sequence[str],
        golds: Sequence[Sequence[str]],
        answerable: Sequence[bool] | None = None,
        refused: Sequence[bool] | None = None,
    ) -> dict[str, float]:
        if len(predictions) != len(golds):
            raise ValueError(f"{len(predictions)} predictions for {len(golds)} gold answer sets")
        flags = answerable or [True] * len(golds)
        refusals = refused or [False] * len(golds)
        scores = [
            score_answer(p, g, answerable=a, refused=r)
            for p, g, a, r in zip(predictions, golds, flags, refusals, strict=True)
        ]
        return {
            "em": _mean([em for em, _ in scores]),
            "f1": _mean([f1 for _, f1 in scores]),
            "n": float(len(scores)),
        }


class RetrievalEvaluator:
    """Recall@k and MRR from the 1-based rank of the first gold hit (None: not retrieved).

    Questions without gold documents are left out (their rank is unknowable), so ``n`` says how
    many questions the figures rest on.
    """

    primary = "mrr"

    def __init__(self, ks: Sequence[int] = (1, 3, 5)) -> None:
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be positive, got {list(ks)}")
        self.ks = tuple(sorted(set(ks)))

    def __call__(self, gold_ranks: Sequence[int | None], known: Sequence[bool]) -> dict[str, float]:
        ranks = [rank for rank, ok in zip(gold_ranks, known, strict=True) if ok]
        out = {
            f"recall@{k}": _mean([float(r is not None and r <= k) for r in ranks]) for k in self.ks
        }
        out["mrr"] = _mean([1.0 / r if r is not None else 0.0 for r in ranks])
        out["n"] = float(len(ranks))
        return out


class RefusalEvaluator:
    """Refusal rate; precision and recall of refusing when unanswerable questions exist."""

    primary = "refusal_rate"

    def __call__(self, refused: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float]:
        pairs = list(zip(refused, answerable, strict=True))
        out = {"refusal_rate": _mean([float(r) for r, _ in pairs]), "n": float(len(pairs))}
        unanswerable = sum(1 for _, a in pairs if not a)
        if unanswerable:
            hits = sum(1 for r, a in pairs if r and not a)
            refusals = sum(1 for r, _ in pairs if r)
            out["refusal_precision"] = hits / refusals if refusals else math.nan
            out["refusal_recall"] = hits / unanswerable
            out["unanswerable"] = float(unanswerable)
        return out


class CitationEvaluator:
    """Share of answers with citations whose cited passages hold a gold answer.

    ``correct`` is None for answers that cite nothing (or questions without gold answers); they
    are not counted, and ``cited`` says how many were.
    """

    primary = "citation_accuracy"

    def __call__(self, correct: Sequence[bool | None]) -> dict[str, float]:
        judged = [c for c in correct if c is not None]
        return {
            "citation_accuracy": _mean([float(c) for c in judged]),
            "cited": float(len(judged)),
            "n": float(len(correct)),
        }


class CostEvaluator:
    """Latency p50/p95 (ms) and tokens per question."""

    primary = "latency_p50_ms"

    def __call__(
        self,
        total_ms: Sequence[float],
        prompt_tokens: Sequence[int],
        completion_tokens: Sequence[int],
    ) -> dict[str, float]:
        return {
            "latency_p50_ms": percentile(total_ms, 50),
            "latency_p95_ms": percentile(total_ms, 95),
            "prompt_tokens": _mean([float(t) for t in prompt_tokens]),
            "completion_tokens": _mean([float(t) for t in completion_tokens]),
            "n": float(len(total_ms)),
        }
