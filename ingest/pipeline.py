"""Ingestion: files -> documents -> chunks -> vectors + rows, incrementally and crash-safely.

A content hash per document decides the work: unchanged documents cost nothing (the embedder is
not even loaded when nothing changed), a changed one has its chunks replaced, and documents whose
files are gone from an ingested folder are pruned. All changes of one run are published as one
new index generation, so a crash leaves the index as it was before the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ingest.bounded import BoundedReader
from ingest.chunker import ChunkerConfig, chunk_document
from ingest.file_limits import FileLimits
from ingest.loaders import SourceFile, discover
from rag.errors import Cancelled, ConfigError, InputError
from rag.models import DEFAULT_EMBEDDER
from rag.store import DocumentInfo, read_documents
from rag.store_layout import POSTINGS, Manifest, not_found
from rag.store_write import IndexWriter
from rag.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

    from rag.embed import Embedder

DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP = 32
EMBED_BATCH = 32


@dataclass
class IngestSummary:
    """What one run did. ``chunks`` is the index's total after the run; ``embedded`` this run's."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    embedded: int = 0
    #: Chunks whose vectors came from an interrupted earlier run (``--ray``) instead.
    resumed: int = 0
    index: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = [{"path": path, "reason": reason} for path, reason in self.failed]
        return data


@dataclass
class _Plan:
    """The diff between the files on disk and the index."""

    new: list[Document] = field(default_factory=list)
    changed: list[Document] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest. The chunk sizes and vector index kind default to the index's own settings
    (256/32/flat for a new index); other chunk sizes need ``reindex``, another vector index kind
    is converted in place. ``chunk_tokens`` is capped at what the embedder reads."""

    #: The embedder of a new index, when no loaded one is given (a registry name or a folder).
    embedder_name: str = DEFAULT_EMBEDDER
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    #: Remove documents whose files are gone from an ingested folder.
    prune: bool = True
    #: Rebuild from scratch (another embedder or chunk sizes).
    reindex: bool = False
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    vector_index: str | None = None
    #: The text field of JSON/JSONL records.
    json_field: str = "text"
    #: What one file may cost (bytes, text, nesting, seconds, memory); past it, it fails.
    limits: FileLimits = field(default_factory=FileLimits)
    #: Put before every document id (uploads: ``uploads/``), so they cannot take a corpus id.
    id_prefix: str = ""
    #: Set by another thread to stop the run before it commits (the server: the client left).
    stop: threading.Event | None = None
    #: Show a progress bar while embedding.
    progress: bool = False
    device: str | None = None
    #: Where the int8 encoder's graph is cached (None: the user cache).
    cache_dir: Path | None = None
    #: Wait this long for another writer (a server replica) to finish; 0 fails at once.
    lock_wait_s: float = 0.0


#: What loading one file gave: its documents, or why it was skipped.
LoadOutcome = list[Document] | str


@dataclass(frozen=True)
class EmbedderFacts:
    """What the committer needs to know about the embedder before it writes."""

    dimension: int
    max_tokens: int
    #: Which encoders computed the vectors (``onnx-int8``, ``torch-fp32``; ``+`` between several).
    encoder: str


class IngestWorkers(Protocol):
    """Where the heavy work of a run happens: this process (`LocalWorkers`) or a Ray cluster
    (`ingest.ray_ingest`). The committer (`ingest_paths`) plans and writes either way."""

    def load(
        self, files: Sequence[SourceFile], options: IngestOptions, stored: Mapping[str, str]
    ) -> list[LoadOutcome]:
        """Each file's outcome, in order. A document whose hash equals ``stored[id]`` may come
        back without its text (it is unchanged and will not be read)."""
        ...

    def prepare(self, name: str, options: IngestOptions) -> EmbedderFacts:
        """Load the embedder ``name``: called only when something is to be embedded."""
        ...

    def embed(
        self, documents: Sequence[Document], config: ChunkerConfig, progress: bool
    ) -> list[tuple[list[Chunk], np.ndarray]]:
        """Chunk and embed ``documents``: their chunks and vectors, in order."""
        ...


class LocalWorkers:
    """Everything in this process, with ``embedder`` or the one named (loaded on demand)."""

    def __init__(
        self, embedder: Embedder | None = None, stop: threading.Event | None = None
    ) -> None:
        self.embedder = embedder
        self.stop = stop

    def load(
        self, files: Sequence[SourceFile], options: IngestOptions, stored: Mapping[str, str]
    ) -> list[LoadOutcome]:
        return load_outcomes(files, options)

    def prepare(self, name: str, options: IngestOptions) -> EmbedderFacts:
        self.embedder = self.embedder or _load_embedder(name, options.device, options.cache_dir)
        self.embedder.warm_up()
        return EmbedderFacts(
            self.embedder.dimension, self.embedder.max_tokens, self.embedder.encoder
        )

    def embed(
        self, documents: Sequence[Document], config: ChunkerConfig, progress: bool
    ) -> list[tuple[list[Chunk], np.ndarray]]:
        assert self.embedder is not None  # prepare() loaded it
        return chunk_and_embed(self.embedder, documents, config, progress, self.stop)


def load_outcomes(files: Sequence[SourceFile], options: IngestOptions) -> list[LoadOutcome]:
    """Each file's documents, read within ``options.limits`` in a worker process (so a
    hostile file's time and memory are bounded), or the reason it was skipped."""
    outcomes: list[LoadOutcome] = []
    with BoundedReader(options.limits, json_field=options.json_field, stop=options.stop) as reader:
        for file in files:
            try:
                outcomes.append(reader.read(file))
            except InputError as error:
                outcomes.append(str(error))
    return outcomes


