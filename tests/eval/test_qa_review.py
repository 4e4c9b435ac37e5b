"""A person's review: the listing, accept/reject/edit by keystrokes, resuming, and an
evaluation that takes only what was accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from eval.cli import register
from eval.evaluate import EvalRequest, evaluate
from eval.qa import QAItem, read_qa_jsonl, write_qa_jsonl
from eval.results import ResultsFile
from rag.errors import ConfigError
from tests.eval.eval_fakes import ITEMS, make_pipeline

GENERATED = QAItem(
    "gen-3",
    "What is the capital of Peru?",
    ("Lima",),
    ("peru.md",),
    context="Lima is the capital of Peru.",
    extra={
        "source": {"chunk_id": 3, "doc_id": "peru.md", "title": "Peru", "file": "peru.md"},
        "filters": {"passed": ["parsed"], "round_trip_f1": 1.0, "round_trip_answer": "Lima [1]"},
        "retrieval": {"mode": "hybrid", "k": 5, "passage_rank": 2, "doc_rank": 2},
    },
)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def write_set(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    write_qa_jsonl([*ITEMS, GENERATED], path)
    return path


def test_show_lists_every_question_with_where_it_came_from(
    app: typer.Typer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["qa", "show", str(write_set(tmp_path))])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("5 questions (4 answerable, 1 unanswerable) from 3 documents; 0 accepted")
    assert (
        "[5] gen-3  answerable  not reviewed\n  Q: What is the capital of Peru?\n  A: Lima" in out
    )
    assert (
        "from peru.md (chunk 3); round trip F1 1.00 ('Lima [1]'); retrieval (hybrid, top 5): rank 2"
        in out
    )
    assert "  | Lima is the capital of Peru." in out
    assert "A: (refusal expected)" in out  # the unanswerable one
    brief = CliRunner().invoke(app, ["qa", "show", str(write_set(tmp_path)), "--no-passages"])
    assert "  | Lima" not in brief.output


def test_review_by_keystrokes_writes_decisions_and_resumes(
    app: typer.Typer, tmp_path: Path
) -> None:
    source, out = write_set(tmp_path), tmp_path / "reviewed.jsonl"
    keys = "a\nr\nx\ne\nWhat is the capital city of Peru?\nLima | Lima, Peru\ns\nq\n"
    result = CliRunner().invoke(app, ["qa", "review", str(source), "--out", str(out)], input=keys)
    assert result.exit_code == 0, result.output
    assert "Type one of: a, r, e, s, q." in result.output
    rows = {item.id: item for item in read_qa_jsonl(out)}
    assert [rows[i].review for i in ("q1", "q2", "q3", "q4", "gen-3")] == [
        "accepted",
        "rejected",
        "edited",
        None,
        None,
    ]
    assert rows["q3"].question == "What is the capital city of Peru?"
    assert rows["q3"].answers == ("Lima", "Lima, Peru") and rows["q3"].context is not None
    assert rows["gen-3"].extra["source"]["chunk_id"] == 3  # provenance survives the review

    # A second session asks only about the undecided rows; an edit that changes nothing (of an
    # unanswerable question: no answers to ask for) is an acceptance; the end of input stops it
    # with every decision kept.
    again = CliRunner().invoke(app, ["qa", "review", str(source), "--out", str(out)], input="e\n\n")
    assert again.exit_code == 0, again.output
    assert "(1/2) q4" in again.output and "q1  answerable" not in again.output
    rows = {item.id: item for item in read_qa_jsonl(out)}
    assert rows["q4"].review == "accepted" and rows["gen-3"].review is None
    assert "Wrote" in again.output and "1 rejected, 1 not reviewed" in again.output

    same = CliRunner().invoke(app, ["qa", "review", str(out), "--out", str(out)])
    assert same.exit_code != 0 and "is the file being reviewed" in str(same.exception)


def test_eval_leaves_out_rejected_rows_and_can_take_only_reviewed_ones(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.jsonl"
    marked = {"q1": "accepted", "q2": "rejected", "q3": "edited"}
    write_qa_jsonl(
        [
            QAItem(
                i.id,
                i.question,
                i.answers,
                i.doc_ids,
                i.answerable,
                i.context,
                {"reviewed": marked[i.id]} if i.id in marked else {},
            )
            for i in ITEMS
        ],
        path,
    )

    def evaluated(name: str, reviewed_only: bool) -> set[str]:
        request = EvalRequest(
            qa=str(path),
            index=tmp_path,
            model="scripted",
            out=tmp_path / name,
            variants=("rag-few-shot",),
            sweep=(),
            k_sweep=(),
            demos_from_qa=0,
            reviewed_only=reviewed_only,
        )
        evaluate(
            request, cache_dir=tmp_path, pipeline_for=lambda a: make_pipeline(), progress=False
        )
        return {row.qid for row in ResultsFile(request.out).rows()}

    assert evaluated("all", False) == {"q1", "q3", "q4"}
    assert evaluated("reviewed", True) == {"q1", "q3"}
    write_qa_jsonl(ITEMS, path)
    with pytest.raises(ConfigError, match=r"no reviewed questions in .*rag qa review"):
        evaluated("none", True)
