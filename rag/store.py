"""The on-disk index, read side: FAISS vectors + SQLite rows (documents, chunks, FTS5) + manifest.

``Index.open`` resolves ``DIR/CURRENT`` to a published generation and reads it; a generation never
changes after it is published, so a reader needs no lock and sees one consistent state however
long it stays open. ``is_stale()`` tells a long-lived reader (the server) that a newer generation
exists. Writes go through ``rag.store_write.IndexWriter``.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import IndexCorrupt
from rag.keyword import KeywordSearcher
from rag.search_index import SearchIndex
from rag.store_layout import (
    DATABASE,
    MANIFEST,
    POSTINGS,
    VECTORS,
    Manifest,
    connect_readonly,
    not_found,
    read_current,
)
from rag.types import Chunk
from rag.vectors import FaissIndex, load_vector_index

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CheckReport", "DocumentInfo", "Index", "Manifest"]

_OPEN_ATTEMPTS = 5

_CHUNK_COLUMNS = (
    "c.id, c.doc_id, c.text, c.heading_path, c.page, c.start_char, c.end_char, d.title, d.source"
)


@dataclass
class DocumentInfo:
    id: str
    source: str
    title: str
    content_hash: str
    chunks: int
    metadata: dict[str, Any]
    ingested_at: str


@dataclass
class CheckReport:
    """Whether FAISS, SQLite and the FTS table hold exactly the same chunk ids."""

    generation: str
    documents: int
    sqlite_chunks: int
    faiss_vectors: int
    fts_rows: int
    missing_in_faiss: list[int] = field(default_factory=list)
    missing_in_sqlite: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.problems or self.missing_in_faiss or self.missing_in_sqlite)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "generation": self.generation,
            "documents": self.documents,
            "sqlite_chunks": self.sqlite_chunks,
            "faiss_vectors": self.faiss_vectors,
            "fts_rows": self.fts_rows,
            "missing_in_faiss": self.missing_in_faiss[:100],
            "missing_in_sqlite": self.missing_in_sqlite[:100],
            "problems": self.problems,
        }


def chunk_from_row(row: Sequence[Any]) -> Chunk:
    return Chunk(
        id=row[0],
        doc_id=row[1],
        text=row[2],
        heading_path=tuple(json.loads(row[3])),
        page=row[4],
        start=row[5],
        end=row[6],
        title=row[7],
        source=row[8],
    )


def document_from_row(row: Sequence[Any]) -> DocumentInfo:
    return DocumentInfo(
        id=row[0],
        source=row[1],
        title=row[2],
        content_hash=row[3],
        metadata=json.loads(row[4]),
        ingested_at=row[5],
        chunks=row[6],
    )


DOCUMENT_COLUMNS = "id, source, title, content_hash, metadata, ingested_at, chunks"


def read_documents(path: Path) -> list[DocumentInfo]:
    """The live generation's documents, from SQLite alone (no FAISS load): for a writer's diff."""
    generation = read_current(Path(path))
    if generation is None:
        raise not_found(Path(path))
    db = connect_readonly(Path(path) / generation / DATABASE)
    try:
        rows = db.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY id").fetchall()
    finally:
        db.close()
    return [document_from_row(r) for r in rows]


class Index(SearchIndex):
    """One published generation of an index folder, open for reading (thread-safe)."""

    def __init__(
        self,
        path: Path,
        generation: str,
        manifest: Manifest,
        db: sqlite3.Connection,
        vectors: FaissIndex,
    ) -> None:
        self.path = path
        self.generation = generation
        self.manifest = manifest
        self._db = db
        self._vectors = vectors
        self._lock = threading.Lock()
        self._keyword = KeywordSearcher(self._query, path / generation / POSTINGS)

    @staticmethod
    def exists(path: Path) -> bool:
        return read_current(Path(path)) is not None

    @classmethod
    def open(cls, path: Path) -> Index:
        """Open the live generation; IndexNotFound (naming `rag ingest`) when there is none."""
        path = Path(path)
        for _ in range(_OPEN_ATTEMPTS):
            generation = read_current(path)
            if generation is None:
                raise not_found(path)
            folder = path / generation
            try:
                return cls._open_generation(path, generation, folder)
            except (FileNotFoundError, IndexCorrupt, sqlite3.Error) as error:
                # A writer may have published a newer generation and removed this one meanwhile;
                # if not, the error is real.
                if read_current(path) != generation:
                    continue
                if isinstance(error, IndexCorrupt):
                    raise
                raise IndexCorrupt(
                    f"{folder} is incomplete ({error}); rebuild with `rag ingest ... --reindex`"
                ) from None
        raise IndexCorrupt(f"{path / 'CURRENT'} names a generation that does not exist")

    @classmethod
    def _open_generation(cls, path: Path, generation: str, folder: Path) -> Index:
        manifest = Manifest.from_file(folder / MANIFEST)
        if not (folder / DATABASE).is_file():
            raise FileNotFoundError(folder / DATABASE)
        db = connect_readonly(folder / DATABASE)
        try:
            vectors = load_vector_index(folder / VECTORS, manifest.vector_index, manifest.dimension)
        except BaseException:
            db.close()
            raise
        return cls(path, generation, manifest, db, vectors)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def warm_up(self) -> None:
        """Load now what the first search would (the keyword postings: about a second at 100k
        chunks), so a server's first question does not pay for it."""
        self._keyword.postings()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- facts ----------------------------------------------------------------------------------

    def document_count(self) -> int:
        return int(self._query("SELECT count(*) FROM documents")[0][0])

    def chunk_count(self) -> int:
        return int(self._query("SELECT count(*) FROM chunks")[0][0])

    def documents(self) -> list[DocumentInfo]:
        rows = self._query(f"SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY id")
        return [document_from_row(r) for r in rows]

    def get_document(self, doc_id: str) -> DocumentInfo | None:
        rows = self._query(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?", (doc_id,))
        return document_from_row(rows[0]) if rows else None

    def is_stale(self) -> bool:
        """True when another generation has been published since this one was opened."""
        try:
            return read_current(self.path) != self.generation
        except IndexCorrupt:
            return True

    # -- chunks ---------------------------------------------------------------------------------

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """Chunks in the order of ``ids``; ids not in the index are left out."""
        if not ids:
            return []
        rows = self._query(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "WHERE c.id IN (SELECT value FROM json_each(?))",
            (json.dumps([int(i) for i in ids]),),
        )
        by_id = {row[0]: chunk_from_row(row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def all_chunks(self) -> Iterator[Chunk]:
        """Every chunk, document by document in order (for fine-tuning on the corpus)."""
        rows = self._query(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "ORDER BY c.doc_id, c.ord"
        )
        for row in rows:
            yield chunk_from_row(row)

    def chunk_ids_matching(
        self, source_glob: str | None = None, doc_ids: Sequence[str] | None = None
    ) -> set[int]:
        """Chunk ids of documents whose id or source matches the glob and/or are in ``doc_ids``."""
        wanted: set[str] | None = None
        if doc_ids is not None:
            wanted = set(doc_ids)
        if source_glob is not None:
            docs = self._query("SELECT id, source FROM documents")
            matching = {
                doc_id
                for doc_id, source in docs
                if fnmatch.fnmatchcase(doc_id, source_glob)
                or fnmatch.fnmatchcase(source, source_glob)
            }
            wanted = matching if wanted is None else wanted & matching
        if wanted is None:
            return {row[0] for row in self._query("SELECT id FROM chunks")}
        rows = self._query(
            "SELECT id FROM chunks WHERE doc_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(wanted)),),
        )
        return {row[0] for row in rows}

    # -- search ---------------------------------------------------------------------------------

    def dense_search(
        self, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """``(chunk id, cosine)`` pairs, best first."""
        self.manifest.require_embedder(dimension=vector.shape[-1], where=self.path)
        return self._vectors.search(vector, k, allowed)

    def similarities(self, vector: np.ndarray, ids: Iterable[int]) -> list[tuple[int, float]]:
        """``(chunk id, cosine)`` with the stored vectors of ``ids`` (no search); absent ids are
        left out."""
        self.manifest.require_embedder(dimension=vector.shape[-1], where=self.path)
        return self._vectors.similarities(vector, ids)

    def keyword_search(
        self, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """FTS5 bm25 ``(chunk id, score)`` pairs, higher is better; any user text is safe."""
        return self._keyword.search(query, k, allowed)

    # -- integrity ------------------------------------------------------------------------------

    def check(self) -> CheckReport:
        """Compare ids across FAISS, SQLite and FTS, and document chunk counts with the rows."""
        sqlite_ids = {row[0] for row in self._query("SELECT id FROM chunks")}
        fts_ids = {row[0] for row in self._query("SELECT rowid FROM chunks_fts")}
        faiss_ids_array = self._vectors.ids()
        faiss_ids = {int(i) for i in faiss_ids_array}
        report = CheckReport(
            generation=self.generation,
            documents=self.document_count(),
            sqlite_chunks=len(sqlite_ids),
            faiss_vectors=len(faiss_ids_array),
            fts_rows=len(fts_ids),
            missing_in_faiss=sorted(sqlite_ids - faiss_ids),
            missing_in_sqlite=sorted(faiss_ids - sqlite_ids),
        )
        if len(faiss_ids) != len(faiss_ids_array):
            report.problems.append("FAISS holds duplicate ids")
        if fts_ids != sqlite_ids:
            report.problems.append(
                f"the keyword index disagrees with the chunks table on "
                f"{len(fts_ids ^ sqlite_ids)} ids"
            )
        postings = self._keyword.postings()
        if postings is not None and {int(i) for i in postings.rowids} != fts_ids:
            report.problems.append("the keyword postings disagree with the keyword index")
        bad_counts = self._query(
            "SELECT d.id FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id "
            "GROUP BY d.id HAVING count(c.id) != d.chunks"
        )
        if bad_counts:
            report.problems.append(f"{len(bad_counts)} documents have wrong chunk counts")
        orphans = self._query(
            "SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)"
        )[0][0]
        if orphans:
            report.problems.append(f"{orphans} chunks belong to no document")
        if self._vectors.dimension != self.manifest.dimension:
            report.problems.append(
                f"FAISS holds {self._vectors.dimension}-d vectors; the manifest says "
                f"{self.manifest.dimension}"
            )
        return report