def chunk_and_embed(
    embedder: Embedder,
    documents: Sequence[Document],
    config: ChunkerConfig,
    progress: bool,
    stop: threading.Event | None = None,
) -> list[tuple[list[Chunk], np.ndarray]]:
    """Each document's chunks and their vectors, embedded together in length-sorted batches."""
    chunked = [chunk_document(doc, embedder.count_tokens, config) for doc in documents]
    vectors = embed_chunks(embedder, [c for chunks in chunked for c in chunks], progress, stop)
    out, offset = [], 0
    for chunks in chunked:
        out.append((chunks, vectors[offset : offset + len(chunks)]))
        offset += len(chunks)
    return out


def ingest_paths(
    paths: Sequence[Path],
    index_dir: Path,
    options: IngestOptions = IngestOptions(),
    *,
    embedder: Embedder | None = None,
    workers: IngestWorkers | None = None,
) -> IngestSummary:
    """Bring the index at ``index_dir`` in line with ``paths`` (files and folders), embedding
    with ``embedder`` when given (else the one ``options`` names, loaded only if needed).

    ``workers`` runs the loading, chunking and embedding elsewhere (a Ray cluster); this
    process stays the one committer: it holds the lock, checks the embedder, plans and writes.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    files = discover(
        [Path(p) for p in paths],
        options.include,
        options.exclude,
        skip=index_dir,
        id_prefix=options.id_prefix,
    )
    summary = IngestSummary(index=str(index_dir))
    name = embedder.name if embedder is not None else options.embedder_name
    workers = workers or LocalWorkers(embedder, options.stop)
    with IndexWriter(index_dir, wait_s=options.lock_wait_s) as writer:
        old = None if options.reindex else writer.manifest
        manifest = _manifest(old, name, options)
        config = ChunkerConfig(manifest.chunk_tokens, manifest.chunk_overlap)
        stored = _stored_documents(index_dir) if old is not None else {}
        hashes = {doc_id: doc.content_hash for doc_id, doc in stored.items()}
        outcomes = workers.load(files, options, hashes)
        documents = _unique(files, outcomes, summary)
        plan = _plan(files, documents, stored, options.prune)
        converting = old is not None and old.vector_index != manifest.vector_index
        # An index written before the keyword postings gets them by a commit with no change.
        upgrading = writer.live is not None and not (index_dir / writer.live / POSTINGS).is_file()
        if not (plan.new or plan.changed or plan.remove or converting or upgrading or old is None):
            summary.unchanged = plan.unchanged
            summary.chunks = sum(d.chunks for d in stored.values())
            summary.seconds = time.perf_counter() - started
            return summary
        todo = plan.new + plan.changed
        if todo or old is None:
            facts = workers.prepare(name, options)
            manifest.dimension = facts.dimension
            for encoder in facts.encoder.split("+"):
                manifest = manifest.with_encoder(encoder)
            config = replace(config, chunk_tokens=min(config.chunk_tokens, facts.max_tokens))
        writer.begin(manifest, reindex=options.reindex)
        for doc_id in plan.remove:
            writer.remove_document(doc_id)
        if todo:
            for doc, (chunks, vectors) in zip(
                todo, workers.embed(todo, config, options.progress), strict=True
            ):
                writer.add_document(doc, chunks, vectors)
                summary.embedded += len(chunks)
        _check_stop(options.stop)
        writer.commit()
        summary.chunks = writer.chunk_total
    summary.added, summary.updated = len(plan.new), len(plan.changed)
    summary.removed, summary.unchanged = len(plan.remove), plan.unchanged
    summary.seconds = time.perf_counter() - started
    return summary


def remove_documents(
    index_dir: Path, doc_ids: Sequence[str], *, lock_wait_s: float = 0.0
) -> IngestSummary:
    """Delete documents by id; ids not in the index are reported as failed."""
    started = time.perf_counter()
    summary = IngestSummary(index=str(index_dir))
    with IndexWriter(Path(index_dir), wait_s=lock_wait_s) as writer:
        if writer.manifest is None:
            raise not_found(Path(index_dir))
        stored = _stored_documents(Path(index_dir))
        present = [d for d in dict.fromkeys(doc_ids) if d in stored]
        summary.failed = [(d, "not in the index") for d in doc_ids if d not in stored]
        summary.chunks = sum(d.chunks for d in stored.values())
        if present:
            writer.begin(replace(writer.manifest))
            for doc_id in present:
                writer.remove_document(doc_id)
            writer.commit()
            summary.chunks = writer.chunk_total
        summary.removed = len(present)
    summary.seconds = time.perf_counter() - started
    return summary


def embed_chunks(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    progress: bool,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """Vectors for ``chunks`` in their order, embedded longest first in fixed-size batches.

    Sorting by length keeps padding (wasted model work) small, as sentence-transformers does
    inside one ``encode`` call; batching here lets the progress bar show chunks/s as it goes.
    """
    import numpy as np
    from tqdm import tqdm

    texts = [c.text for c in chunks]
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with tqdm(total=len(texts), unit="chunk", desc="embedding", disable=not progress) as bar:
        for start in range(0, len(order), EMBED_BATCH):
            _check_stop(stop)
            batch = order[start : start + EMBED_BATCH]
            out[batch] = embedder.embed_batch([texts[i] for i in batch])
            bar.update(len(batch))
    return out


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Cancelled("ingestion stopped before it committed: its request went away")


def _manifest(old: Manifest | None, embedder: str, options: IngestOptions) -> Manifest:
    if old is None:
        return Manifest(
            embedder=embedder,
            dimension=0,
            chunk_tokens=options.chunk_tokens or DEFAULT_CHUNK_TOKENS,
            chunk_overlap=(
                DEFAULT_OVERLAP if options.chunk_overlap is None else options.chunk_overlap
            ),
            vector_index=options.vector_index or "flat",
        )
    old.require_embedder(embedder)
    overlap = old.chunk_overlap if options.chunk_overlap is None else options.chunk_overlap
    asked = (options.chunk_tokens or old.chunk_tokens, overlap)
    if asked != (old.chunk_tokens, old.chunk_overlap):
        raise ConfigError(
            f"this index was chunked with --chunk-tokens {old.chunk_tokens} --overlap "
            f"{old.chunk_overlap}; pass the same values, or add --reindex to rebuild it with "
            f"{asked[0]}/{asked[1]}"
        )
    return replace(old, vector_index=options.vector_index or old.vector_index)


def _load_embedder(name: str, device: str | None, cache_dir: Path | None) -> Embedder:
    from rag.embed import load_embedder

    return load_embedder(name, device=device, cache_dir=cache_dir)


def _stored_documents(index_dir: Path) -> dict[str, DocumentInfo]:
    return {doc.id: doc for doc in read_documents(index_dir)}


def _unique(
    files: Sequence[SourceFile], outcomes: Sequence[LoadOutcome], summary: IngestSummary
) -> dict[SourceFile, list[Document]]:
    """Each readable file's documents; the others go to ``summary.failed`` with the reason."""
    loaded: dict[SourceFile, list[Document]] = {}
    seen: dict[str, Path] = {}
    for file, documents in zip(files, outcomes, strict=True):
        if isinstance(documents, str):
            summary.failed.append((str(file.path), documents))
            continue
        clash = next((seen[d.id] for d in documents if d.id in seen), None)
        if clash is not None:
            summary.failed.append(
                (
                    str(file.path),
                    f"duplicate document id {documents[0].id!r} (also {clash}); "
                    "ingest the folders separately or their common parent",
                )
            )
            continue
        seen.update({d.id: file.path for d in documents})
        loaded[file] = documents
    return loaded


def _plan(
    files: Sequence[SourceFile],
    loaded: dict[SourceFile, list[Document]],
    stored: dict[str, DocumentInfo],
    prune: bool,
) -> _Plan:
    plan = _Plan()
    fresh_ids = {d.id for documents in loaded.values() for d in documents}
    for documents in loaded.values():
        for doc in documents:
            old = stored.get(doc.id)
            if old is None:
                plan.new.append(doc)
            elif old.content_hash != doc.content_hash:
                plan.changed.append(doc)
            else:
                plan.unchanged += 1
    loaded_sources = {str(f.path) for f in loaded}
    # Records gone from a JSON file that was read again belong to a changed file: removed.
    plan.remove = [
        doc_id
        for doc_id, doc in stored.items()
        if doc.source in loaded_sources and doc_id not in fresh_ids
    ]
    if prune:
        roots = {f.root for f in files if f.root is not None}
        present = {str(f.path) for f in files}
        plan.remove += [
            doc_id
            for doc_id, doc in stored.items()
            if doc.source not in present and any(Path(doc.source).is_relative_to(r) for r in roots)
        ]
    return plan
