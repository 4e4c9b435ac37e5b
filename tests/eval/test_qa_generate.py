"""`rag qa generate`'s logic with a scripted model: the stratified draw, each check's removals,
unanswerable questions, where each row came from, and resuming from the candidates file."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from eval.qa import read_qa_jsonl
from eval.qa_filters import FilterSettings
from eval.qa_generate import GenerateRequest, draw_passages, generate_qa
from eval.qa_prompts import load_demos
from rag.errors import ConfigError
from rag.examples import ExampleBank
from rag.pipeline import Pipeline
from rag.types import Chunk, Message
from tests.eval.eval_fakes import CHUNKS, reader
from tests.fakes import FakeEmbedder, FakeIndex, ScriptedGenerator

CITIES = {"France": "Paris", "Japan": "Tokyo", "Peru": "Quito", "Kenya": "Nairobi"}


def writer(messages: Sequence[Message]) -> str:
    """A model that writes a pair (Peru's answer is not in its passage), an unanswerable
    question, a judge's verdict (Kenya's moons: "YES"), or answers by reading."""
    system, last = messages[0].content, messages[-1].content
    country = re.search(r"capital of (\w+)\.", last)
    if system.startswith("You write test questions") and "does not answer" in system:
        return f"Question: How many moons does {country.group(1) if country else 'it'} have?"
    if system.startswith("You write test questions"):
        assert country is not None
        name = country.group(1)
        return f"Question: Which city is the capital of {name}?\nAnswer: {CITIES[name]}\n\nQ"
    if system.startswith("You check whether"):
        return "YES" if "Kenya have?" in last else "NO"
    return reader(messages)


def pipeline(script=writer) -> tuple[Pipeline, ScriptedGenerator]:
    embedder = FakeEmbedder()
    generator = ScriptedGenerator(script=script)
    examples = ExampleBank([d.as_example() for d in load_demos()], embedder=embedder)
    built = Pipeline(
        generator, index=FakeIndex(CHUNKS, embedder), embedder=embedder, examples=examples
    )
    return built, generator


def request(tmp_path: Path, **overrides: object) -> GenerateRequest:
    fields: dict[str, object] = {
        "index": tmp_path / "index",
        "out": tmp_path / "qa.jsonl",
        "model": "scripted",
        "n": 4,
        "unanswerable": 0.25,
        "min_passage_words": 1,
        "k": 2,
        "batch_size": 2,
        **overrides,
    }
    return GenerateRequest(**fields)  # type: ignore[arg-type]


def test_the_draw_is_stratified_by_document_and_seeded() -> None:
    chunks = [
        Chunk(i, doc, f"word {i} " * 5)
        for i, doc in enumerate(["a", "a", "a", "b", "c", "c", "tiny"], 1)
    ]
    chunks[-1] = Chunk(7, "tiny", "two words")
    order = draw_passages(chunks, seed=3, min_words=5)
    assert sorted(c.id for c in order) == [1, 2, 3, 4, 5, 6]  # each once; the short one never
    assert {c.doc_id for c in order[:3]} == {"a", "b", "c"}  # every document before any twice
    assert {c.doc_id for c in order[3:5]} == {"a", "c"}
    assert [c.id for c in draw_passages(chunks, seed=3, min_words=5)] == [c.id for c in order]
    assert [c.id for c in draw_passages(chunks, seed=4, min_words=5)] != [c.id for c in order]


def test_generation_keeps_what_passes_and_counts_what_each_check_removed(tmp_path: Path) -> None:
    built, generator = pipeline()
    req = request(tmp_path, n=5, unanswerable=0.4)  # 3 answerable, 2 unanswerable
    summary = generate_qa(req, built, progress=False)
    items = read_qa_jsonl(req.out)
    answerable = [item for item in items if item.answerable]
    assert len(answerable) == 3 and len(items) == 5
    for item in answerable:
        country = item.question.split()[-1].rstrip("?")
        assert item.answers == (CITIES[country],) and country != "Peru"
        assert item.context is not None and item.answers[0] in item.context
        source = item.extra["source"]
        assert item.doc_ids == (source["doc_id"],) and item.id == f"gen-{source['chunk_id']}"
        assert item.extra["generator"]["model"] == "scripted"
        assert item.extra["filters"]["round_trip_f1"] == 1.0
        assert "round_trip" in item.extra["filters"]["passed"]
        assert item.extra["retrieval"]["passage_rank"] in (1, 2)  # recorded, top k=2
    for item in (i for i in items if not i.answerable):
        assert item.answers == () and "Kenya" not in item.question
        assert item.extra["filters"]["judge"] == "NO"
        assert item.extra["filters"]["top_score"] < 0.6
    counts = summary.counts
    for tally in counts.values():
        assert tally.candidates == tally.kept + sum(tally.removed.values())
    assert set(counts["answerable"].removed) <= {"answer_in_passage", "not_duplicate"}
    assert set(counts["unanswerable"].removed) <= {"judge", "not_duplicate"}
    lines = "\n".join(summary.lines())
    assert "removed    0  question quotes the passage" in lines
    assert (
        "kept       3\n" in lines and "Retrieval found the passage in the top 2 for 3 of 3" in lines
    )

    # Every candidate is on file with its outcome; a rerun asks the model nothing.
    records = req.candidates_path.read_text().splitlines()
    assert json.loads(records[0])["fingerprint"]["model"] == "scripted"
    assert len(records) - 1 == counts["answerable"].candidates + counts["unanswerable"].candidates
    asked = len(generator.prompts)
    before = req.out.read_text()
    again = generate_qa(req, built, progress=False)
    assert len(generator.prompts) == asked and req.out.read_text() == before
    assert again.counts["answerable"].kept == 3


def test_a_small_corpus_is_drawn_again_and_duplicates_are_dropped(tmp_path: Path) -> None:
    built, _ = pipeline()
    req = request(tmp_path, n=4, unanswerable=0.0, max_tries=3.0)
    summary = generate_qa(req, built, progress=False)
    tally = summary.counts["answerable"]
    # Three passages give a kept pair; the scripted model repeats itself on the second pass.
    assert tally.kept == 3 and tally.candidates == 12
    assert tally.removed["answer_in_passage"] == 3 and tally.removed["not_duplicate"] == 6
    records = [json.loads(line) for line in req.candidates_path.read_text().splitlines()[1:]]
    assert {r["attempt"] for r in records} == {0, 1, 2}
    assert any("only 3 of 4 answerable" in line for line in _logged(req, built))


def _logged(req: GenerateRequest, built: Pipeline) -> list[str]:
    lines: list[str] = []
    generate_qa(req, built, progress=False, log=lines.append)
    return lines


def test_a_resumed_run_must_match_and_may_grow(tmp_path: Path) -> None:
    built, _ = pipeline()
    generate_qa(request(tmp_path, n=2, unanswerable=0.0), built, progress=False)
    first = len(read_qa_jsonl(tmp_path / "qa.jsonl"))
    generate_qa(request(tmp_path, n=3, unanswerable=0.0), built, progress=False)
    assert first == 2 and len(read_qa_jsonl(tmp_path / "qa.jsonl")) == 3
    with pytest.raises(ConfigError, match=r"holds candidates of another configuration.*filters"):
        generate_qa(
            request(tmp_path, filters=FilterSettings(round_trip_f1=0.9)), built, progress=False
        )
    # A line cut off by a crash is dropped, not an error.
    path = tmp_path / "qa.candidates.jsonl"
    path.write_text(path.read_text() + '{"kind": "answ')
    generate_qa(request(tmp_path, n=3, unanswerable=0.0), built, progress=False)
    assert path.read_text().endswith("\n")


def test_bad_requests_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--out is a \.jsonl file"):
        request(tmp_path, out=tmp_path / "qa.txt")
    with pytest.raises(ConfigError, match="--unanswerable is a share"):
        request(tmp_path, unanswerable=1.5)
    built, _ = pipeline()
    with pytest.raises(ConfigError, match=r"no passage .* has 50 words or more"):
        generate_qa(request(tmp_path, min_passage_words=50), built, progress=False)
