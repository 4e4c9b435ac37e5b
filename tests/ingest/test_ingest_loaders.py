"""Each format's loader, the folder walk, and the reasons bad files are skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.file_limits import FileLimits
from ingest.loaders import SourceFile, discover, load_file
from rag.errors import InputError
from tests.ingest.ingest_files import make_docx, make_pdf


def source(path: Path) -> SourceFile:
    return SourceFile(path=path, doc_id=path.name, root=path.parent)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_markdown_keeps_text_and_reads_front_matter(tmp_path: Path) -> None:
    path = write(tmp_path / "a.md", "---\ntitle: The Handbook\nowner: hr\n---\n# Intro\n\nHello.\n")
    [doc] = load_file(source(path))
    assert doc.title == "The Handbook"
    assert doc.text == "# Intro\n\nHello.\n"
    assert doc.metadata["format"] == "markdown"
    assert doc.id == "a.md" and doc.source == str(path)
    assert len(doc.content_hash) == 64


def test_markdown_title_falls_back_to_first_heading_then_file_name(tmp_path: Path) -> None:
    assert load_file(source(write(tmp_path / "b.md", "text\n\n## Sub\n")))[0].title == "Sub"
    assert load_file(source(write(tmp_path / "notes.md", "just text")))[0].title == "notes"


def test_text_with_bom_and_crlf_is_normalized(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "\ufeffline one\r\nline two\r\n".encode())
    [doc] = load_file(source(path))
    assert doc.text == "line one\nline two\n"
    assert doc.metadata["format"] == "text"


def test_rst_section_titles_become_headings(tmp_path: Path) -> None:
    rst = (
        "=====\nGuide\n=====\n\nIntro text.\n\nInstall\n-------\n\nRun it.\n\n"
        "Details\n~~~~~~~\n\nMore.\n\nUsage\n-------\n\nUse it.\n"
    )
    [doc] = load_file(source(write(tmp_path / "g.rst", rst)))
    assert "# Guide" in doc.text and "## Install" in doc.text and "### Details" in doc.text
    assert "## Usage" in doc.text and "-------" not in doc.text
    assert doc.title == "Guide"


def test_html_keeps_main_text_without_scripts_styles_or_navigation(tmp_path: Path) -> None:
    html = """<html><head><title>Pricing page</title><style>p{color:red}</style>
    <script>var secret = "tracking";</script></head><body>
    <nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
    <header>Site banner</header>
    <main><h1>Pricing</h1><p>The Basic plan costs <b>10</b> dollars.</p>
    <h2>Discounts</h2><ul><li>Students: 50%</li><li>NGOs: 30%</li></ul>
    <table><tr><td>Plan</td><td>Price</td></tr></table></main>
    <footer>Copyright</footer></body></html>"""
    [doc] = load_file(source(write(tmp_path / "p.html", html)))
    assert doc.title == "Pricing page"
    assert "# Pricing" in doc.text and "## Discounts" in doc.text
    assert "The Basic plan costs 10 dollars." in doc.text
    assert "Students: 50%" in doc.text and "Plan | Price" in doc.text
    for junk in ("secret", "color:red", "About us", "Site banner", "Copyright"):
        assert junk not in doc.text


def test_pdf_keeps_page_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "r.pdf", make_pdf(["First page text", "Second page text"]))
    [doc] = load_file(source(path))
    assert doc.metadata["pages"] == 2
    starts = doc.metadata["page_starts"]
    assert doc.text[starts[0] :].startswith("First page text")
    assert doc.text[starts[1] :].startswith("Second page text")


def test_docx_keeps_headings_and_tables_in_order(tmp_path: Path) -> None:
    [doc] = load_file(source(make_docx(tmp_path / "e.docx")))
    assert doc.title == "Expense Policy"
    text = doc.text
    assert text.startswith("# Expense Policy\n")
    assert text.index("## Meals") < text.index("Item | Limit\nTaxi | 50 euros")
    assert text.index("Taxi | 50 euros") < text.index("### Travel")


def test_json_records_become_documents(tmp_path: Path) -> None:
    records = [
        {"id": "r1", "title": "One", "body": "first text", "lang": "en"},
        {"id": "r2", "body": "second text"},
        {"id": "r3", "other": "no body"},
    ]
    path = write(tmp_path / "data.json", json.dumps(records))
    docs = load_file(source(path), json_field="body")
    assert [d.id for d in docs] == ["data.json#r1", "data.json#r2"]
    assert docs[0].title == "One" and docs[0].metadata["lang"] == "en"
    assert docs[1].title == "data #r2"
    single = write(tmp_path / "one.json", json.dumps({"text": "just one"}))
    assert [d.id for d in load_file(source(single))] == ["one.json#1"]


def test_jsonl_records_are_numbered_by_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a"}\n\n{"text": "b", "id": 7}\n')
    assert [d.id for d in load_file(source(path))] == ["d.jsonl#1", "d.jsonl#7"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bin.md", b"\x00\x01\x02\x03 binary", "binary file"),
        ("empty.txt", b"  \n\n", "empty"),
        ("latin.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not UTF-8: byte 0xe9 at offset 3"),
        ("bad.pdf", b"%PDF-1.4\nthis is not really a pdf", "corrupt PDF"),
        ("bad.docx", b"PK\x03\x04 not a zip", "corrupt DOCX"),
        ("bad.json", b'{"text": ', "corrupt JSON"),
        ("nofield.jsonl", b'{"body": "x"}\n', "--json-field"),
        ("blank.pdf", make_pdf([""]), "no extractable text"),
    ],
)
def test_bad_files_are_refused_with_a_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    with pytest.raises(InputError, match=reason.replace("(", r"\(")):
        load_file(source(write(tmp_path / name, content)))


def test_oversized_and_unreadable_files(tmp_path: Path) -> None:
    big = write(tmp_path / "big.txt", "x" * 2000)
    with pytest.raises(InputError, match="oversized: 2,000 bytes"):
        load_file(source(big), limits=FileLimits(max_bytes=1000))
    link = tmp_path / "gone.md"
    link.symlink_to(tmp_path / "missing-target.md")
    with pytest.raises(InputError, match="unreadable"):
        load_file(source(link))


def test_discover_walks_folders_with_globs(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for rel in ("a.md", "b.txt", "sub/c.md", "drafts/d.md", ".hidden/e.md", ".f.md", "index/x"):
        write(corpus / rel, "text")
    ids = [f.doc_id for f in discover([corpus], skip=corpus / "index")]
    assert ids == ["a.md", "b.txt", "drafts/d.md", "sub/c.md"]
    only_md = [f.doc_id for f in discover([corpus], include=["*.md"], exclude=["drafts/*"])]
    assert only_md == ["a.md", "sub/c.md"]
    [single] = discover([corpus / "sub" / "c.md"])
    assert single.doc_id == "c.md" and single.root is None
    assert {f.root for f in discover([corpus])} == {corpus.resolve()}


def test_discover_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file or folder: .*nope"):
        discover([tmp_path, tmp_path / "nope"])
