"""Uploads: safe names, bounded work, one file at a time, and nothing left half-done by a crash.

A client names its file; that name must never choose where the bytes land. The name is reduced
to its last component and a safe alphabet, the suffix must be a kind the ingester reads, and the
resolved path is checked to lie in `DIR/uploads/` before anything is written.

Each version of an upload lives in its own folder, named by its content: ``uploads/<sha256
prefix>/<name>``. Its document id is ``uploads/<name>``, so an upload never takes the id of a
corpus document (`rag ingest` names a corpus file ``about.md``; an upload of ``about.md`` is
``uploads/about.md``, listed beside it), and the same name uploaded again replaces the earlier
upload. Because a new version goes into a new folder, the bytes the index points to are never
touched before the new version is committed: one that fails to read leaves the old document and
its file as they were.

Files are ingested one at a time. Each takes the app's write lock (first come, first served in
this process) and ``uploads/.lock`` (across worker processes), is placed, read within the
per-file bounds (`FileLimits`: size, text, nesting, seconds), embedded and committed, then gives
the locks back, so no upload holds the index for longer than one bounded file. A client that
disconnects stops the file being ingested before it commits, and the files after it are not
started.

`recover_uploads` runs at start-up: whatever lies in `uploads/` that the index does not point to
(the new version of a crash between placing and committing, the old one of a crash between
committing and clean-up) is removed, and so are staging folders (``tmp-*``) a killed writer left.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.errors import IndexLocked, IndexNotFound
from serve.http_errors import ApiError

if TYPE_CHECKING:
    from ingest.file_limits import FileLimits
    from ingest.pipeline import IngestSummary
    from rag.embed import Embedder

log = logging.getLogger("serve")

UPLOADS = "uploads"
#: The document ids of uploads start with this; corpus documents' never do.
ID_PREFIX = UPLOADS + "/"
#: What the ingester reads (ingest.loaders; it would read other names as plain text).
SUFFIXES = frozenset(
    {
        ".md",
        ".markdown",
        ".txt",
        ".text",
        ".rst",
        ".html",
        ".htm",
        ".pdf",
        ".docx",
        ".json",
        ".jsonl",
        ".ndjson",
    }
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 120
_CHUNK = 1 << 16
#: Hex digits of the content hash that name a version's folder.
_VERSION = 16
_LOCK_POLL_SECONDS = 0.05
#: How long an upload or deletion waits for the index lock held by another writer (a `rag
#: ingest`, or a replica of this server deleting).
LOCK_WAIT_S = 60.0


def uploads_dir(index_dir: Path) -> Path:
    return Path(index_dir) / UPLOADS


def safe_filename(name: str | None) -> str:
    """A file name that cannot leave its folder: last component, safe characters, known suffix."""
    raw = unicodedata.normalize("NFKC", name or "")
    base = re.split(r"[\\/]", raw)[-1].strip()
    cleaned = _UNSAFE.sub("_", base).lstrip(".-_")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or not stem:
        raise ApiError(
            400,
            f"Upload name {name!r} has no usable file name with a suffix "
            f"(accepted: {', '.join(sorted(SUFFIXES))}).",
            param="files",
            code="bad_filename",
        )
    suffix = "." + suffix.lower()
    if suffix not in SUFFIXES:
        raise ApiError(
            400,
            f"Cannot ingest {name!r}: unsupported type {suffix} "
            f"(accepted: {', '.join(sorted(SUFFIXES))}).",
            param="files",
            code="unsupported_file_type",
        )
    return stem[: _MAX_NAME - len(suffix)] + suffix


def inside(folder: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


@dataclass
class UploadResult:
    """What became of one uploaded file (no server paths: names and document ids only)."""

    name: str
    status: str
    ids: list[str] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "ids": self.ids}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class UploadBatch:
    """Every file's result and the totals, as the upload route answers them."""

    files: list[UploadResult] = field(default_factory=list)
    totals: dict[str, Any] = field(
        default_factory=lambda: {
            "added": 0,
            "updated": 0,
            "removed": 0,
            "unchanged": 0,
            "failed": [],
            "chunks": 0,
            "embedded": 0,
            "seconds": 0.0,
        }
    )

    def add(self, result: UploadResult, summary: IngestSummary | None) -> None:
        self.files.append(result)
        if result.reason is not None:
            self.totals["failed"].append({"path": result.name, "reason": result.reason})
        if summary is not None:
            for key in ("added", "updated", "removed", "unchanged", "embedded", "seconds"):
                self.totals[key] += getattr(summary, key)
            self.totals["chunks"] = summary.chunks

    @property
    def all_failed(self) -> bool:
        return bool(self.files) and all(f.status == "failed" for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "ingest.summary",
            "files": [f.to_dict() for f in self.files],
            "summary": self.totals,
        }


