"""Finished embedding batches of a `--ray` run, kept until the run commits, so a rerun after a
crash embeds only what was left.

The index itself is written once, at the end (old index or new, never a mix); hours of cluster
work should still survive a killed driver. Each finished batch is written to
``DIR/.ray-spool/`` as one ``.npz`` (vectors plus the chunks as JSON, no pickle), atomically
(temporary name, then rename). An entry is keyed by the embedder, the chunk sizes, the document
id and its content hash, so a rerun reuses it only for the same document text embedded the same
way. The committer clears the folder after a successful commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.chunker import ChunkerConfig
from rag.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

SPOOL = ".ray-spool"


class Spool:
    """Embedded documents of unfinished runs of the index at ``root``, by content."""

    def __init__(self, root: Path) -> None:
        self.folder = Path(root) / SPOOL
        self._entries: dict[str, tuple[list[Chunk], np.ndarray]] | None = None

    @staticmethod
    def key(document: Document, embedder: str, config: ChunkerConfig) -> str:
        fields = (embedder, str(config.chunk_tokens), str(config.overlap), document.id)
        return hashlib.sha256("\0".join((*fields, document.content_hash)).encode()).hexdigest()

    def get(self, key: str) -> tuple[list[Chunk], np.ndarray] | None:
        if self._entries is None:
            self._entries = self._read()
        return self._entries.get(key)

    def put(self, keys: Sequence[str], results: Sequence[tuple[list[Chunk], np.ndarray]]) -> None:
        """Keep one finished batch: ``results[i]`` belongs to ``keys[i]``."""
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        meta = [
            {"key": key, "chunks": [asdict(c) for c in chunks]}
            for key, (chunks, _) in zip(keys, results, strict=True)
        ]
        vectors = [v for _, v in results if len(v)]
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:32]
        handle, temp = tempfile.mkstemp(dir=self.folder, prefix=".part-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(
                    out,
                    vectors=np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32),
                    meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                )
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.folder / f"{name}.npz")
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def _read(self) -> dict[str, tuple[list[Chunk], np.ndarray]]:
        import numpy as np

        entries: dict[str, tuple[list[Chunk], np.ndarray]] = {}
        for path in sorted(self.folder.glob("[!.]*.npz")):
            try:
                with np.load(path, allow_pickle=False) as data:
                    vectors = np.array(data["vectors"], dtype=np.float32)
                    meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            except (OSError, ValueError, KeyError):
                continue  # unreadable: its documents are simply embedded again
            offset = 0
            for item in meta:
                chunks = [
                    Chunk(**{**c, "heading_path": tuple(c["heading_path"])}) for c in item["chunks"]
                ]
                entries[item["key"]] = (chunks, vectors[offset : offset + len(chunks)])
                offset += len(chunks)
        return entries

    def clear(self) -> None:
        self._entries = None
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.folder)
