"""QA format, loaders, sampling, the split by question and the leakage check."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from eval.qa import QAItem, load_qa, load_squad_json, read_qa_jsonl, sample, write_qa_jsonl
from eval.split import (
    LeakageError,
    _jaccard_leaks,
    check_no_leakage,
    find_leaks,
    jaccard,
    question_tokens,
    split_by_question,
)
from rag.errors import InputError
from tests.fakes import FakeEmbedder


def items(n: int) -> list[QAItem]:
    return [
        QAItem(f"q{i}", f"Question {i} asks about subject {i + 100}?", (f"a{i}",)) for i in range(n)
    ]


def test_jsonl_round_trip_keeps_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "1",
                "question": "Who?",
                "answers": ["Ann"],
                "doc_ids": ["a.md"],
                "difficulty": "hard",
                "tags": ["x"],
            }
        )
        + "\n\n"
        + json.dumps({"id": "2", "question": "Why?", "answers": [], "answerable": False})
        + "\n"
    )
    loaded = read_qa_jsonl(path)
    assert loaded[0].extra == {"difficulty": "hard", "tags": ["x"]}
    assert loaded[0].doc_ids == ("a.md",) and loaded[0].answerable
    assert not loaded[1].answerable and loaded[1].answers == ()
    write_qa_jsonl(loaded, tmp_path / "again.jsonl")
    assert read_qa_jsonl(tmp_path / "again.jsonl") == loaded
    assert (
        json.loads((tmp_path / "again.jsonl").read_text().splitlines()[0])["difficulty"] == "hard"
    )


def test_bad_lines_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "1", "question": "Who?", "answers": ["A"]}\nnot json\n')
    with pytest.raises(InputError, match=r"qa.jsonl:2: not JSON"):
        read_qa_jsonl(path)
    path.write_text('{"id": "1", "question": "Who?", "answers": []}\n')
    with pytest.raises(InputError, match="answerable"):
        read_qa_jsonl(path)
    path.write_text('{"id": "1", "question": "A?", "answers": ["x"]}\n' * 2)
    with pytest.raises(InputError, match="duplicate question id"):
        read_qa_jsonl(path)


def test_squad_json_loader(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "Normans",
                "paragraphs": [
                    {
                        "context": "The Normans were in Normandy in the 10th century.",
                        "qas": [
                            {
                                "id": "n1",
                                "question": "When?",
                                "answers": [
                                    {"text": "10th century", "answer_start": 38},
                                    {"text": "10th century", "answer_start": 38},
                                    {"text": "the 10th century", "answer_start": 34},
                                ],
                            },
                            {
                                "id": "n2",
                                "question": "Who ruled?",
                                "answers": [],
                                "is_impossible": True,
                            },
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad))
    first, second = load_squad_json(path)
    assert first.answers == ("10th century", "the 10th century")  # duplicates collapsed
    assert first.doc_ids == ("Normans.md",) and first.context is not None
    assert not second.answerable
    assert load_qa(path, cache_dir=tmp_path) == [first, second]
    with pytest.raises(InputError, match="QA set not found"):
        load_qa(tmp_path / "missing.jsonl", cache_dir=tmp_path)


def test_sampling_is_deterministic_ordered_and_nested() -> None:
    pool = items(50)
    ten = sample(pool, 10, seed=3)
    assert ten == sample(pool, 10, seed=3)
    assert ten != sample(pool, 10, seed=4)
    assert [pool.index(i) for i in ten] == sorted(pool.index(i) for i in ten)
    assert {i.id for i in ten} <= {i.id for i in sample(pool, 20, seed=3)}
    assert sample(pool, None) == pool and sample(pool, 500) == pool


def test_split_puts_copies_of_a_question_on_one_side() -> None:
    pool = [*items(30), QAItem("dup", "question 3 ASKS about subject 103", ("a3",))]
    for seed in range(6):
        split = split_by_question(pool, test_fraction=0.3, seed=seed)
        sides = {i.id: "test" for i in split.test} | {i.id: "train" for i in split.train}
        assert len(sides) == len(pool) and not split.dropped
        assert sides["q3"] == sides["dup"]
        assert len(split.test) in (9, 10)
    split = split_by_question(pool, test_fraction=0.3, seed=1)
    check_no_leakage(split.train, split.test)  # the split is clean by construction
    assert split_by_question(pool, test_fraction=0.3, seed=1) == split


def test_leakage_check_finds_near_duplicates() -> None:
    test = [QAItem("t1", "In which year was the Eiffel Tower completed?", ("1889",))]
    train = [
        QAItem("r1", "In which year was the Eiffel Tower finally completed?", ("1889",)),
        QAItem("r2", "Who designed the Eiffel Tower?", ("Gustave Eiffel",)),
    ]
    leaks = find_leaks(train, test, threshold=0.8)
    assert [(leak.test_id, leak.train_id) for leak in leaks] == [("t1", "r1")]
    assert leaks[0].similarity == pytest.approx(7 / 8)
    with pytest.raises(LeakageError, match="1 test question"):
        check_no_leakage(train, test)
    check_no_leakage(train[1:], test)


def test_embedding_similarity_catches_what_jaccard_misses() -> None:
    test = [QAItem("t1", "tower eiffel year completed which in", ("1889",))]
    train = [QAItem("r1", "Eiffel tower: completed in which year??", ("1889",))]
    assert find_leaks(train, test, threshold=0.8)  # same token set: Jaccard 1.0
    reworded = [QAItem("r2", "completed completed completed eiffel", ("1889",))]
    assert not find_leaks(reworded, test, threshold=0.8)
    assert find_leaks(
        reworded, test, threshold=0.8, embedder=FakeEmbedder(), embedding_threshold=0.5
    )


def test_prefix_filtering_matches_brute_force() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(12)]
    pool = [
        QAItem(f"x{i}", " ".join(rng.sample(vocab, rng.randint(1, 6))), ("a",)) for i in range(80)
    ]
    train, test = pool[:50], pool[50:]
    for threshold in (0.5, 0.7, 0.9, 1.0):
        fast = {(leak.test_id, leak.train_id) for leak in _jaccard_leaks(train, test, threshold)}
        slow = {
            (t.id, r.id)
            for t, r in itertools.product(test, train)
            if jaccard(question_tokens(t.question), question_tokens(r.question)) >= threshold
        }
        assert fast == slow
