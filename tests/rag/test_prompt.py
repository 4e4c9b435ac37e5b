"""Prompt rendering (strict, snapshot-tested) and the token budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigError, PromptError, PromptTooLong
from rag.examples import Example, Passage
from rag.prompt import PROMPTS_DIR, PromptBuilder, chunk_label, render, templates_digest
from rag.types import Chunk, Hit, Message
from tests.fakes import ScriptedGenerator
from tests.snapshots import check_snapshot as check_file
from tests.snapshots import transcript

SNAPSHOTS = Path(__file__).parent / "snapshots"

DEMOS = [
    Example(
        "How long is the warranty?",
        (Passage("Datasheet", "Wi-Fi 6."), Passage("Warranty terms", "Two years from purchase.")),
        "Two years from purchase [2].",
    ),
    Example(
        "What is the CEO's salary?",
        (Passage("Leadership", "The CEO reports to the board."),),
        answerable=False,
    ),
]
HITS = [
    Hit(
        Chunk(
            1, "leave.md", "Staff get 25 days of leave.", ("Leave", "Annual"), None, title="Leave"
        ),
        0.03,
    ),
    Hit(Chunk(2, "hb.pdf", "Holidays are extra.", (), 4, title="Handbook", source="hb.pdf"), 0.02),
    Hit(Chunk(3, "misc.md", "Unrelated filler text " * 5, (), None, title="Misc"), 0.01),
]
HISTORY = [Message("user", "Hi, who are you?"), Message("assistant", "A documents assistant.")]


def check_snapshot(name: str, text: str) -> None:
    check_file(SNAPSHOTS / name, text)


def test_rag_prompt_snapshot() -> None:
    build = PromptBuilder(ScriptedGenerator()).build(
        "How much leave do I get?", hits=HITS[:2], demos=DEMOS, history=HISTORY
    )
    assert build.dropped == []
    assert [c.id for c in build.context] == [1, 2]
    check_snapshot("prompt_rag.txt", transcript(build.messages))


def test_closed_book_prompt_snapshot() -> None:
    build = PromptBuilder(ScriptedGenerator(), refusal="Not in the documents.").build(
        "How much leave do I get?", hits=HITS, demos=DEMOS, closed_book=True
    )
    assert build.context == [] and build.closed_book
    text = transcript(build.messages)
    assert "[1]" not in text and "[2]" not in text
    check_snapshot("prompt_closed_book.txt", text)


def test_demos_are_shown_most_similar_last_and_refusal_is_configured() -> None:
    build = PromptBuilder(ScriptedGenerator(), refusal="No idea.").build(
        "Q?", hits=HITS[:1], demos=DEMOS
    )
    roles = [m.role for m in build.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert build.messages[2].content == "No idea."
    assert build.messages[4].content == "Two years from purchase [2]."
    assert "reply exactly: No idea." in build.messages[0].content


def test_chunk_label_names_title_section_and_page() -> None:
    assert chunk_label(HITS[0].chunk) == "Leave > Annual"
    assert chunk_label(HITS[1].chunk) == "Handbook (page 4)"
    assert chunk_label(Chunk(5, "doc.md", "x")) == "doc.md"


def test_rendering_is_strict(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="needs the variable 'question'"):
        render("question", {"context": "x"})
    with pytest.raises(PromptError, match="Unknown prompt template: nope"):
        render("nope", {})
    (tmp_path / "bad.txt").write_text("costs $5 $ now")
    with pytest.raises(PromptError, match="malformed"):
        render("bad", {}, tmp_path)


def test_templates_digest_changes_when_a_template_is_edited(tmp_path: Path) -> None:
    for path in PROMPTS_DIR.glob("*.txt"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert templates_digest(tmp_path) == templates_digest()
    system = tmp_path / "system.txt"
    system.write_text(system.read_text() + "- Be brief.\n")
    assert templates_digest(tmp_path) != templates_digest()


def test_budget_drops_demos_then_history_then_context() -> None:
    generator = ScriptedGenerator()
    builder = PromptBuilder(generator)
    full = builder.build("How much leave?", hits=HITS, demos=DEMOS, history=HISTORY)
    steps = []
    for window in range(full.prompt_tokens + 50, 0, -5):
        generator.context_window = window
        try:
            build = builder.build(
                "How much leave?", hits=HITS, demos=DEMOS, history=HISTORY, max_new_tokens=50
            )
        except PromptTooLong:
            break
        assert build.prompt_tokens <= window - 50
        if build.dropped not in steps:
            steps.append(build.dropped)
    assert steps[0] == []
    assert steps[1] == ["demo: What is the CEO's salary?"]
    assert "history: 2 turns" in steps[2]
    assert any(d.startswith("context [3]: Misc") for d in steps[3])
    assert "demo: How long is the warranty?" in steps[-1]


def test_budget_errors_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="fewer new tokens"):
        PromptBuilder(ScriptedGenerator(context_window=100)).build("Q?", max_new_tokens=100)
    with pytest.raises(PromptTooLong, match="shorten it") as too_long:
        PromptBuilder(ScriptedGenerator(context_window=60)).build("word " * 100, max_new_tokens=10)
    assert too_long.value.http_status == 400  # the user's own text: not a server error
