"""A folder of broken files: every one skipped with its reason, the good ones still indexed."""

from __future__ import annotations

from pathlib import Path

from ingest.pipeline import IngestOptions, ingest_paths
from rag.store import Index
from tests.fakes import FakeEmbedder
from tests.ingest.ingest_files import make_pdf

BROKEN: dict[str, tuple[bytes, str]] = {
    "image.png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    "empty.md": (b"", "empty file"),
    "blank.txt": (b"\n   \n\t\n", "empty file"),
    "latin1.txt": ("Stra\u00dfe".encode("latin-1"), "not UTF-8"),
    "huge.txt": (b"word " * 400, "oversized"),
    "truncated.pdf": (make_pdf(["A page"])[:60], "corrupt PDF"),
    "fake.docx": (b"this is not a zip archive", "corrupt DOCX"),
    "broken.json": (b'[{"text": "unterminated', "corrupt JSON"),
    "wrong-field.jsonl": (b'{"body": "no text field"}\n', "--json-field"),
}


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_indexed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (content, _) in BROKEN.items():
        (corpus / name).write_bytes(content)
    (corpus / "dangling.md").symlink_to(corpus / "deleted-target.md")
    (corpus / "good.md").write_text("# Good\n\nThis file is fine.\n")
    (corpus / "good.pdf").write_bytes(make_pdf(["Page one of a fine PDF", "Page two"]))

    summary = ingest_paths(
        [corpus], tmp_path / "index", IngestOptions(max_file_bytes=1000), embedder=FakeEmbedder()
    )

    assert summary.added == 2
    reasons = {Path(path).name: reason for path, reason in summary.failed}
    assert set(reasons) == {*BROKEN, "dangling.md"}
    for name, (_, expected) in BROKEN.items():
        assert expected in reasons[name], (name, reasons[name])
    assert reasons["dangling.md"].startswith("unreadable")
    with Index.open(tmp_path / "index") as index:
        assert [d.id for d in index.documents()] == ["good.md", "good.pdf"]
        pages = {c.page for c in index.all_chunks() if c.doc_id == "good.pdf"}
        assert pages == {1, 2}
        assert index.check().ok


def test_a_folder_of_only_broken_files_still_makes_an_empty_index(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "x.bin").write_bytes(b"\x00" * 10)
    summary = ingest_paths([corpus], tmp_path / "index", embedder=FakeEmbedder())
    assert summary.added == 0 and len(summary.failed) == 1
    with Index.open(tmp_path / "index") as index:
        assert index.document_count() == 0 and index.check().ok
