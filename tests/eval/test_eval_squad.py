"""SQuAD read one way: the fetched corpus and a SQuAD file given to `rag eval` agree on document
ids, and the evaluation's gold-document matching finds the ingested articles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.qa import load_squad_json, read_qa_jsonl
from eval.search_modes import measure_modes, read_modes
from eval.variants import is_gold_doc
from ingest.corpus_formats import convert_squad
from ingest.pipeline import ingest_paths
from ingest.squad import parse_squad
from rag.errors import InputError
from rag.pipeline import Pipeline
from rag.store import Index
from tests.fakes import FakeEmbedder, ScriptedGenerator


def article(title: str, context: str, qid: str, question: str, answer: str) -> dict[str, object]:
    qa = {"id": qid, "question": question, "answers": [{"text": answer}]}
    return {"title": title, "paragraphs": [{"context": context, "qas": [qa]}]}


SQUAD = {
    "data": [
        # A title that is not a safe file name: the corpus names the file Kenya_s_Lakes.md.
        article(
            "Kenya's_Lakes",
            "Lake  Turkana is the largest desert lake.",
            "k1",
            "Which lake is the largest desert lake?",
            "Lake Turkana",
        ),
        article(
            "Normans",
            "The Normans settled in Normandy.",
            "n1",
            "Where did the Normans settle?",
            "Normandy",
        ),
    ]
}


def test_the_corpus_and_the_qa_loader_give_the_same_questions_and_ids(tmp_path: Path) -> None:
    raw = json.dumps(SQUAD).encode()
    (tmp_path / "dev.json").write_bytes(raw)
    convert_squad({"squad": raw}, tmp_path / "docs", tmp_path / "qa.jsonl")
    from_file = load_squad_json(tmp_path / "dev.json")
    assert from_file == read_qa_jsonl(tmp_path / "qa.jsonl")
    assert [item.doc_ids for item in from_file] == [("Kenya_s_Lakes.md",), ("Normans.md",)]
    assert from_file[0].context == "Lake Turkana is the largest desert lake."

    ingest_paths([tmp_path / "docs"], tmp_path / "index", embedder=FakeEmbedder())
    with Index.open(tmp_path / "index") as index:
        assert {d.id for d in index.documents()} == {"Kenya_s_Lakes.md", "Normans.md"}
        chunks = {c.doc_id: c for c in index.all_chunks()}
        for item in from_file:
            assert is_gold_doc(chunks[item.doc_ids[0]], item.doc_ids)
        pipeline = Pipeline(ScriptedGenerator(), index=index, embedder=FakeEmbedder())
        measure_modes(pipeline, from_file, tmp_path)
    ranks = {(row["qid"], row["mode"]): row["gold_doc_rank"] for row in read_modes(tmp_path)}
    assert ranks[("k1", "keyword")] == 1 and ranks[("n1", "keyword")] == 1


def test_squad_v2_unanswerable_and_broken_files(tmp_path: Path) -> None:
    impossible = {"id": "x", "question": "Who?", "answers": [], "is_impossible": True}
    data = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [impossible]}]}]}
    [parsed] = parse_squad(json.dumps(data), "v2.json")
    assert parsed.questions[0]["answerable"] is False and parsed.questions[0]["answers"] == []
    with pytest.raises(InputError, match=r"broken\.json is not SQuAD JSON"):
        parse_squad(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), "broken.json")
    with pytest.raises(InputError, match=r"cannot read SQuAD JSON bad\.json"):
        parse_squad("{", "bad.json")
