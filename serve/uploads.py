"""Uploaded files: sanitized names, a size limit, stored inside the index folder only.

A client names its file; that name must never choose where the bytes land. The name is reduced
to its last component and a safe alphabet, the suffix must be a kind the ingester reads, and the
resolved path is checked to lie in `DIR/uploads/` before anything is written. Bytes go to a
temporary file first and are renamed into place, so a failed or oversized upload leaves nothing
half-written behind.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from fastapi import UploadFile

from serve.http_errors import ApiError

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
