"""The reviewer's checks on a generated pair: each one fails what it should, and only that."""

from __future__ import annotations

import pytest

from eval.qa_filters import (
    DuplicateGuard,
    FilterSettings,
    check_pair,
    judge_says_no,
    parse_pair,
    parse_question,
    quoted_run,
)
from rag.errors import ConfigError

PASSAGE = (
    "Unused products can be returned within 45 days of delivery for a full refund. "
    "Return shipping is free for orders above 60 euros."
)
SETTINGS = FilterSettings()


def test_a_pair_is_read_from_its_two_lines_and_nothing_after() -> None:
    reply = 'Question: How long is the return window?\nAnswer: "45 days."\n\nQuestion: more'
    assert parse_pair(reply) == ("How long is the return window?", "45 days")
    assert parse_pair("**Question:** What? \n**Answer:** 45 days") == ("What?", "45 days")
    # An answer line left empty does not borrow the next line.
    assert parse_pair("Question: How long?\nAnswer:\n## Return window") is None
    assert parse_pair("Question: How long?") is None
    assert parse_pair("Question: How long?\nAnswer: ...") is None  # nothing left to score
    assert parse_question("Question: What does a gift card cost?") == "What does a gift card cost?"
    assert parse_question("I cannot think of one.") is None


@pytest.mark.parametrize(
    ("question", "answer", "failed"),
    [
        ("How many days do I have to return a product?", "45 days", None),
        ("How many days do I have to return a product?", "45 Days.", None),  # normalized
        (
            "How long is the return window?",
            "within 45 days of delivery for a full refund as the policy says so",
            "short_answer",
        ),
        ("How long is the return window?", "30 days", "answer_in_passage"),
        ("Can unused products be returned?", "Yes.", "not_yes_no"),
        ("How long is the window described above?", "45 days", "standalone"),
        ("What sets this tier apart?", "60 euros", "standalone"),
        ("How long is the return window?", "45 day", "answer_in_passage"),  # token-aligned
        ("Is the return window 45 days long?", "45 days", "answer_not_in_question"),
        (
            "Can unused products be returned within 45 days of delivery for a full refund or how?",
            "full refund",
            "answer_not_in_question",
        ),
        (
            "Is it true that unused products can be returned within 45 days of delivery for a "
            "full refund?",
            "60 euros",
            "not_quoted",
        ),
    ],
)
def test_each_cheap_check_fails_what_it_should(
    question: str, answer: str, failed: str | None
) -> None:
    assert check_pair(question, answer, PASSAGE, SETTINGS) == failed


def test_quoted_run_counts_consecutive_normalized_words() -> None:
    assert quoted_run("Which products can be returned within the window?", PASSAGE) == 5
    assert (
        quoted_run("What is a gift card?", PASSAGE) == 1
    )  # "is" is not in it; "a" normalizes away
    assert quoted_run("", PASSAGE) == 0


def test_near_duplicates_by_question_tokens() -> None:
    guard = DuplicateGuard(0.8, ["How long is the return window?"])
    assert guard.is_duplicate("how long is THE return window")
    assert not guard.is_duplicate("How much does return shipping cost?")
    guard.add("How much does return shipping cost?")
    assert guard.is_duplicate("How much does return shipping cost")


def test_only_a_no_confirms_an_unanswerable_question() -> None:
    assert judge_says_no("NO")
    assert judge_says_no("No, they do not.")
    assert not judge_says_no("YES")
    assert not judge_says_no("The passages do not say")  # unclear is not a confirmation
    assert not judge_says_no("")


def test_thresholds_are_checked() -> None:
    with pytest.raises(ConfigError, match="round_trip_f1 must be in"):
        FilterSettings(round_trip_f1=0.0)
    with pytest.raises(ConfigError, match="max_unanswerable_score is a cosine"):
        FilterSettings(max_unanswerable_score=2.0)
    with pytest.raises(ConfigError, match="max_quoted_words >= 2"):
        FilterSettings(max_quoted_words=1)
