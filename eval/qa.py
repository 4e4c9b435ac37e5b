"""QA sets: the JSONL format every evaluation reads, loaders for SQuAD JSON and the fetched
corpora, and deterministic sampling.

One question a line: ``id``, ``question``, ``answers`` (a list of strings, empty for an
unanswerable question), optional ``doc_ids`` (gold documents, matched against the ingested
documents' ids or source paths), optional ``answerable`` (``false`` marks a question the
documents do not answer) and optional ``context`` (the gold passage text, which the oracle
variant reads). Unknown fields are kept in ``extra`` and written back unchanged, so a team's own
annotations survive a round trip; one of them, ``reviewed`` (``accepted``, ``edited`` or
``rejected``), is a person's verdict on a generated row (`rag qa review`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.squad import parse_squad
from rag.errors import ConfigError, InputError

#: QA sets that `rag corpora fetch NAME` provides (corpus documents plus a QA JSONL).
FETCHABLE = ("squad", "bank", "counterfactual")

_KNOWN_FIELDS = {"id", "question", "answers", "doc_ids", "answerable", "context"}
#: The review states of a row a person checked and kept.
REVIEWED = ("accepted", "edited")


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answers. ``answerable=False`` items expect the refusal."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    answerable: bool = True
    context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise InputError(f"QA item without an id: {self.question[:60]!r}")
        if not self.question.strip():
            raise InputError(f"QA item {self.id} has an empty question")
        if self.answerable and not self.answers:
            raise InputError(
                f'QA item {self.id} has no answers; give it answers or mark it "answerable": false'
            )

    @property
    def review(self) -> str | None:
        """A person's verdict on the row (``accepted``, ``edited``, ``rejected``), if any."""
        state = self.extra.get("reviewed")
        return str(state) if state else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QAItem:
        answers = data.get("answers", [])
        if isinstance(answers, str):
            answers = [answers]
        return cls(
            id=str(data.get("id", "")),
            question=str(data.get("question", "")),
            answers=tuple(str(a) for a in answers),
            doc_ids=tuple(str(d) for d in data.get("doc_ids") or ()),
            answerable=bool(data.get("answerable", True)),
            context=data.get("context"),
            extra={k: v for k, v in data.items() if k not in _KNOWN_FIELDS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "doc_ids": list(self.doc_ids),
            "answerable": self.answerable,
        }
        if self.context is not None:
            out["context"] = self.context
        out.update(self.extra)
        return out


def read_qa_jsonl(path: Path) -> list[QAItem]:
    """Read a QA JSONL file; a bad line is an error naming the file and line number."""
    if not path.is_file():
        raise InputError(f"QA file not found: {path}")
    items: list[QAItem] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(data, dict):
                raise InputError(f"{path}:{number}: expected a JSON object per line")
            try:
                items.append(QAItem.from_dict(data))
            except InputError as error:
                raise InputError(f"{path}:{number}: {error}") from None
    _check_unique(items, str(path))
    return items


def write_qa_jsonl(items: Iterable[QAItem], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


def load_squad_json(path: Path) -> list[QAItem]:
    """Read SQuAD-format JSON (v1.1, or v2.0 with ``is_impossible``).

    Each question's gold document is its article, named as `rag corpora fetch squad` names the
    article's file, and its context is the paragraph it was asked about, so retrieval can be
    scored per document and per passage.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read SQuAD JSON {path}: {error}") from None
    articles = parse_squad(raw, str(path))
    items = [QAItem.from_dict(row) for article in articles for row in article.questions]
    _check_unique(items, str(path))
    return items


def load_qa(source: str | Path, *, cache_dir: Path) -> list[QAItem]:
    """A QA set by name (``squad``, ``bank``, ``counterfactual``) or by path (.jsonl or .json)."""
    if str(source) in FETCHABLE:
        from ingest.corpora import fetch

        fetched = fetch(str(source), cache_dir)
        if fetched.qa_path is None:
            raise ConfigError(f"corpus {source} has no QA set; pass --qa FILE")
        return read_qa_jsonl(fetched.qa_path)
    path = Path(source)
    if not path.exists():
        known = ", ".join(FETCHABLE)
        raise InputError(f"QA set not found: {source} (a .jsonl/.json file, or one of: {known})")
    if path.suffix == ".json":
        return load_squad_json(path)
    return read_qa_jsonl(path)


def reviewed_items(items: Sequence[QAItem], *, only: bool, where: str) -> list[QAItem]:
    """``items`` without the rows a person rejected; with ``only``, just the accepted and edited
    ones (an error when there are none)."""
    kept = [item for item in items if item.review != "rejected"]
    if not only:
        return kept
    kept = [item for item in kept if item.review in REVIEWED]
    if not kept:
        raise ConfigError(
            f"no reviewed questions in {where}: review them with `rag qa review {where} --out "
            "FILE` and evaluate FILE, or drop --reviewed-only"
        )
    return kept


def sample(items: Sequence[QAItem], limit: int | None, seed: int = 0) -> list[QAItem]:
    """``limit`` items chosen by ``seed``, in their original order; the same seed, the same set.

    Sampling indices (not shuffling then cutting) keeps a 10-question sample a subset of the
    20-question sample with the same seed, so a small smoke run previews the larger one.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in sorted(order[:limit])]


def _check_unique(items: Sequence[QAItem], where: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InputError(f"{where}: duplicate question id {item.id!r}; ids must be unique")
        seen.add(item.id)
