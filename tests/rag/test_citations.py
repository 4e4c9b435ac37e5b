"""Citation markers in every shape models write them, and refusal detection."""

from __future__ import annotations

import pytest

from rag.citations import is_refusal, parse_markers, resolve_citations, strip_markers
from rag.types import Chunk


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris [1].", [1]),
        ("A [1][2] and B [2].", [1, 2]),
        ("See [1, 3] and [2; 4].", [1, 3, 2, 4]),
        ("Ranges [1-3] and [5–6].", [1, 2, 3, 5, 6]),
        ("Spaces [ 2 ] and [1 and 4].", [2, 1, 4]),
        ("No markers, a list [a] or [1.5] or a year range [1990-2020].", [1990]),
        ("", []),
    ],
)
def test_parse_markers(text: str, expected: list[int]) -> None:
    assert parse_markers(text) == expected


def test_markers_map_to_context_and_invalid_ones_are_flagged() -> None:
    context = [Chunk(id=7, doc_id="a.md", text="a"), Chunk(id=9, doc_id="b.md", text="b")]
    citations, invalid = resolve_citations("A [2]. B [1][3]. C [0].", context)
    assert [(c.marker, c.chunk.id) for c in citations] == [(2, 9), (1, 7)]
    assert invalid == [3, 0]


def test_strip_markers() -> None:
    assert strip_markers("Two years [2]. Also this [1, 2].") == "Two years. Also this."


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I don't know.", True),
        ("I don’t know", True),
        ("i do not know the answer.", True),
        ("  ", True),
        ("I don't know. The passages talk about leave.", True),
        ("25 days [1].", False),
        ("Staff know the policy [1].", False),
    ],
)
def test_refusal_detection(text: str, refused: bool) -> None:
    assert is_refusal(text, "I don't know.") is refused


def test_a_custom_refusal_is_detected() -> None:
    assert is_refusal("Not in the documents.", "Not in the documents.")
    assert not is_refusal("Not in the documents.", "I don't know.")
