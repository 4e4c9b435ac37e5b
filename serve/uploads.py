"""Uploaded files: sanitized names, a size limit, stored inside the index folder only, ingested.

A client names its file; that name must never choose where the bytes land. The name is reduced
to its last component and a safe alphabet, the suffix must be a kind the ingester reads, and the
resolved path is checked to lie in `DIR/uploads/` before anything is written. Bytes go to a
temporary file first and are renamed into place, so a failed or oversized upload leaves nothing
half-written behind; files the ingester refuses are removed again, so `uploads/` holds what the
index holds.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from serve.http_errors import ApiError

if TYPE_CHECKING:
    from ingest.pipeline import IngestSummary
    from rag.embed import Embedder

UPLOADS = "uploads"
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


async def receive_upload(file: UploadFile, folder: Path, budget: int) -> tuple[Path, int]:
    """Write ``file`` to a temporary file in ``folder``; 413 past ``budget`` bytes, 400 if empty.

    Returns the temporary path and the bytes written; `place` then moves it under its name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    written = 0
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := await file.read(_CHUNK):
                written += len(chunk)
                if written > budget:
                    raise ApiError(
                        413,
                        f"Upload too large: the limit is {budget} bytes for all files together.",
                        param="files",
                        code="request_too_large",
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if written == 0:
            raise ApiError(400, f"{file.filename!r} is empty.", param="files", code="empty_file")
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return Path(temp_name), written


def target_path(folder: Path, name: str) -> Path:
    """Where an upload named ``name`` (already sanitized) is stored; 400 if that would escape."""
    target = folder / name
    if not inside(folder, target) or target.is_symlink():
        raise ApiError(
            400, f"Refusing to write {name!r} outside the uploads folder.", param="files"
        )
    return target


async def ingest_uploads(
    files: Sequence[UploadFile], index_dir: Path, *, budget: int, embedder: Embedder | None
) -> tuple[list[str], IngestSummary]:
    """Store ``files`` in `DIR/uploads/` (the same name again replaces one) and ingest them.

    Every file is received in full before any is put in place, so a refused upload (too large,
    empty, a bad name) leaves the folder as it was. Returns the names now stored and indexed,
    and the ingestion's summary. Run it under the app's write lock.
    """
    names = [safe_filename(f.filename) for f in files]  # refuse a bad name before writing any
    if len(set(names)) != len(names):
        raise ApiError(400, f"Two uploads share a name after sanitizing: {names}", param="files")
    folder = uploads_dir(index_dir)
    targets = [target_path(folder, name) for name in names]
    received: list[Path] = []
    try:
        for upload in files:
            temp, size = await receive_upload(upload, folder, budget)
            received.append(temp)
            budget -= size
    except BaseException:
        for temp in received:
            temp.unlink(missing_ok=True)
        raise
    new = [not target.exists() for target in targets]
    for temp, target in zip(received, targets, strict=True):
        os.replace(temp, target)
    from ingest.pipeline import IngestOptions, ingest_paths

    try:
        summary = await run_in_threadpool(
            lambda: ingest_paths(targets, index_dir, IngestOptions(prune=False), embedder=embedder)
        )
    except BaseException:
        for target, is_new in zip(targets, new, strict=True):
            if is_new:
                target.unlink(missing_ok=True)
        raise
    failed = {Path(path).name for path, _ in summary.failed}
    for target in targets:
        if target.name in failed:
            target.unlink(missing_ok=True)
    return [t.name for t in targets if t.name not in failed], summary
