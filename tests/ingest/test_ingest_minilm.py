"""End to end with the real MiniLM: `rag ingest` the sample corpus, then search and check it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import build_app
from rag.embed import Embedder, load_embedder
from rag.store import Index
from rag.store_write import IndexWriter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "corpora" / "sample"


def rag(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point, as a user runs it (errors as one line, exit codes)."""
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    base = tmp_path_factory.mktemp("minilm")
    corpus = base / "docs"
    shutil.copytree(SAMPLE / "docs", corpus)
    index_dir = base / "index"
    result = CliRunner().invoke(
        build_app(), ["ingest", str(corpus), "--index", str(index_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    return corpus, index_dir, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder("minilm", device="cpu")


def test_ingest_prints_a_json_summary(built: tuple[Path, Path, dict[str, object]]) -> None:
    _, index_dir, summary = built
    assert (summary["added"], summary["updated"], summary["removed"]) == (5, 0, 0)
    assert summary["failed"] == [] and summary["chunks"] == summary["embedded"]
    assert isinstance(summary["seconds"], float)
    with Index.open(index_dir) as index:
        assert index.manifest.embedder == "minilm" and index.manifest.dimension == 384


def test_chunks_fit_the_model_window(
    built: tuple[Path, Path, dict[str, object]], minilm: Embedder
) -> None:
    _, index_dir, _ = built
    embedder = minilm
    with Index.open(index_dir) as index:
        chunks = list(index.all_chunks())
    assert chunks and all(embedder.count_tokens(c.text) <= embedder.max_tokens for c in chunks)
    returns = [c for c in chunks if c.doc_id == "returns.md"]
    assert returns[0].heading_path[0] == "Returns and Refunds"


def test_questions_find_their_documents(
    built: tuple[Path, Path, dict[str, object]], minilm: Embedder
) -> None:
    _, index_dir, _ = built
    embedder = minilm
    rows = [json.loads(x) for x in (SAMPLE / "qa.jsonl").read_text().splitlines()]
    answerable = [r for r in rows if r["answerable"]]
    vectors = embedder.embed([r["question"] for r in answerable])
    with Index.open(index_dir) as index:
        for row, vector in zip(answerable, vectors, strict=True):
            hits = index.dense_search(vector, 2)
            docs = {c.doc_id for c in index.get_chunks([i for i, _ in hits])}
            assert set(row["doc_ids"]) <= docs, (row["question"], docs)
            keyword = index.keyword_search(row["question"], 3)
            assert keyword, row["question"]


def test_a_second_run_is_unchanged(built: tuple[Path, Path, dict[str, object]]) -> None:
    corpus, index_dir, _ = built
    result = CliRunner().invoke(build_app(), ["ingest", str(corpus), "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "added 0, updated 0, removed 0, unchanged 5, failed 0" in result.stdout


def test_index_check_and_info(built: tuple[Path, Path, dict[str, object]]) -> None:
    _, index_dir, _ = built
    runner = CliRunner()
    check = runner.invoke(build_app(), ["index", "check", str(index_dir)])
    assert check.exit_code == 0 and check.stdout.startswith("ok: 5 documents")
    info = runner.invoke(build_app(), ["index", "info", str(index_dir), "--json"])
    data = json.loads(info.stdout)
    assert (data["documents"], data["embedder"], data["chunk_tokens"]) == (5, "minilm", 256)


def test_index_check_fails_when_ids_disagree(
    built: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    _, index_dir, _ = built
    broken = tmp_path / "broken"
    shutil.copytree(index_dir, broken)
    generation = (broken / "CURRENT").read_text().strip()
    other = tmp_path / "other"
    shutil.copytree(SAMPLE / "docs", tmp_path / "docs2")
    (tmp_path / "docs2" / "about.md").unlink()
    CliRunner().invoke(build_app(), ["ingest", str(tmp_path / "docs2"), "--index", str(other)])
    other_generation = (other / "CURRENT").read_text().strip()
    shutil.copy(other / other_generation / "vectors.faiss", broken / generation / "vectors.faiss")
    result = rag("index", "check", str(broken))
    assert result.returncode == 1
    assert "MISMATCH" in result.stdout and "--reindex" in result.stdout


def test_errors_are_one_line_without_traceback(
    built: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    corpus, index_dir, _ = built
    missing = rag("ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "i"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no such file or folder" in missing.stderr
    other = rag("ingest", str(corpus), "--index", str(index_dir), "--embedder", "other-model")
    assert other.returncode == 1 and "--reindex" in other.stderr and "Traceback" not in other.stderr
    no_index = rag("index", "info", str(tmp_path / "none"))
    assert no_index.returncode == 1 and "rag ingest" in no_index.stderr
    with IndexWriter(index_dir):
        locked = rag("ingest", str(corpus), "--index", str(index_dir))
    assert locked.returncode == 1 and "another process is writing" in locked.stderr


def test_corpora_commands(tmp_path: Path) -> None:
    env = {"RAG_CACHE_DIR": str(tmp_path / "cache")}
    listed = rag("corpora", "list", "--json", env=env)
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"bank", "squad", "counterfactual", "sample"} <= names
    fetched = rag("corpora", "fetch", "sample", env=env)
    assert fetched.returncode == 0
    assert f"documents: {SAMPLE / 'docs'}" in fetched.stdout and "qa.jsonl" in fetched.stdout
    path = rag("corpora", "path", "sample", env=env)
    assert path.stdout.strip() == str(SAMPLE / "docs")
    qa = rag("corpora", "path", "sample", "--qa", env=env)
    assert qa.stdout.strip() == str(SAMPLE / "qa.jsonl")
    unknown = rag("corpora", "fetch", "nope", env=env)
    assert unknown.returncode == 1 and "Unknown corpus: nope" in unknown.stderr