def check_sizes(files: Sequence[UploadFile], names: Sequence[str], budget: int) -> None:
    """400 for an empty file, 413 when all of them pass ``budget`` bytes; nothing is written."""
    total = 0
    for upload, name in zip(files, names, strict=True):
        upload.file.seek(0, os.SEEK_END)
        size = upload.file.tell()
        upload.file.seek(0)
        if size == 0:
            raise ApiError(400, f"{name!r} is empty.", param="files", code="empty_file")
        total += size
    if total > budget:
        raise ApiError(
            413,
            f"Upload too large: the limit is {budget} bytes for all files together.",
            param="files",
            code="request_too_large",
        )


async def ingest_uploads(
    request: Request,
    files: Sequence[UploadFile],
    index_dir: Path,
    *,
    write_lock: asyncio.Lock,
    budget: int,
    limits: FileLimits | None,
    embedder: Embedder | None,
) -> UploadBatch:
    """Check every file, then store and ingest them one by one (see the module doc).

    Raises `Cancelled` when the client leaves; the files committed before stay.
    """
    names = [safe_filename(f.filename) for f in files]  # refuse a bad name before writing any
    if len(set(names)) != len(names):
        raise ApiError(400, f"Two uploads share a name after sanitizing: {names}", param="files")
    await run_in_threadpool(check_sizes, files, names, budget)
    folder = uploads_dir(index_dir)
    batch = UploadBatch()
    for upload, name in zip(files, names, strict=True):
        async with write_lock, _uploads_lock(request, folder):
            stop = threading.Event()
            watcher = asyncio.ensure_future(_set_when_disconnected(request, stop))
            try:
                result, summary = await run_in_threadpool(
                    _store_and_ingest, upload, name, index_dir, limits, embedder, stop
                )
            finally:
                watcher.cancel()
        batch.add(result, summary)
    return batch


