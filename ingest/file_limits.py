"""What one file may cost, and the checks that hold a loader to it.

A file is hostile input: small on disk, it may inflate (a DOCX is a zip), nest without end (JSON),
or yield more text than chunking and embedding can afford. `FileLimits` names the bounds; the
loaders check them as they go (`TextBudget`, `check_inflated`, `json_depth_over`) and stop with
an ``InputError`` that names the bound, and `ingest.bounded` enforces the time and memory ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.errors import InputError

if TYPE_CHECKING:
    from rag.settings import Settings

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACES = str.maketrans("{}", "[]")


@dataclass(frozen=True)
class FileLimits:
    """What one file may cost; a file past any bound fails, with the bound in its reason.

    ``max_chars`` bounds the text a file yields, and so the chunking and embedding it costs;
    ``seconds`` and ``memory_bytes`` bound reading it (enforced by `ingest.bounded`).
    """

    #: The file's size on disk.
    max_bytes: int = 50_000_000
    #: Characters of text extracted from one file (all its records together).
    max_chars: int = 5_000_000
    #: Bytes the parts of a DOCX (a zip) inflate to, all together.
    max_inflated_bytes: int = 100_000_000
    #: Nesting of JSON arrays and objects (XML parsers stop at 256 levels on their own).
    max_depth: int = 100
    #: Wall-clock seconds to read one file.
    seconds: float = 60.0
    #: Address space of the process that reads the files.
    memory_bytes: int = 2 << 30

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_chars", "max_inflated_bytes", "max_depth", "memory_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")

    @classmethod
    def from_settings(cls, settings: Settings) -> FileLimits:
        """The limits `RAG_MAX_FILE_BYTES`, `_CHARS` and `_SECONDS` set (the CLI and the server)."""
        return cls(
            max_bytes=settings.max_file_bytes,
            max_chars=settings.max_file_chars,
            seconds=settings.max_file_seconds,
        )


class TextBudget:
    """Counts the characters a loader extracts and stops it as soon as they pass the limit,
    before a decompression bomb's text is all in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, text: str) -> str:
        self.count(len(text))
        return text

    def count(self, chars: int) -> None:
        self.used += chars
        if self.used > self.limit:
            raise InputError(
                f"too much text: more than {self.limit:,} characters (the per-file limit; "
                "split the file, or raise RAG_MAX_FILE_CHARS)"
            )


def valid_text(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (JSON ``"\\ud800"``, broken PDF strings) replaced by
    U+FFFD: they cannot be stored as UTF-8."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def check_inflated(data: bytes, limit: int) -> None:
    """Refuse a zip whose parts declare more than ``limit`` bytes, before any is inflated
    (zipfile never inflates a part past its declared size: a lie fails the CRC instead)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        inflated = sum(info.file_size for info in archive.infolist())
    if inflated > limit:
        raise InputError(
            f"inflates to {inflated:,} bytes (limit {limit:,}): a decompression bomb, or a "
            "document too large to index as one file"
        )


def json_depth_over(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``, in C-speed passes: each pass
    deletes every innermost ``[]`` pair, so a pair left after ``limit`` passes is deeper."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).translate(_BRACES)
    for _ in range(limit):
        if "[]" not in brackets:
            return False
        brackets = brackets.replace("[]", "")
    return "[]" in brackets
