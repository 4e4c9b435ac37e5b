"""Corpus manifests, checksum-verified fetching (once), and each source's conversion."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.corpora import (
    CorpusSpec,
    corpus_names,
    fetch,
    fetch_spec,
    is_fetched,
    load_spec,
)
from ingest.corpus_formats import faq_pairs
from rag.errors import ChecksumMismatch, CorpusError

BANK_PATH = "inspect_evals/tau2/data/domains/banking_knowledge/documents.json.gz"
BANK_RECORDS = [
    {
        "id": "doc_cards_001",
        "title": "FAQ: Cards",
        "content": "## Frequently asked questions\n\n### Is there a fee?\nNo. The card is free."
        "\n\n### How fast is delivery?\n- Cards arrive in 5 days.\n\n## Other\n\nText.",
    },
    {"id": "doc_rates_002", "title": "Rates", "content": "## Savings\n\nThe APY is 2%."},
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_wheel(folder: Path) -> tuple[Path, bytes]:
    member = gzip.compress(json.dumps(BANK_RECORDS).encode())
    path = folder / "inspect_evals-0.28.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(BANK_PATH, member)
        archive.writestr("inspect_evals/other.py", "print('not needed')")
    return path, member


class CountingDownloader:
    """Stands in for `pip download`: copies a prepared artifact, counting calls."""

    def __init__(self, artifact: Path) -> None:
        self.artifact = artifact
        self.calls = 0

    def __call__(self, spec: CorpusSpec, dest: Path) -> Path:
        self.calls += 1
        target = dest / self.artifact.name
        target.write_bytes(self.artifact.read_bytes())
        return target


@pytest.fixture
def bank_spec(tmp_path: Path) -> tuple[CorpusSpec, CountingDownloader]:
    artifact, member = fake_wheel(tmp_path)
    spec = replace(
        load_spec("bank"),
        artifact_sha256=sha(artifact.read_bytes()),
        files={"documents": {"path": BANK_PATH, "sha256": sha(member)}},
        documents=2,
        questions=2,
    )
    return spec, CountingDownloader(artifact)


def test_every_manifest_names_its_source_licence_and_checksums() -> None:
    names = corpus_names()
    assert {"bank", "squad", "counterfactual", "sample"} <= set(names)
    for name in names:
        spec = load_spec(name)
        assert spec.licence and spec.attribution and spec.description
        if spec.local is None:
            assert spec.package and spec.version and spec.artifact
            assert len(spec.artifact_sha256 or "") == 64
            for info in spec.files.values():
                assert info["path"] and len(info["sha256"]) == 64


def test_an_unknown_corpus_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"Unknown corpus: nope \(known: bank, "):
        fetch("nope", tmp_path)


def test_fetching_twice_downloads_once(
    tmp_path: Path, bank_spec: tuple[CorpusSpec, CountingDownloader]
) -> None:
    spec, downloader = bank_spec
    cache = tmp_path / "cache"
    assert not is_fetched(spec, cache)
    first = fetch_spec(spec, cache, downloader=downloader)
    second = fetch_spec(spec, cache, downloader=downloader)
    assert first == second and downloader.calls == 1 and is_fetched(spec, cache)
    assert sorted(p.name for p in first.docs_dir.iterdir()) == [
        "doc_cards_001.md",
        "doc_rates_002.md",
    ]
    # A lost conversion is redone from the verified download, still without downloading.
    (cache / "corpora" / "bank" / ".complete").unlink()
    fetch_spec(spec, cache, downloader=downloader)
    assert downloader.calls == 1


def test_bank_faq_headings_become_the_qa_set(
    tmp_path: Path, bank_spec: tuple[CorpusSpec, CountingDownloader]
) -> None:
    spec, downloader = bank_spec
    fetched = fetch_spec(spec, tmp_path, downloader=downloader)
    assert fetched.licence == "MIT"
    rows = [json.loads(line) for line in fetched.qa_path.read_text().splitlines()]  # type: ignore[union-attr]
    assert [r["question"] for r in rows] == ["Is there a fee?", "How fast is delivery?"]
    assert rows[0]["answers"] == ["No. The card is free."]
    assert rows[1]["answers"] == ["Cards arrive in 5 days."]
    assert all(r["doc_ids"] == ["doc_cards_001.md"] and r["answerable"] for r in rows)
    doc = (fetched.docs_dir / "doc_cards_001.md").read_text()
    assert doc.startswith("# FAQ: Cards\n\n") and rows[1]["context"] in doc


def test_a_corrupt_download_is_refused_and_not_kept(
    tmp_path: Path, bank_spec: tuple[CorpusSpec, CountingDownloader]
) -> None:
    spec, downloader = bank_spec
    bad = replace(spec, artifact_sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match="expects 0000"):
        fetch_spec(bad, tmp_path, downloader=downloader)
    assert list((tmp_path / "downloads").glob("*.whl")) == []
    wrong_member = replace(spec, files={"documents": {"path": BANK_PATH, "sha256": "1" * 64}})
    with pytest.raises(ChecksumMismatch, match=BANK_PATH):
        fetch_spec(wrong_member, tmp_path, downloader=downloader)
    assert not is_fetched(wrong_member, tmp_path)


def fake_sdist(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / "bigbench-1.0.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for inner, data in {"setup.py": b"", **files}.items():
            info = tarfile.TarInfo(f"bigbench-1.0.0/{inner}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def sdist_spec(
    name: str, inner: str, data: bytes, artifact: Path, docs: int, qs: int
) -> CorpusSpec:
    return replace(
        load_spec(name),
        artifact_sha256=sha(artifact.read_bytes()),
        files={next(iter(load_spec(name).files)): {"path": inner, "sha256": sha(data)}},
        documents=docs,
        questions=qs,
    )


def test_squad_articles_keep_their_paragraphs(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "Tea_Ceremony",
                "paragraphs": [
                    {
                        "context": "Tea came from\nChina.",
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Where did tea come from? ",
                                "answers": [{"text": "China"}, {"text": "China"}],
                            }
                        ],
                    },
                    {"context": "Matcha is powdered.", "qas": []},
                ],
            }
        ]
    }
    data = json.dumps(squad).encode()
    inner = load_spec("squad").files["squad"]["path"]
    artifact = fake_sdist(tmp_path, {inner: data})
    spec = sdist_spec("squad", inner, data, artifact, 1, 1)
    fetched = fetch_spec(spec, tmp_path / "cache", downloader=CountingDownloader(artifact))
    doc = (fetched.docs_dir / "Tea_Ceremony.md").read_text()
    assert doc == "# Tea Ceremony\n\nTea came from China.\n\nMatcha is powdered.\n"
    [row] = [json.loads(x) for x in fetched.qa_path.read_text().splitlines()]  # type: ignore[union-attr]
    assert row == {
        "id": "q1",
        "question": "Where did tea come from?",
        "answers": ["China"],
        "doc_ids": ["Tea_Ceremony.md"],
        "answerable": True,
        "context": "Tea came from China.",
    }


def test_counterfactual_contexts_become_the_corpus(tmp_path: Path) -> None:
    task = {
        "examples": [
            {
                "input": "\nQuestion: who wrote hamlet?\nContext: Hamlet was written by Jane Doe .",
                "target": "Jane Doe",
                "target_scores": {"Jane Doe": 1, "William Shakespeare": 0},
            }
        ]
    }
    data = json.dumps(task).encode()
    inner = load_spec("counterfactual").files["task"]["path"]
    artifact = fake_sdist(tmp_path, {inner: data})
    spec = sdist_spec("counterfactual", inner, data, artifact, 1, 1)
    fetched = fetch_spec(spec, tmp_path / "cache", downloader=CountingDownloader(artifact))
    assert (fetched.docs_dir / "cf-00001.txt").read_text() == "Hamlet was written by Jane Doe .\n"
    [row] = [json.loads(x) for x in fetched.qa_path.read_text().splitlines()]  # type: ignore[union-attr]
    assert row["question"] == "who wrote hamlet?" and row["answers"] == ["Jane Doe"]
    assert row["original_answers"] == ["William Shakespeare"]
    assert row["doc_ids"] == ["cf-00001.txt"]


def test_the_sample_corpus_ships_with_the_package(tmp_path: Path) -> None:
    fetched = fetch("sample", tmp_path)
    assert fetched.qa_path is not None
    names = {p.name for p in fetched.docs_dir.iterdir()}
    rows = [json.loads(x) for x in fetched.qa_path.read_text().splitlines()]
    assert any(not r["answerable"] for r in rows)
    for row in rows:
        assert set(row["doc_ids"]) <= names
        for doc_id in row["doc_ids"]:
            text = (fetched.docs_dir / doc_id).read_text()
            assert any(a in text for a in row["answers"]), row
    assert not list(tmp_path.iterdir()), "a shipped corpus writes nothing to the cache"


def test_faq_pairs_stop_at_the_next_heading() -> None:
    text = "# T\n\n## Why?\nBecause.\n\n### Sub\nmore\n\n## Empty?\n\n## How?\nLike this."
    assert [(q, a) for q, a, _ in faq_pairs(text)] == [("Why?", "Because."), ("How?", "Like this.")]
