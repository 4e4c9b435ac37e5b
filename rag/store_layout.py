"""The index folder on disk: file names, the manifest, the SQLite schema, durable writes.

A folder holds generations; ``CURRENT`` names the live one. A generation never changes once
published, so readers open it immutable and writers build the next one beside it (see
``rag.store_write``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from rag.errors import EmbedderMismatch, IndexCorrupt, IndexNotFound

FORMAT_VERSION = 1
CURRENT = "CURRENT"
LOCK = ".lock"
GEN_PREFIX = "gen-"
TMP_PREFIX = "tmp-"
MANIFEST = "manifest.json"
DATABASE = "chunks.sqlite"
VECTORS = "vectors.faiss"
#: The keyword postings (``rag.postings``); absent from generations written before them.
POSTINGS = "keyword.npz"
#: The FTS5 tokenizer of ``chunks_fts`` (query words are tokenized by it too).
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"
#: What computed the vectors of an index whose manifest predates the ``encoder`` field.
OLD_ENCODER = "torch-fp32"

_GEN_RE = re.compile(r"^gen-(\d{6,})$")

SCHEMA = f"""
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(id),
    ord INTEGER NOT NULL,
    text TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    page INTEGER,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL
);
CREATE INDEX chunks_by_doc ON chunks(doc_id, ord);
-- A regular (not external-content) FTS table: it keeps its own copy of the text, so deletes need
-- no old values and check() can compare its rowids with the chunk ids.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, headings, tokenize = '{FTS_TOKENIZE}'
);
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """What an index was built with; a reader needs the same embedder to query it."""

    embedder: str
    dimension: int
    chunk_tokens: int
    chunk_overlap: int
    vector_index: str = "flat"
    normalized: bool = True
    #: The encoders that computed the vectors (``rag.embed.ENCODERS``, joined by "+" when several
    #: wrote: their vectors share an index); "" when not recorded. Manifests from before the field
    #: read as "torch-fp32", the only encoder there was.
    encoder: str = ""
    format_version: int = FORMAT_VERSION
    created: str = ""
    updated: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def with_encoder(self, encoder: str) -> Manifest:
        """This manifest once ``encoder`` has written vectors into the index."""
        written = {name for name in self.encoder.split("+") if name} | {encoder}
        return replace(self, encoder="+".join(sorted(written)))

    def require_embedder(
        self, name: str | None = None, dimension: int | None = None, *, where: object = None
    ) -> None:
        """Refuse an embedder other than the one this index was built with, known by its
        ``name`` or by the ``dimension`` of its vectors (all a query vector tells)."""
        if name in (None, self.embedder) and dimension in (None, self.dimension):
            return
        got = repr(name) if name is not None else f"one giving {dimension}-d vectors"
        folder = "DIR" if where is None else where
        raise EmbedderMismatch(
            f"the index{'' if where is None else f' at {where}'} was built with embedder "
            f"{self.embedder!r} ({self.dimension}-d), not {got}: use {self.embedder!r} "
            f"(`--embedder {self.embedder}`), or rebuild the index with `rag ingest --reindex "
            f"--embedder {name or 'NAME'} PATH... --index {folder}`"
        )

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in fields(cls)}
            manifest = cls(
                **{"encoder": OLD_ENCODER, **{k: v for k, v in raw.items() if k in known}}
            )
        except (OSError, ValueError, TypeError) as error:
            raise IndexCorrupt(
                f"cannot read {path}: {error}; rebuild with `rag ingest ... --reindex`"
            ) from None
        if manifest.format_version > FORMAT_VERSION:
            raise IndexCorrupt(
                f"{path} has format {manifest.format_version}; this version reads up to "
                f"{FORMAT_VERSION}: upgrade the package or rebuild with `--reindex`"
            )
        return manifest


def generation_name(number: int) -> str:
    return f"{GEN_PREFIX}{number:06d}"


def generation_number(name: str) -> int | None:
    match = _GEN_RE.match(name)
    return int(match.group(1)) if match else None


def read_current(root: Path) -> str | None:
    """The live generation's folder name, or None when the folder holds no published index."""
    try:
        name = (root / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    if generation_number(name) is None:
        raise IndexCorrupt(f"{root / CURRENT} names {name!r}, not a generation folder")
    return name


def not_found(root: Path) -> IndexNotFound:
    return IndexNotFound(f"no index at {root}: build one with `rag ingest PATH... --index {root}`")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection to a published (immutable) database: no locks, no journal."""
    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
