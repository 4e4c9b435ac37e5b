"""Metrics against hand-checked cases and, for EM/F1, against the official SQuAD v1.1 script."""

from __future__ import annotations

import random
import re
import string
from collections import Counter

import numpy as np
import pytest

from eval.metrics import (
    AnswerEvaluator,
    CitationEvaluator,
    CostEvaluator,
    RefusalEvaluator,
    RetrievalEvaluator,
    contains_answer,
    exact_match_score,
    f1_score,
    max_over_ground_truths,
    normalize_answer,
    percentile,
    score_answer,
)


# The official SQuAD v1.1 evaluation functions, verbatim (evaluate-v1.1.py), as the reference.
def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Quick, Brown fox!", "quick brown fox"),
        ("an apple a day", "apple day"),
        ("Theater and Anna", "theater and anna"),  # articles only as whole words
        ("U.S.A.", "usa"),
        ("rock-n-roll", "rocknroll"),  # punctuation is deleted, not replaced by a space
        ("  tabs\tand\nnewlines  ", "tabs and newlines"),
        ("THE", ""),
        ("a.b", "ab"),  # "a" is glued to "b" once the dot goes, so it is no article
        ("¿Qué?", "¿qué"),  # only ASCII punctuation is removed, as in the official script
    ],
)
def test_normalization_edge_cases(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected
    assert official_normalize_answer(text) == expected


def test_hand_checked_scores() -> None:
    assert exact_match_score("the Eiffel Tower", "Eiffel tower.") == 1.0
    assert exact_match_score("Eiffel", "Eiffel Tower") == 0.0
    # "cat sat on mat" vs "cat on mat": 3 common, P = 3/4, R = 1, F1 = 6/7.
    assert f1_score("the cat sat on the mat", "cat on mat") == pytest.approx(6 / 7)
    # Repeated tokens count once per gold occurrence: P = 2/3, R = 1.
    assert f1_score("x x y", "x y") == pytest.approx(0.8)
    assert f1_score("", "Paris") == 0.0
    # The v1.1 letter: golds that normalize to nothing give EM 1 but F1 0 for an empty guess.
    assert exact_match_score("a", "the") == 1.0
    assert f1_score("a", "the") == 0.0


def test_multiple_gold_answers_take_the_best() -> None:
    golds = ["Denver Broncos", "the Broncos"]
    assert max_over_ground_truths(exact_match_score, "Broncos", golds) == 1.0
    # vs "Denver Broncos": P = R = 1/2 -> 0.5; vs "Broncos": P = 1/2, R = 1 -> 2/3.
    assert max_over_ground_truths(f1_score, "Broncos team", golds) == pytest.approx(2 / 3)
    assert max_over_ground_truths(f1_score, "anything", []) == 0.0


def test_agrees_with_the_official_script_on_random_strings() -> None:
    rng = random.Random(7)
    words = ["the", "a", "an", "Paris", "paris,", "1066", "U.S.", "rock-n-roll", "x", "The."]
    for _ in range(500):
        prediction = " ".join(rng.choices(words, k=rng.randint(0, 6)))
        gold = " ".join(rng.choices(words, k=rng.randint(1, 4)))
        assert f1_score(prediction, gold) == pytest.approx(official_f1_score(prediction, gold))
        assert exact_match_score(prediction, gold) == float(
            official_normalize_answer(prediction) == official_normalize_answer(gold)
        )


def test_score_answer_strips_citations_and_handles_refusals() -> None:
    assert score_answer("Paris [1].", ["Paris"]) == (1.0, 1.0)
    assert score_answer("Paris [1, 2] and Lyon [3].", ["Paris and Lyon"]) == (1.0, 1.0)
    assert score_answer("I don't know.", ["Paris"], refused=True) == (0.0, 0.0)
    assert score_answer("I don't know.", [], answerable=False, refused=True) == (1.0, 1.0)
    assert score_answer("Paris.", [], answerable=False, refused=False) == (0.0, 0.0)


def test_contains_answer_is_token_aligned() -> None:
    assert contains_answer("In the year 1066, the Normans came.", ["1066"])
    assert not contains_answer("In 10666 nothing happened.", ["1066"])
    assert contains_answer("THE Eiffel Tower!", ["eiffel tower"])
    assert not contains_answer("anything", ["the"])  # an answer that normalizes to nothing


def test_percentile_matches_numpy() -> None:
    values = [12.0, 3.0, 7.5, 1.0, 40.0, 8.0]
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_evaluators_return_metric_dicts_with_a_primary() -> None:
    answers = AnswerEvaluator()(["Paris [1]", "Lyon"], [["Paris"], ["Marseille"]])
    assert AnswerEvaluator.primary == "f1"
    assert answers == {"em": 0.5, "f1": 0.5, "n": 2.0}

    retrieval = RetrievalEvaluator(ks=(1, 3))([1, 3, None, 2, 1], [True, True, True, True, False])
    assert retrieval["recall@1"] == 0.25 and retrieval["recall@3"] == 0.75
    assert retrieval["mrr"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert retrieval["n"] == 4.0

    refusal = RefusalEvaluator()([True, False, True, False], [False, False, True, True])
    assert refusal["refusal_rate"] == 0.5
    assert refusal["refusal_precision"] == 0.5 and refusal["refusal_recall"] == 0.5
    assert "refusal_precision" not in RefusalEvaluator()([True], [True])

    citation = CitationEvaluator()([True, None, False])
    assert citation["citation_accuracy"] == 0.5 and citation["cited"] == 2.0

    cost = CostEvaluator()([100.0, 200.0, 300.0], [10, 20, 30], [1, 2, 3])
    assert cost["latency_p50_ms"] == 200.0 and cost["prompt_tokens"] == 20.0
