"""Chunking follows structure (pages, headings, paragraphs, sentences) within a token budget."""

from __future__ import annotations

import itertools
import re

import pytest

from ingest.chunker import ChunkerConfig, chunk_document
from rag.errors import ConfigError
from rag.types import Chunk, Document


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


def chunk(text: str, tokens: int = 40, overlap: int = 8, **metadata: object) -> list[Chunk]:
    doc = Document(
        id="d.md",
        source="/d.md",
        title="Doc",
        text=text,
        metadata={"format": "markdown", **metadata},
    )
    chunks = chunk_document(doc, words, ChunkerConfig(tokens, overlap))
    for c in chunks:
        assert c.text == text[c.start : c.end], "a chunk is an exact span of the text"
        assert words(c.text) <= tokens, f"chunk over budget: {words(c.text)}"
        assert (c.id, c.doc_id, c.title, c.source) == (0, "d.md", "Doc", "/d.md")
    return chunks


def sentences(prefix: str, n: int) -> str:
    return " ".join(f"{prefix} sentence {i} has five words." for i in range(n))


def test_small_sections_pack_together_with_their_headings() -> None:
    text = "# Guide\n\nShort intro.\n\n## Setup\n\nInstall it.\n\n## Use\n\nRun it.\n"
    [only] = chunk(text)
    assert only.text == text.strip()
    assert only.heading_path == ("Guide",)


def test_heading_paths_follow_nesting() -> None:
    body = sentences("x", 5)  # 30 words: a heading starts a new chunk once one is half full
    text = f"# A\n\n{body}\n\n## B\n\n{body}\n\n### C\n\n{body}\n\n## D\n\n{body}\n"
    paths = [c.heading_path for c in chunk(text)]
    assert paths == [("A",), ("A", "B"), ("A", "B", "C"), ("A", "D")]


def test_a_paragraph_that_fits_is_never_split() -> None:
    first, second = sentences("a", 5), sentences("b", 5)  # 30 words each, budget 40
    chunks = chunk(f"{first}\n\n{second}\n")
    assert [c.text for c in chunks] == [first, second]


def test_an_oversized_paragraph_is_cut_at_sentences_with_overlap() -> None:
    para = sentences("s", 20)  # 120 words
    chunks = chunk(para, tokens=40, overlap=8)
    assert len(chunks) >= 3
    for before, after in itertools.pairwise(chunks):
        last_sentence = re.findall(r"s sentence \d+ has five words\.", before.text)[-1]
        assert after.text.startswith(last_sentence), "the boundary sentence is repeated"
    # Every sentence is in some chunk, whole.
    for i in range(20):
        assert any(f"s sentence {i} has five words." in c.text for c in chunks)


def test_no_overlap_when_zero() -> None:
    chunks = chunk(sentences("s", 20), tokens=40, overlap=0)
    assert all(a.end < b.start for a, b in itertools.pairwise(chunks))


def test_lists_and_tables_are_cut_at_lines() -> None:
    rows = "\n".join(f"| row {i} | value {i} |" for i in range(30))
    chunks = chunk(rows, tokens=40, overlap=0)
    assert len(chunks) > 1
    assert all(c.text.startswith("| row") and c.text.endswith("|") for c in chunks)


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = chunk(text, tokens=30, overlap=0)
    assert [words(c.text) for c in chunks] == [30, 30, 30, 10]


def test_pages_are_hard_boundaries_and_numbered() -> None:
    page1, page2 = "Alpha text on page one.", "Beta text on page two."
    text = f"{page1}\n\n{page2}"
    chunks = chunk(text, format="pdf", page_starts=[0, len(page1) + 2])
    assert [(c.page, c.text) for c in chunks] == [(1, page1), (2, page2)]


def test_hashes_inside_code_fences_are_not_headings() -> None:
    text = "# Real\n\n```bash\n# comment, not a heading\n\necho hi\n```\n"
    [only] = chunk(text)
    assert only.heading_path == ("Real",)
    assert "echo hi" in only.text


def test_plain_text_has_no_headings() -> None:
    doc = Document(
        id="t.txt",
        source="t",
        title="t",
        text="# not a heading\n\nbody",
        metadata={"format": "text"},
    )
    [only] = chunk_document(doc, words, ChunkerConfig(40, 8))
    assert only.heading_path == ()


def test_a_trailing_heading_without_body_is_not_a_chunk_of_its_own() -> None:
    body = sentences("x", 7)  # 42 words > budget: cut into pieces
    chunks = chunk(f"# A\n\n{body}\n\n## Empty\n", tokens=40, overlap=0)
    assert all("x sentence" in c.text for c in chunks)


@pytest.mark.parametrize(("tokens", "overlap"), [(8, 0), (64, 33), (64, -1)])
def test_config_is_validated(tokens: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        ChunkerConfig(tokens, overlap)
