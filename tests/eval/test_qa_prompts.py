"""The generation chats: files under eval/prompts, rendered strictly, snapshot-tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.qa_prompts import (
    PROMPTS,
    judge_chat,
    load_demos,
    prompts_digest,
    question_chat,
    unanswerable_chat,
)
from rag.errors import ConfigError, PromptError
from rag.prompt import render
from rag.types import Chunk
from tests.snapshots import check_snapshot, transcript

SNAPSHOTS = Path(__file__).parent / "snapshots"
CHUNK = Chunk(
    7,
    "returns.md",
    "Unused products can be returned within 45 days of delivery.",
    ("Return window",),
    title="Returns and Refunds",
    source="returns.md",
)


def test_question_chat_snapshot() -> None:
    demos = load_demos()
    chat = question_chat(CHUNK, demos)
    # system, then one passage/pair turn per demonstration, then the passage asked about
    assert [m.role for m in chat] == ["system", *["user", "assistant"] * len(demos), "user"]
    assert all(m.content.startswith("Question: ") for m in chat[2::2])
    check_snapshot(SNAPSHOTS / "qa_question.txt", transcript(chat))


def test_unanswerable_and_judge_chat_snapshots() -> None:
    demos = load_demos()
    check_snapshot(SNAPSHOTS / "qa_unanswerable.txt", transcript(unanswerable_chat(CHUNK, demos)))
    judge = judge_chat("Can I return a used kettle?", [CHUNK, CHUNK], demos)
    assert [m.content for m in judge if m.role == "assistant"] == ["YES", "NO", "YES"][: len(demos)]
    assert "[2] Returns and Refunds > Return window" in judge[-1].content
    check_snapshot(SNAPSHOTS / "qa_judge.txt", transcript(judge))


def test_templates_render_strictly() -> None:
    with pytest.raises(PromptError, match="needs the variable 'answer'"):
        render("qa_pair", {"question": "Q?"}, PROMPTS)
    with pytest.raises(PromptError, match="Unknown prompt template: qa_nope"):
        render("qa_nope", {}, PROMPTS)


def test_demonstrations_are_checked_and_fingerprinted(tmp_path: Path) -> None:
    path = tmp_path / "demos.jsonl"
    good = {"title": "T", "passage": "P", "question": "Q?", "answer": "A", "unanswerable": "U?"}
    path.write_text(json.dumps(good) + "\n")
    before = prompts_digest(path)
    assert [d.question for d in load_demos(path)] == ["Q?"]
    assert load_demos(path)[0].as_example().answer == "A [1]"  # cited, as answers are scored
    path.write_text(json.dumps({**good, "answer": " "}) + "\n")
    with pytest.raises(ConfigError, match=r"demos.jsonl:1: a demonstration needs answer"):
        load_demos(path)
    path.write_text(json.dumps({**good, "answer": "B"}) + "\n")
    assert prompts_digest(path) != before  # edited demonstrations start a new generation run
    path.write_text("")
    with pytest.raises(ConfigError, match="holds no demonstrations"):
        load_demos(path)
    with pytest.raises(ConfigError, match="demonstrations file not found"):
        load_demos(tmp_path / "missing.jsonl")
