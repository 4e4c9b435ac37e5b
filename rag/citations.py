"""Citation markers in an answer, and whether the answer is the refusal.

Models write markers in several shapes: ``[1]``, ``[1][2]``, ``[1, 2]``, ``[1-3]``. Each resolves
to the numbered context block it points at; a marker past the last block is a fabrication, so it
is reported rather than silently mapped to something.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.types import Chunk, Citation

# One bracket holding numbers separated by commas, semicolons or "and", with ranges (1-3, 1–3).
_MARKER = re.compile(
    r"\[\s*(\d+(?:\s*[-–]\s*\d+)?(?:\s*(?:,|;|and)\s*\d+(?:\s*[-–]\s*\d+)?)*)\s*\]"
)
_PART = re.compile(r"(\d+)(?:\s*[-–]\s*(\d+))?")
#: A range longer than this is not a citation (``[1-2000]`` is a year span or noise).
_MAX_RANGE = 20
_REFUSALS = (
    "i don't know",
    "i do not know",
    "i dont know",
    "the documents do not say",
    "the context does not say",
)


def parse_markers(text: str) -> list[int]:
    """Every cited number in ``text``, in order of first appearance, without repeats."""
    seen: dict[int, None] = {}
    for match in _MARKER.finditer(text):
        for part in _PART.finditer(match.group(1)):
            first = int(part.group(1))
            last = int(part.group(2)) if part.group(2) else first
            if last < first or last - first > _MAX_RANGE:
                last = first
            for number in range(first, last + 1):
                seen.setdefault(number, None)
    return list(seen)


def resolve_citations(text: str, context: Sequence[Chunk]) -> tuple[list[Citation], list[int]]:
    """Map markers to context blocks (``[n]`` is ``context[n - 1]``).

    Returns the citations and the markers that point at no block (``[0]``, ``[7]`` of 5).
    """
    citations: list[Citation] = []
    invalid: list[int] = []
    for marker in parse_markers(text):
        if 1 <= marker <= len(context):
            citations.append(Citation(marker=marker, chunk=context[marker - 1]))
        else:
            invalid.append(marker)
    return citations, invalid


def strip_markers(text: str) -> str:
    """``text`` without citation markers (for closed-book demonstrations)."""
    return re.sub(r"\s{2,}", " ", _MARKER.sub("", text)).replace(" .", ".").strip()


def _normalize(text: str) -> str:
    text = text.lower().replace("’", "'").replace("`", "'")
    return re.sub(r"[^a-z0-9' ]+", " ", text).strip()


def is_refusal(text: str, refusal: str = "I don't know.") -> bool:
    """Whether the answer declines: it is, or begins with, the refusal (or a plain variant)."""
    answer = " ".join(_normalize(text).split())
    if not answer:
        return True
    phrases = {" ".join(_normalize(refusal).split()), *_REFUSALS}
    return any(phrase and answer.startswith(phrase) for phrase in phrases)
