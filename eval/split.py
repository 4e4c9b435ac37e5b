"""Train/test splits by question, and the leakage check that guards them.

A fine-tune evaluated on questions it was trained on measures memory, not skill. The split puts
every copy of a question (same normalized text) on one side, and the leakage check finds test
questions whose near-duplicates sit in the training data: normalized-token Jaccard similarity
at or over a threshold, and optionally embedding cosine similarity. Jaccard pairs are found with
prefix filtering, so a 10,000 x 2,000 check runs in a second rather than comparing every pair.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval.metrics import normalize_answer
from eval.qa import QAItem
from rag.errors import ConfigError, InputError

if TYPE_CHECKING:
    from rag.embed import Embedder


class LeakageError(InputError):
    """Test questions (or near-duplicates of them) are in the training data."""


@dataclass(frozen=True)
class Leak:
    test_id: str
    train_id: str
    similarity: float
    method: str  # "jaccard" or "embedding"


@dataclass(frozen=True)
class Split:
    train: list[QAItem]
    test: list[QAItem]
    #: Training items dropped because they near-duplicated a test question.
    dropped: list[Leak]


def question_tokens(question: str) -> frozenset[str]:
    """The question's tokens after SQuAD normalization (case, punctuation, articles)."""
    return frozenset(normalize_answer(question).split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def find_leaks(
    train: Sequence[QAItem],
    test: Sequence[QAItem],
    *,
    threshold: float = 0.8,
    embedder: Embedder | None = None,
    embedding_threshold: float = 0.95,
) -> list[Leak]:
    """Every (test, train) pair whose questions are near-duplicates, most similar first."""
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"leakage threshold must be in (0, 1], got {threshold}")
    leaks = _jaccard_leaks(train, test, threshold)
    if embedder is not None and train and test:
        seen = {(leak.test_id, leak.train_id) for leak in leaks}
        train_vectors = embedder.embed([item.question for item in train])
        test_vectors = embedder.embed([item.question for item in test])
        similarity = test_vectors @ train_vectors.T
        for i, j in zip(*(similarity >= embedding_threshold).nonzero(), strict=True):
            key = (test[int(i)].id, train[int(j)].id)
            if key not in seen:
                leaks.append(Leak(key[0], key[1], float(similarity[i, j]), "embedding"))
    return sorted(leaks, key=lambda leak: (-leak.similarity, leak.test_id, leak.train_id))


def check_no_leakage(
    train: Sequence[QAItem],
    test: Sequence[QAItem],
    *,
    threshold: float = 0.8,
    embedder: Embedder | None = None,
) -> None:
    """Raise LeakageError naming the first leaks, or return quietly when the sets are clean."""
    leaks = find_leaks(train, test, threshold=threshold, embedder=embedder)
    if not leaks:
        return
    questions = {item.id: item.question for item in (*train, *test)}
    shown = "; ".join(
        f"test {leak.test_id} {questions[leak.test_id]!r} ~ train {leak.train_id} "
        f"{questions[leak.train_id]!r} ({leak.method} {leak.similarity:.2f})"
        for leak in leaks[:3]
    )
    raise LeakageError(
        f"{len(leaks)} test question(s) leak into the training data: {shown}. Remove them from "
        "the training file, or split one QA set with `rag finetune --test-fraction F`."
    )


def split_by_question(
    items: Sequence[QAItem], *, test_fraction: float = 0.5, seed: int = 0, threshold: float = 0.8
) -> Split:
    """Split so that no question (nor a near-duplicate of one) is on both sides.

    Copies of one normalized question form a group that goes to one side; training items that
    still near-duplicate a test question afterwards are dropped from the training side.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test fraction must be in (0, 1), got {test_fraction}")
    groups: dict[str, list[QAItem]] = defaultdict(list)
    for item in items:
        groups[" ".join(sorted(question_tokens(item.question)))].append(item)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    cut = max(1, round(len(keys) * test_fraction)) if len(keys) > 1 else len(keys)
    test_keys = set(keys[:cut])
    order = {item.id: i for i, item in enumerate(items)}
    test = sorted((i for k in test_keys for i in groups[k]), key=lambda it: order[it.id])
    train = sorted(
        (i for k in keys if k not in test_keys for i in groups[k]), key=lambda it: order[it.id]
    )
    leaks = _jaccard_leaks(train, test, threshold)
    leaked = {leak.train_id for leak in leaks}
    return Split(train=[it for it in train if it.id not in leaked], test=test, dropped=leaks)


def _jaccard_leaks(train: Sequence[QAItem], test: Sequence[QAItem], threshold: float) -> list[Leak]:
    """Prefix filtering: two sets with Jaccard >= t share a token among each one's rarest
    ``|s| - ceil(t * |s|) + 1`` tokens, so only pairs sharing such a token are compared."""
    train_sets = [question_tokens(item.question) for item in train]
    test_sets = [question_tokens(item.question) for item in test]
    frequency = Counter(token for s in (*train_sets, *test_sets) for token in s)

    def prefix(tokens: frozenset[str]) -> list[str]:
        ordered = sorted(tokens, key=lambda token: (frequency[token], token))
        return ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]

    by_token: dict[str, list[int]] = defaultdict(list)
    for j, tokens in enumerate(train_sets):
        for token in prefix(tokens):
            by_token[token].append(j)
    leaks: list[Leak] = []
    for i, tokens in enumerate(test_sets):
        candidates = {j for token in prefix(tokens) for j in by_token.get(token, ())}
        if not tokens:
            candidates = {j for j, s in enumerate(train_sets) if not s}
        for j in sorted(candidates):
            similarity = jaccard(tokens, train_sets[j])
            if similarity >= threshold:
                leaks.append(Leak(test[i].id, train[j].id, similarity, "jaccard"))
    return leaks