async def _set_when_disconnected(request: Request, stop: threading.Event) -> None:
    """Set ``stop`` when the client goes (the body was read: only a disconnect can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    stop.set()


@contextlib.asynccontextmanager
async def _uploads_lock(request: Request, folder: Path) -> Any:
    """``uploads/.lock``, waited for (another worker process is ingesting) until the client
    leaves."""
    from rag.errors import Cancelled
    from rag.store_write import WriterLock

    while True:
        try:
            lock = WriterLock(folder)
            break
        except IndexLocked:
            if await request.is_disconnected():
                raise Cancelled("the client left while its upload waited for the index") from None
            await asyncio.sleep(_LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        lock.release()


def _store_and_ingest(
    upload: UploadFile,
    name: str,
    index_dir: Path,
    limits: FileLimits | None,
    embedder: Embedder | None,
    stop: threading.Event,
) -> tuple[UploadResult, IngestSummary | None]:
    """Place one file in its version folder and ingest it; undo the placing unless it committed.

    Runs in a worker thread, holding both locks.
    """
    from ingest.file_limits import FileLimits
    from ingest.pipeline import IngestOptions, ingest_paths

    folder = uploads_dir(index_dir)
    target = _place(upload, folder, name)
    limits = limits or FileLimits()
    options = IngestOptions(
        prune=False, id_prefix=ID_PREFIX, limits=limits, stop=stop, lock_wait_s=LOCK_WAIT_S
    )
    try:
        summary = ingest_paths([target], index_dir, options, embedder=embedder)
    finally:
        _remove_unreferenced(index_dir, [target])
    if summary.failed:
        _, reason = summary.failed[0]
        return UploadResult(name, "failed", reason=reason), summary
    sources = _sources(index_dir)
    ids = sorted(doc_id for doc_id, source in sources.items() if source == str(target))
    stale = [
        doc_id
        for doc_id, source in sources.items()
        if source != str(target) and _is_version_of(folder, Path(source), name)
    ]
    if stale:  # records of the previous version that the new one no longer has
        from ingest.pipeline import remove_documents

        summary.removed += remove_documents(index_dir, stale, lock_wait_s=LOCK_WAIT_S).removed
    _remove_unreferenced(index_dir, list(_versions(folder, name)))
    status = "added" if summary.added else "updated" if summary.updated else "unchanged"
    return UploadResult(name, status, ids=ids), summary


def _place(upload: UploadFile, folder: Path, name: str) -> Path:
    """Write the upload to ``uploads/<content hash>/<name>`` (fsynced, renamed into place)."""
    digest = hashlib.sha256()
    upload.file.seek(0)
    while chunk := upload.file.read(_CHUNK):
        digest.update(chunk)
    target = folder / digest.hexdigest()[:_VERSION] / name
    if not inside(folder, target) or target.is_symlink():
        raise ApiError(
            400, f"Refusing to write {name!r} outside the uploads folder.", param="files"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.part")
    upload.file.seek(0)
    with open(partial, "wb") as out:
        shutil.copyfileobj(upload.file, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    return target


def _sources(index_dir: Path) -> dict[str, str]:
    """Document id -> source file, of the live generation."""
    from rag.store import read_documents

    return {d.id: d.source for d in read_documents(index_dir)}


def _is_version_of(folder: Path, source: Path, name: str) -> bool:
    return source.name == name and source.is_relative_to(folder)


def _versions(folder: Path, name: str) -> Iterator[Path]:
    """Every stored version of ``name`` (and the flat ``uploads/<name>`` of older servers)."""
    yield from folder.glob(f"*/{name}")
    yield folder / name


def _remove_unreferenced(index_dir: Path, paths: Sequence[Path]) -> None:
    """Delete those of ``paths`` no document points to, with their emptied folders."""
    referenced = set(_sources(index_dir).values())
    folder = uploads_dir(index_dir)
    for path in paths:
        if str(path) in referenced or not path.is_relative_to(folder):
            continue
        path.unlink(missing_ok=True)
        if path.parent != folder:
            with contextlib.suppress(OSError):  # not empty: another name's same bytes
                path.parent.rmdir()


def remove_upload_file(index_dir: Path, source: str) -> None:
    """After a document was deleted: its upload file goes too, unless still pointed to (another
    record of the same JSON file)."""
    path = Path(source)
    if inside(uploads_dir(index_dir), path):
        _remove_unreferenced(index_dir, [path])


def recover_uploads(index_dir: Path) -> list[str]:
    """Remove what a crash left (see the module doc); returns what went, relative to DIR.

    Skips what another live process holds: a writer's staging folder, an upload in progress.
    """
    from rag.store_write import IndexWriter, WriterLock

    removed: list[str] = []
    # IndexLocked: a writer is at work and cleans up itself; OSError: a read-only index folder.
    with contextlib.suppress(IndexLocked, OSError):
        staging = {p.name for p in Path(index_dir).glob("tmp-*")}
        IndexWriter(index_dir).release()  # taking the writer's lock clears tmp-* leftovers
        removed += sorted(staging)
    folder = uploads_dir(index_dir)
    if not folder.is_dir():
        return removed
    try:
        lock = WriterLock(folder)
    except (IndexLocked, OSError):
        return removed
    try:
        try:
            referenced = set(_sources(index_dir).values())
        except IndexNotFound:
            referenced = set()
        for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
            here = Path(dirpath)
            for entry in [*filenames, *dirnames]:
                path = here / entry
                if path == folder / ".lock" or str(path) in referenced:
                    continue
                if path.is_symlink() or path.is_file():
                    path.unlink()
                    removed.append(path.relative_to(index_dir).as_posix())
                elif path.is_dir():
                    with contextlib.suppress(OSError):  # still holds a referenced file
                        path.rmdir()
    finally:
        lock.release()
    if removed:
        log.warning("removed what an interrupted upload or ingest left: %s", ", ".join(removed))
    return removed
