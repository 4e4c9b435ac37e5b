"""The example bank: loading with line-numbered errors, and choosing demonstrations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.citations import parse_markers
from rag.errors import ConfigError
from rag.examples import ExampleBank, load_examples
from tests.fakes import FakeEmbedder


def write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_default_bank_teaches_the_format() -> None:
    bank = ExampleBank.default()
    assert 12 <= len(bank) <= 16
    unanswerable = [e for e in bank.examples if not e.answerable]
    assert 3 <= len(unanswerable) <= 4
    for example in bank.examples:
        assert example.passages
        if example.answerable:
            markers = parse_markers(example.answer)
            assert markers and max(markers) <= len(example.passages)
            assert len(example.answer.split()) < 40
        else:
            assert example.answer_text("I don't know.") == "I don't know."


def test_selection_takes_the_most_similar_and_always_one_refusal() -> None:
    bank = ExampleBank.default(embedder=FakeEmbedder())
    chosen = bank.select("How often must passwords be changed?", 3)
    assert chosen[0].question == "How often do passwords have to be changed?"
    assert len(chosen) == 3
    assert any(not e.answerable for e in chosen)
    two = bank.select("How often must passwords be changed?", 2)
    assert all(e.answerable for e in two)  # below REFUSAL_FROM only natural refusals
    assert bank.select("anything", 0) == []
    assert len(bank.select("passwords", 1)) == 1
    assert len(bank.select("passwords", 100)) == len(bank)


def test_selection_without_an_embedder_uses_word_overlap() -> None:
    bank = ExampleBank.default()
    assert bank.select("What is the refund window for annual subscriptions?", 1)[
        0
    ].answer.startswith("A full refund")
    with pytest.raises(ConfigError):
        bank.select("x", -1)


def test_embedder_bank_vectors_are_computed_once() -> None:
    embedder = FakeEmbedder()
    bank = ExampleBank.default(embedder=embedder)
    bank.select("a", 2)
    bank.select("b", 2)
    assert embedder.texts_embedded == len(bank) + 2


def test_user_banks_load_and_bad_lines_name_their_line(tmp_path: Path) -> None:
    good = write(
        tmp_path / "good.jsonl",
        [
            {"question": "Q?", "context": ["plain text passage"], "answer": "A [1]."},
            {"question": "U?", "context": [{"title": "T", "text": "x"}], "answerable": False},
        ],
    )
    examples = load_examples(good)
    assert examples[0].passages[0].title == ""
    assert not examples[1].answerable
    bad_marker = write(
        tmp_path / "b1.jsonl", [{"question": "Q", "context": ["x"], "answer": "A [2]"}]
    )
    with pytest.raises(ConfigError, match=r"b1.jsonl:1: the answer cites \[2\]"):
        load_examples(bad_marker)
    (tmp_path / "b2.jsonl").write_text('{"question": "Q", "answer": "A"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"b2\.jsonl:2: not valid JSON"):
        load_examples(tmp_path / "b2.jsonl")
    with pytest.raises(ConfigError, match="needs a non-empty 'question'"):
        load_examples(write(tmp_path / "b3.jsonl", [{"answer": "A"}]))
    with pytest.raises(ConfigError, match="not found"):
        load_examples(tmp_path / "missing.jsonl")


def test_at_most_one_refusal_demo_even_when_refusals_are_most_similar() -> None:
    from rag.examples import Example, ExampleBank, Passage

    passage = (Passage(title="t", text="text"),)
    refusals = [
        Example(f"When does the Berlin office open {i}?", passage, answerable=False)
        for i in range(4)
    ]
    answers = [Example(f"What is item {i}?", passage, answer=f"Item {i} [1].") for i in range(4)]
    bank = ExampleBank([*refusals, *answers])
    for k in (1, 2):
        assert all(e.answerable for e in bank.select("When does the Berlin office open?", k))
    five = bank.select("When does the Berlin office open?", 5)
    assert len(five) == 5
    assert sum(not e.answerable for e in five) == 1
