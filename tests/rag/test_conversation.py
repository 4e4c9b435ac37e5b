"""Condensing follow-ups: by the model when its rewrite is usable, by rule otherwise."""

from __future__ import annotations

import pytest

from rag.conversation import condense_query, needs_context, rule_condense
from rag.types import Message
from tests.fakes import ScriptedGenerator

HISTORY = [
    Message("user", "What does the Premium plan include?"),
    Message("assistant", "24/7 phone support [1]."),
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("And what does it cost?", True),
        ("How much?", True),
        ("What about the Basic plan?", True),
        ("How many days of annual leave do full-time employees get?", False),
    ],
)
def test_needs_context(question: str, expected: bool) -> None:
    assert needs_context(question) is expected


def test_no_history_or_standalone_questions_pass_unchanged_without_generation() -> None:
    generator = ScriptedGenerator(replies=["should not be used"])
    assert condense_query("And what does it cost?", [], generator) == "And what does it cost?"
    question = "How many days of annual leave do full-time employees get?"
    assert condense_query(question, HISTORY, generator) == question
    assert generator.prompts == []


def test_the_model_rewrite_is_used_when_usable() -> None:
    generator = ScriptedGenerator(
        replies=['Standalone question: "What does the Premium plan cost?"']
    )
    assert condense_query("And what does it cost?", HISTORY, generator) == (
        "What does the Premium plan cost?"
    )
    prompt = generator.prompts[0][-1].content
    assert "User: What does the Premium plan include?" in prompt
    assert "Follow-up question: And what does it cost?" in prompt


@pytest.mark.parametrize(
    "reply", ["", "I don't know.", "Sure [1]", "zebra quantum banana", "word " * 80]
)
def test_unusable_rewrites_fall_back_to_the_rule(reply: str) -> None:
    generator = ScriptedGenerator(replies=[reply])
    assert condense_query("And what does it cost?", HISTORY, generator) == (
        "What does the Premium plan include? what does it cost?"
    )


def test_rule_condense_without_a_generator() -> None:
    assert condense_query("What about the Basic plan?", HISTORY) == (
        "What does the Premium plan include? the Basic plan?"
    )
    assert rule_condense("How much?", [Message("assistant", "hello")]) == "How much?"
