"""The index's write side: stage a copy of the live generation, change it, publish it atomically.

Why snapshots: FAISS and SQLite cannot share a transaction, and a half-written FAISS file is
unusable. So a writer copies the live generation into ``tmp-*``, applies every change there (with
SQLite's journal off: the copy is thrown away on a crash anyway), fsyncs it, renames it to the
next ``gen-*`` and replaces ``CURRENT`` with ``os.replace``. ``kill -9`` at any moment leaves
``CURRENT`` naming either the old generation or the new one; leftovers are removed by the next
writer. One writer at a time: ``DIR/.lock`` is held with ``flock``, which the kernel releases
when the process dies, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ConfigError, IndexLocked
from rag.postings import write_postings
from rag.store import DOCUMENT_COLUMNS, DocumentInfo, document_from_row
from rag.store_layout import (
    CURRENT,
    DATABASE,
    GEN_PREFIX,
    LOCK,
    MANIFEST,
    POSTINGS,
    SCHEMA,
    TMP_PREFIX,
    VECTORS,
    Manifest,
    fsync_dir,
    fsync_file,
    generation_name,
    generation_number,
    now_iso,
    read_current,
    write_durably,
)
from rag.types import Chunk, Document
from rag.vectors import FaissIndex, load_vector_index, new_vector_index, save_vector_index

if TYPE_CHECKING:
    import numpy as np


class WriterLock:
    """An exclusive ``flock`` on ``DIR/.lock``: at once, or within ``wait_s`` seconds (another
    server replica may be writing: its write takes seconds)."""

    def __init__(self, root: Path, wait_s: float = 0.0) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        os.close(self._fd)
        self._fd = None
        raise IndexLocked(
            f"another process is writing to the index at {root}; wait for it to finish "
            "and run the command again"
        )

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class IndexWriter:
    """Changes to one index folder, invisible to readers until ``commit()``.

    Use as a context manager: leaving the block without ``commit()`` (or with an exception)
    discards the staged copy. The constructor takes the lock, so a second writer fails fast
    with IndexLocked before any work is done (or waits up to ``wait_s`` seconds for it).
    """

    def __init__(self, root: Path, *, wait_s: float = 0.0) -> None:
        self.root = Path(root)
        self._stage: Path | None = None
        self._db: sqlite3.Connection | None = None
        self._vectors: FaissIndex | None = None
        self._next_id = 1
        self._pending_ids: list[np.ndarray] = []
        self._pending_vectors: list[np.ndarray] = []
        self._pending_removals: list[int] = []
        #: Chunks in the index after ``commit()``.
        self.chunk_total = 0
        self._lock: WriterLock | None = WriterLock(self.root, wait_s)
        try:
            self._remove_leftovers()
            self.live = read_current(self.root)
            self.manifest: Manifest | None = (
                Manifest.from_file(self.root / self.live / MANIFEST) if self.live else None
            )
        except BaseException:
            self.release()
            raise

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- staging --------------------------------------------------------------------------------

    def begin(self, manifest: Manifest, *, reindex: bool = False) -> None:
        """Stage a copy of the live generation (or an empty one) to write ``manifest`` into.

        An existing index built with another embedder is refused unless ``reindex``; a different
        vector-index kind is converted from the stored vectors.
        """
        if self._stage is not None:
            raise ConfigError("this writer has already begun")
        old = self.manifest
        if old is not None and not reindex:
            old.require_embedder(manifest.embedder, manifest.dimension, where=self.root)
            manifest.created = old.created
        manifest.created = manifest.created or now_iso()
        self.manifest = manifest
        self._stage = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.root))
        self._stage.chmod(0o755)  # mkdtemp makes it private; readers may be other users
        db_path = self._stage / DATABASE
        if self.live is not None and old is not None and not reindex:
            shutil.copyfile(self.root / self.live / DATABASE, db_path)
            vectors = load_vector_index(
                self.root / self.live / VECTORS, old.vector_index, old.dimension
            )
            if old.vector_index != manifest.vector_index:
                vectors = self._converted(vectors, manifest.vector_index)
            self._db = sqlite3.connect(db_path)
        else:
            vectors = new_vector_index(manifest.vector_index, manifest.dimension)
            self._db = sqlite3.connect(db_path)
            self._db.executescript(SCHEMA)
        self._vectors = vectors
        # The staged copy is discarded on a crash, so SQLite's own crash safety is pure cost.
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("BEGIN")
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        self._next_id = (row[0] if row else 0) + 1

    @staticmethod
    def _converted(vectors: FaissIndex, kind: str) -> FaissIndex:
        ids = vectors.ids()
        target = new_vector_index(kind, vectors.dimension)
        target.add(ids, vectors.vectors(ids))
        return target

    def _staged(self) -> tuple[sqlite3.Connection, FaissIndex]:
        if self._db is None or self._vectors is None:
            raise ConfigError("call begin() before changing the index")
        return self._db, self._vectors

    # -- changes --------------------------------------------------------------------------------

    def documents(self) -> dict[str, DocumentInfo]:
        """The staged documents by id (what incremental ingestion compares against)."""
        db, _ = self._staged()
        rows = db.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents").fetchall()
        return {row[0]: document_from_row(row) for row in rows}

    def remove_document(self, doc_id: str) -> int:
        """Drop a document and its chunks; returns how many chunks went."""
        db, _ = self._staged()
        ids = [row[0] for row in db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        if ids:
            db.execute(
                "DELETE FROM chunks_fts WHERE rowid IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        self._pending_removals.extend(ids)
        return len(ids)

    def add_document(
        self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> list[int]:
        """Insert a document (replacing one with its id) with its chunks and their vectors."""
        import numpy as np

        db, _ = self._staged()
        assert self.manifest is not None  # begin() set it
        if len(chunks) != len(vectors):
            raise ConfigError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if len(chunks):
            self.manifest.require_embedder(dimension=vectors.shape[1], where=self.root)
        self.remove_document(document.id)
        ids = list(range(self._next_id, self._next_id + len(chunks)))
        self._next_id += len(chunks)
        db.execute(
            f"INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                document.id,
                document.source,
                document.title,
                document.content_hash,
                json.dumps(document.metadata, ensure_ascii=False),
                now_iso(),
                len(chunks),
            ),
        )
        db.executemany(
            "INSERT INTO chunks (id, doc_id, ord, text, heading_path, page, start_char, end_char)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    chunk_id,
                    document.id,
                    n,
                    chunk.text,
                    json.dumps(list(chunk.heading_path), ensure_ascii=False),
                    chunk.page,
                    chunk.start,
                    chunk.end,
                )
                for n, (chunk_id, chunk) in enumerate(zip(ids, chunks, strict=True))
            ],
        )
        db.executemany(
            "INSERT INTO chunks_fts (rowid, text, headings) VALUES (?, ?, ?)",
            [
                (chunk_id, chunk.text, " > ".join((document.title, *chunk.heading_path)))
                for chunk_id, chunk in zip(ids, chunks, strict=True)
            ],
        )
        if ids:
            self._pending_ids.append(np.asarray(ids, dtype=np.int64))
            self._pending_vectors.append(np.asarray(vectors, dtype=np.float32))
        return ids

    # -- publishing -----------------------------------------------------------------------------

    def commit(self) -> str:
        """Publish the staged state as the next generation; returns its folder name."""
        import numpy as np

        db, index = self._staged()
        assert self._stage is not None and self.manifest is not None
        index.remove(self._pending_removals)
        if self._pending_ids:
            ids = np.concatenate(self._pending_ids)
            vectors = np.concatenate(self._pending_vectors)
            # A document added and replaced within this one writer: its first ids are gone.
            keep = ~np.isin(ids, np.asarray(self._pending_removals, dtype=np.int64))
            index.add(ids[keep], vectors[keep])
        db.commit()
        self.chunk_total = int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        with open(self._stage / POSTINGS, "wb") as out:
            write_postings(db, out)
        db.close()
        self._db = None
        self.manifest.updated = now_iso()
        save_vector_index(index, self._stage / VECTORS)
        write_durably(self._stage / MANIFEST, self.manifest.to_json())
        for name in (DATABASE, VECTORS, POSTINGS):
            fsync_file(self._stage / name)
        fsync_dir(self._stage)
        generation = generation_name(self._next_generation())
        os.rename(self._stage, self.root / generation)
        self._stage = None
        fsync_dir(self.root)
        pointer = self.root / f"{CURRENT}.next"
        write_durably(pointer, generation + "\n")
        os.replace(pointer, self.root / CURRENT)
        fsync_dir(self.root)
        self.live = generation
        self._remove_leftovers()
        return generation

    def _next_generation(self) -> int:
        numbers = [generation_number(p.name) for p in self.root.iterdir()]
        return max((n for n in numbers if n is not None), default=0) + 1

    def _remove_leftovers(self) -> None:
        """Delete staging folders and every generation but the live one (we hold the lock)."""
        live = read_current(self.root)
        for entry in self.root.iterdir():
            stale_gen = entry.name.startswith(GEN_PREFIX) and entry.name != live
            staging = entry.name.startswith(TMP_PREFIX) and entry != self._stage
            if entry.is_dir() and (stale_gen or staging):
                shutil.rmtree(entry, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.root / f"{CURRENT}.next").unlink()

    def release(self) -> None:
        """Discard anything uncommitted and free the lock."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
