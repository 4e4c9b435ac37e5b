"""The typed records that travel between stages.

Document -> Chunk -> (vectors + rows) -> Hit -> prompt -> Answer. Stages pass these, never dicts
or tuples with positional meaning.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal


def content_hash(text: str) -> str:
    """The sha256 of a document's text: what incremental ingestion compares."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """One source file (or one record of a JSON file), as text.

    ``id`` is stable across runs (the path relative to the ingested folder, or a record id), so a
    changed file replaces its own chunks.
    """

    id: str
    source: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.text))


@dataclass(frozen=True)
class Chunk:
    """A span of a document small enough to embed and to quote.

    ``id`` is the row id in SQLite and the id in the FAISS ``IndexIDMap2``. ``start``/``end`` are
    character offsets into the document's text. ``title`` and ``source`` repeat the document's,
    so a citation needs no second lookup.
    """

    id: int
    doc_id: str
    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    start: int = 0
    end: int = 0
    title: str = ""
    source: str = ""


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk. ``ranks`` holds each ranker's 1-based rank (``dense``, ``keyword``).

    ``score`` is the score the hits are ordered by (fused, cosine or BM25, per the search mode);
    ``scores`` holds each ranker's own score (``dense``: cosine, ``keyword``: BM25) when known.
    """

    chunk: Chunk
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Citation:
    """A ``[n]`` marker in an answer, resolved to the context block (chunk) it points at."""

    marker: int
    chunk: Chunk
    #: Not written by the model: matched by the answer quoting this block (small models often
    #: copy a passage without the ``[n]`` they were asked for).
    inferred: bool = False


@dataclass
class Timings:
    """Milliseconds spent in each stage of one answer."""

    retrieve_ms: float = 0.0
    prompt_ms: float = 0.0
    first_token_ms: float | None = None
    total_ms: float = 0.0


@dataclass
class Answer:
    """What the pipeline returns for one question.

    ``dropped`` lists what the token budget left out (``"demo: ..."``, ``"context [4]: ..."``,
    ``"history: 2 turns"``), so nothing is truncated silently. ``invalid_markers`` are ``[n]``
    markers the model wrote that point at no context block; they are removed from ``citations``.
    """

    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    hits: list[Hit] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    query: str = ""
    dropped: list[str] = field(default_factory=list)
    invalid_markers: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    #: What the user should know about this answer's reliability (e.g. a copied demonstration).
    warnings: list[str] = field(default_factory=list)
