"""results.jsonl: one row per (question, run), appended as answers arrive.

The file is the evaluation's single source of truth: the report is computed from it and nothing
else, and a rerun reads it to skip the rows already there (a killed run loses at most the batch
in flight; a half-written last line is cut off before appending). ``run.json`` beside it records
what produced the rows, so a rerun with another model cannot mix into them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rag.errors import ConfigError, InputError

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"


@dataclass
class Retrieved:
    """One retrieved chunk, as the row keeps it."""

    chunk_id: int
    doc_id: str
    score: float
    gold_doc: bool
    has_answer: bool


@dataclass
class Row:
    qid: str
    run: str
    variant: str
    shots: int
    k: int
    question: str
    answers: list[str]
    answerable: bool
    prediction: str
    refused: bool
    em: float
    f1: float
    correct: bool
    attribution: str
    #: Whether the gold passage (or a gold document, when no passage is known) was in the prompt.
    gold_in_context: bool
    #: Whether the item names gold documents (retrieval recall is defined only then).
    gold_known: bool
    gold_doc_rank: int | None
    gold_passage_rank: int | None
    retrieved: list[Retrieved] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    citation_correct: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieve_ms: float = 0.0
    first_token_ms: float | None = None
    total_ms: float = 0.0
    #: Questions answered together in one generate_batch call (latency is per batch then).
    batch_size: int = 1
    sweep: bool = False
    dropped: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    #: EM against ``original_answers`` (counterfactual sets): 1.0 means the model answered from
    #: memory instead of from the swapped context. None where the item has none.
    memory_em: float | None = None
    #: The prediction contains a gold answer (normalized): right, if wordy.
    contains_answer: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["retrieved"] = [Retrieved(**r) for r in data.get("retrieved", [])]
        return cls(**values)


class ResultsFile:
    """Append-only rows in ``out/results.jsonl`` with the run's configuration in ``run.json``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / RESULTS_FILE
        self.run_path = out / RUN_FILE

    def start(self, fingerprint: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Record the run's configuration; ``fingerprint`` must match the one that wrote the
        existing rows (``extra``, e.g. the sample size, may change: new rows are added)."""
        self.out.mkdir(parents=True, exist_ok=True)
        previous = self.config()
        if previous and self.path.exists():
            changed = sorted(
                k for k in fingerprint if k in previous and previous[k] != fingerprint[k]
            )
            if changed:
                detail = ", ".join(f"{k}: {previous[k]!r} -> {fingerprint[k]!r}" for k in changed)
                raise ConfigError(
                    f"{self.path} holds results of another configuration ({detail}); "
                    "use a new --out folder or delete it to start over"
                )
        self._write({**previous, **fingerprint, **(extra or {})})
        self._repair_tail()

    def update(self, values: dict[str, Any]) -> None:
        """Add figures measured during the run (corpus size) to ``run.json``."""
        self._write({**self.config(), **values})

    def _write(self, config: dict[str, Any]) -> None:
        self.run_path.write_text(json.dumps(config, indent=2, default=str) + "\n", "utf-8")

    def config(self) -> dict[str, Any]:
        if not self.run_path.exists():
            return {}
        data: dict[str, Any] = json.loads(self.run_path.read_text(encoding="utf-8"))
        return data

    def rows(self) -> list[Row]:
        if not self.path.exists():
            return []
        rows = []
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith("\n"):
                    break  # a row cut off by a crash; start() removes it before appending
                try:
                    rows.append(Row.from_dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError) as error:
                    raise InputError(f"{self.path}:{number}: not a result row ({error})") from None
        return rows

    def done(self) -> set[tuple[str, str]]:
        """(question id, run name) pairs already answered."""
        return {(row.qid, row.run) for row in self.rows()}

    def append(self, rows: Iterable[Row]) -> None:
        lines = "".join(json.dumps(row.to_dict(), ensure_ascii=False) + "\n" for row in rows)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
