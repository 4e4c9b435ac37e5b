"""Documents -> Chunks, following structure first: pages, headings, paragraphs, then sentences.

Sizes are in the embedder's own tokens, so a chunk never exceeds what the model reads (no silent
truncation). A paragraph that fits is never split: when it does not fit in the current chunk, a
new chunk starts with it. Only a paragraph larger than a whole chunk is cut, at sentence (or line,
for lists and tables) boundaries, and those cuts carry ``overlap`` tokens of trailing sentences so
a fact on the boundary is whole in one of the two chunks. Every chunk is an exact character span
of the document's text, with its heading path and page.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ingest.loaders import heading_title
from rag.errors import ConfigError
from rag.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+)$")  # no lazy group: see ingest.loaders
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_LIST_LINE = re.compile(r"^[ \t]*([-*+•|]|\d+[.)])[ \t]")
# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_WORD = re.compile(r"\S+")
#: Formats whose ``#`` lines are headings (loaders rewrite rst, html and docx headings so).
_STRUCTURED = frozenset({"markdown", "rst", "html", "docx"})


@dataclass(frozen=True)
class ChunkerConfig:
    chunk_tokens: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ConfigError(f"chunk_tokens must be at least 16, got {self.chunk_tokens}")
        if not 0 <= self.overlap <= self.chunk_tokens // 2:
            raise ConfigError(
                f"overlap must be between 0 and half of chunk_tokens ({self.chunk_tokens // 2}), "
                f"got {self.overlap}"
            )


@dataclass(frozen=True)
class _Piece:
    """A span of text the packer places whole: a heading, a paragraph, a sentence or a line."""

    start: int
    end: int
    tokens: int
    headings: tuple[str, ...]
    page: int | None
    heading: bool = False
    #: Which paragraph it belongs to; split pieces of one paragraph share it.
    block: int = 0
    #: Cut from a paragraph too large for one chunk (only these carry overlap).
    split: bool = False


def chunk_document(
    document: Document, count_tokens: Callable[[str], int], config: ChunkerConfig
) -> list[Chunk]:
    """The document's chunks, in order, with ``id=0`` (the store assigns ids)."""
    pieces = _pieces(document, count_tokens, config.chunk_tokens)
    return [
        _chunk(document, group)
        for group in _pack(pieces, config.chunk_tokens, config.overlap)
        if any(not p.heading for p in group) or len(pieces) == len(group)
    ]


def _chunk(document: Document, group: Sequence[_Piece]) -> Chunk:
    start, end = group[0].start, group[-1].end
    first_body = next((p for p in group if not p.heading), group[0])
    return Chunk(
        id=0,
        doc_id=document.id,
        text=document.text[start:end],
        heading_path=first_body.headings,
        page=group[0].page,
        start=start,
        end=end,
        title=document.title,
        source=document.source,
    )


# -- structure -------------------------------------------------------------------------------------


def _blocks(text: str, structured: bool) -> Iterator[tuple[int, int, int]]:
    """``(start, end, heading level or 0)`` for each heading line and paragraph.

    Paragraphs are separated by blank lines; a fenced code block is one paragraph even with
    blank lines inside, and ``#`` lines inside it are not headings.
    """
    pos = 0
    para_start: int | None = None
    para_end = 0
    in_fence = False
    for line in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(line)
        stripped = line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = structured and not in_fence and _HEADING.match(stripped)
        if (not stripped and not in_fence) or heading:
            if para_start is not None:
                yield para_start, para_end, 0
                para_start = None
            if heading:
                yield line_start, line_start + len(line.rstrip()), len(heading.group(1))
            continue
        if para_start is None:
            para_start = line_start + (len(line) - len(line.lstrip()))
        para_end = line_start + len(line.rstrip())
    if para_start is not None:
        yield para_start, para_end, 0


