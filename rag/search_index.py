"""The search side of an index: what retrieval, the pipeline and the evaluation read from one.

`rag.store.Index` (FAISS + SQLite on disk) is the implementation; tests use an in-memory one.
Writing, integrity checks and the document listing stay on the concrete index (the ingester and
the server hold that one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from rag.store_layout import Manifest
    from rag.types import Chunk


class SearchIndex(Protocol):
    #: What the index was built with (the embedder a query must use).
    manifest: Manifest

    def dense_search(
        self, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """``(chunk id, cosine)`` pairs, best first, among ``allowed`` ids when given."""
        ...

    def similarities(self, vector: np.ndarray, ids: Iterable[int]) -> list[tuple[int, float]]:
        """``(chunk id, cosine)`` of ``vector`` with each of ``ids``' stored vectors, without a
        search (the relevance floor's cosines for keyword-only hits); absent ids left out."""
        ...

    def keyword_search(
        self, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """``(chunk id, score)`` pairs, higher is better; any user text is safe."""
        ...

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """Chunks in the order of ``ids``; ids not in the index are left out."""
        ...

    def chunk_ids_matching(
        self, source_glob: str | None = None, doc_ids: Sequence[str] | None = None
    ) -> set[int]:
        """Ids of the chunks whose document matches the glob and/or is in ``doc_ids``."""
        ...

    def all_chunks(self) -> Iterator[Chunk]:
        """Every chunk, document by document (the corpus, for fine-tuning and cost figures)."""
        ...
