"""The checks a reviewer makes on a generated question, as plain functions.

A generated (question, answer) pair is kept only when the answer occurs in its passage (the
official SQuAD normalization, token-aligned), is short and not a bare yes or no (a guess scores
half of those), does not appear in the question, the question stands alone (no "this tier", "the
passage above": a user asking the chatbot has no passage in front of them), the
question does not copy a long run of the passage, no kept question near-duplicates it (the
leakage check's token Jaccard), and answering from the passage alone reproduces the answer by
the F1 the evaluation scores with (the round trip, run by `eval/qa_generate.py`). Each check has a
name; a candidate records the first one it failed, so the command can say how many each removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from eval.metrics import contains_answer, normalize_answer
from eval.split import jaccard, question_tokens
from rag.errors import ConfigError

#: The answerable checks in the order they run; ``round_trip`` needs the model.
ANSWERABLE_CHECKS = (
    "parsed",
    "short_answer",
    "not_yes_no",
    "answer_in_passage",
    "answer_not_in_question",
    "standalone",
    "not_quoted",
    "not_duplicate",
    "round_trip",
)
#: The unanswerable checks: far from every passage by retrieval score, and the judge says the
#: retrieved passages do not answer.
UNANSWERABLE_CHECKS = ("parsed", "not_duplicate", "retrieval_score", "judge")

#: What a failed check means, for the command's counts.
FAILURES = {
    "parsed": "not in the Question/Answer format",
    "short_answer": "answer too long",
    "not_yes_no": "a yes/no answer",
    "answer_in_passage": "answer not in the passage",
    "answer_not_in_question": "answer given away in the question",
    "standalone": "question refers to the passage (this ..., above, mentioned)",
    "not_quoted": "question quotes the passage",
    "not_duplicate": "near-duplicate of a kept question",
    "round_trip": "round trip failed (answering from the passage gave another answer)",
    "retrieval_score": "too close to a passage (retrieval score)",
    "judge": "the model did not say the retrieved passages lack the answer",
}

# The label may come in markdown (``**Question:**``); the text is the rest of its line.
_QUESTION = re.compile(r"^\W*question\W*:[ \t*_]*(.+?)[ \t*_]*$", re.IGNORECASE | re.MULTILINE)
_ANSWER = re.compile(r"^\W*answer\W*:[ \t*_]*(.+?)[ \t*_]*$", re.IGNORECASE | re.MULTILINE)
#: Words by which a question points at a passage the asker would not have.
_DEICTIC = re.compile(
    r"\b(this|these|the (passage|text|document|section)|above|below|mentioned|described)\b",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’«»"


@dataclass(frozen=True)
class FilterSettings:
    """The thresholds of the checks."""

    #: Longest answer kept, in words (the scored format is a short span).
    max_answer_words: int = 10
    #: A question copying this many consecutive (normalized) words of its passage is dropped.
    max_quoted_words: int = 10
    #: Question-token Jaccard at or over which two questions are near-duplicates (as the
    #: leakage check's default).
    duplicate_threshold: float = 0.8
    #: F1 at or over which the round trip's answer reproduces the generated one.
    round_trip_f1: float = 0.5
    #: An unanswerable question whose best dense cosine against the corpus reaches this is too
    #: close to something the documents say.
    max_unanswerable_score: float = 0.6

    def __post_init__(self) -> None:
        if self.max_answer_words < 1 or self.max_quoted_words < 2:
            raise ConfigError(
                "need max_answer_words >= 1 and max_quoted_words >= 2, got "
                f"{self.max_answer_words} and {self.max_quoted_words}"
            )
        for name in ("duplicate_threshold", "round_trip_f1"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} must be in (0, 1], got {value}")
        if not -1.0 <= self.max_unanswerable_score <= 1.0:
            raise ConfigError(
                f"max_unanswerable_score is a cosine in [-1, 1], got {self.max_unanswerable_score}"
            )


def parse_pair(text: str) -> tuple[str, str] | None:
    """(question, answer) from a ``Question: ...`` / ``Answer: ...`` reply; None otherwise."""
    question, answer = _QUESTION.search(text), _ANSWER.search(text)
    if question is None or answer is None:
        return None
    q, a = _clean(question.group(1)), _clean(answer.group(1))
    return (q, a) if q and a and normalize_answer(a) else None


def parse_question(text: str) -> str | None:
    """The question of a ``Question: ...`` reply; None otherwise."""
    match = _QUESTION.search(text)
    question = _clean(match.group(1)) if match else ""
    return question or None


def _clean(text: str) -> str:
    """Surrounding quotes and a trailing full stop are the model's, not the passage's."""
    text = text.strip().strip(_QUOTES).strip()
    return text[:-1].rstrip() if text.endswith(".") and not text.endswith("..") else text


def quoted_run(question: str, passage: str) -> int:
    """The longest run of consecutive normalized question words found, in order, in the
    passage."""
    words = normalize_answer(question).split()
    haystack = f" {normalize_answer(passage)} "
    best = 0
    for start in range(len(words)):
        length = best + 1
        while start + length <= len(words) and (
            f" {' '.join(words[start : start + length])} " in haystack
        ):
            best = length
            length += 1
    return best


def check_pair(question: str, answer: str, passage: str, settings: FilterSettings) -> str | None:
    """The first cheap check a (question, answer) pair fails, or None when it passes them."""
    words = normalize_answer(answer).split()
    if len(words) > settings.max_answer_words:
        return "short_answer"
    if words in (["yes"], ["no"]):
        return "not_yes_no"
    if not contains_answer(passage, [answer]):
        return "answer_in_passage"
    if contains_answer(question, [answer]):
        return "answer_not_in_question"
    if _DEICTIC.search(question):
        return "standalone"
    if quoted_run(question, passage) >= settings.max_quoted_words:
        return "not_quoted"
    return None


class DuplicateGuard:
    """The questions kept so far; a new one within the Jaccard threshold of any is a duplicate."""

    def __init__(self, threshold: float, questions: Sequence[str] = ()) -> None:
        self.threshold = threshold
        self._kept = [question_tokens(q) for q in questions]

    def is_duplicate(self, question: str) -> bool:
        tokens = question_tokens(question)
        return any(jaccard(tokens, other) >= self.threshold for other in self._kept)

    def add(self, question: str) -> None:
        self._kept.append(question_tokens(question))


def judge_says_no(reply: str) -> bool:
    """Whether a judge's reply starts with NO: only that confirms a question unanswerable (a
    YES, or a reply that is neither, does not)."""
    words = normalize_answer(reply).split()
    return bool(words) and words[0] == "no"