def _pieces(document: Document, count: Callable[[str], int], budget: int) -> list[_Piece]:
    text = document.text
    structured = document.metadata.get("format", "markdown") in _STRUCTURED
    page_starts: list[int] = list(document.metadata.get("page_starts") or [])
    stack: list[tuple[int, str]] = []
    pieces: list[_Piece] = []

    def page_of(offset: int) -> int | None:
        return bisect.bisect_right(page_starts, offset) if page_starts else None

    for block, (start, end, level) in enumerate(_blocks(text, structured)):
        if level:
            stack = [(lvl, title) for lvl, title in stack if lvl < level]
            match = _HEADING.match(text[start:end].strip())
            title = heading_title(match.group(2)).strip() if match else text[start:end]
            stack.append((level, title))
        headings = tuple(title for _, title in stack)
        tokens = count(text[start:end])
        if level or tokens <= budget:
            pieces.append(_Piece(start, end, tokens, headings, page_of(start), bool(level), block))
            continue
        for s, e, n in _split(text, start, end, count, budget):
            pieces.append(_Piece(s, e, n, headings, page_of(s), block=block, split=True))
    return pieces


def _split(
    text: str, start: int, end: int, count: Callable[[str], int], budget: int
) -> Iterator[tuple[int, int, int]]:
    """Cut an oversized paragraph into lines (lists, tables) or sentences, then words.

    Yields ``(start, end, tokens)``: each span is counted once.
    """
    para = text[start:end]
    lines = para.split("\n")
    if len(lines) > 1 and sum(bool(_LIST_LINE.match(x)) for x in lines) * 2 >= len(lines):
        spans = list(_line_spans(para))
    else:
        spans = list(_sentence_spans(para))
    for s, e in spans:
        tokens = count(para[s:e])
        if tokens <= budget:
            yield start + s, start + e, tokens
        else:
            yield from _word_windows(text, start + s, start + e, count, budget)


def _line_spans(para: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for line in para.split("\n"):
        if line.strip():
            lead = len(line) - len(line.lstrip())
            yield pos + lead, pos + len(line.rstrip())
        pos += len(line) + 1


def _sentence_spans(para: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for match in _SENTENCE_END.finditer(para):
        if match.start() > pos:
            yield pos, match.start()
        pos = match.end()
    if para[pos:].strip():
        yield pos, len(para.rstrip())


def _word_windows(
    text: str, start: int, end: int, count: Callable[[str], int], budget: int
) -> Iterator[tuple[int, int, int]]:
    """A sentence longer than a chunk, cut between words (a word longer than a chunk alone)."""
    window_start: int | None = None
    window_end = start
    used = 0
    for word in _WORD.finditer(text, start, end):
        tokens = count(word.group())
        if window_start is not None and used + tokens > budget:
            yield window_start, window_end, used
            window_start, used = None, 0
        if window_start is None:
            window_start = word.start()
        window_end = word.end()
        used += tokens
    if window_start is not None:
        yield window_start, window_end, used


# -- packing ---------------------------------------------------------------------------------------


def _pack(pieces: Sequence[_Piece], budget: int, overlap: int) -> Iterator[list[_Piece]]:
    """Group pieces into chunks of at most ``budget`` tokens.

    A new chunk starts at a page change, at a heading once the current chunk is half full, or
    when the next paragraph does not fit. Cuts inside an oversized paragraph repeat its last
    sentences (up to ``overlap`` tokens) at the start of the next chunk.
    """
    group: list[_Piece] = []
    used = 0
    for piece in pieces:
        if group and (
            piece.page != group[-1].page
            or (piece.heading and used >= budget // 2)
            or used + piece.tokens > budget
        ):
            carried = _overlap(group, piece, overlap, budget)
            yield group
            group, used = carried, sum(p.tokens for p in carried)
        group.append(piece)
        used += piece.tokens
    if group:
        yield group


def _overlap(group: Sequence[_Piece], nxt: _Piece, overlap: int, budget: int) -> list[_Piece]:
    """Trailing split sentences of ``group`` to repeat before ``nxt`` (same paragraph only)."""
    if not (nxt.split and overlap and group[-1].block == nxt.block and group[-1].page == nxt.page):
        return []
    carried: list[_Piece] = []
    total = 0
    for piece in reversed(group):
        if piece.block != nxt.block or total + piece.tokens > overlap:
            break
        carried.insert(0, piece)
        total += piece.tokens
    if total + nxt.tokens > budget or len(carried) == len(group):
        return []
    return carried
