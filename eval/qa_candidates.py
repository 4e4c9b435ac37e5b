"""Candidates: the generator writes them, the checks judge them, a file keeps them.

`QAGenerator` turns a batch of passages into candidate records (the model's reply, the question
and answer parsed from it, the check it failed, the round trip's answer, and, for a pair that
passed, the QA row with where it came from). `CandidateLog` appends them to the candidates file
a run resumes from, and `tally` counts what each check removed. `eval/qa_generate.py` draws the
passages and runs the batches.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from eval.metrics import score_answer
from eval.qa import QAItem
from eval.qa_filters import (
    ANSWERABLE_CHECKS,
    UNANSWERABLE_CHECKS,
    DuplicateGuard,
    FilterSettings,
    check_pair,
    judge_says_no,
    parse_pair,
    parse_question,
)
from eval.qa_prompts import GenerationDemo, judge_chat, question_chat, unanswerable_chat
from rag.defaults import DEFAULT_SHOTS
from rag.errors import ConfigError
from rag.generate.base import GenerationConfig
from rag.retrieve import parse_mode
from rag.types import Chunk
from rag.variants import VARIANTS

if TYPE_CHECKING:
    from rag.pipeline import Pipeline

Kind = Literal["answerable", "unanswerable"]
KINDS: tuple[Kind, ...] = ("answerable", "unanswerable")
#: Sampling temperature when a passage is drawn again (its first question is greedy).
RESAMPLE_TEMPERATURE = 0.8
#: A pair is two lines; small models go on writing more pairs after a blank line.
PAIR_STOP = ("\n\n", "\nQuestion")


@dataclass(frozen=True)
class CandidateSettings:
    """What the checks and the rows need from the request."""

    filters: FilterSettings = field(default_factory=FilterSettings)
    #: Retrieval recorded on each row (and searched for the unanswerable checks).
    k: int = 5
    mode: str = "hybrid"
    #: Demonstrations in the round trip's prompt.
    shots: int = DEFAULT_SHOTS
    max_new_tokens: int = 64
    seed: int = 0
    #: Where the rows came from: model, seed, prompts digest.
    generator: dict[str, Any] = field(default_factory=dict)


class QAGenerator:
    """Writes and checks candidates for one request over one pipeline."""

    def __init__(
        self,
        settings: CandidateSettings,
        pipeline: Pipeline,
        demos: Sequence[GenerationDemo],
    ) -> None:
        if pipeline.retriever is None:
            raise ConfigError("generating questions needs an index: pass --index DIR")
        self.request = settings
        self.pipeline = pipeline
        self.demos = list(demos)
        self.filters = settings.filters
        self.generator_info = settings.generator
        config = VARIANTS["oracle"].configure(shots=settings.shots, k=1)
        self.round_trip_options = config.options(max_new_tokens=settings.max_new_tokens)

    def _generate(
        self,
        chats: Sequence[Any],
        max_new_tokens: int,
        attempt: int = 0,
        stop: tuple[str, ...] = (),
    ) -> list[str]:
        """Greedy on a passage's first attempt; seeded sampling on later ones, so a passage
        drawn again (a corpus with fewer passages than questions wanted) gets another question."""
        if not chats:
            return []
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            stop=stop,
            temperature=RESAMPLE_TEMPERATURE if attempt else 0.0,
            seed=self.request.seed * 1000 + attempt if attempt else None,
        )
        return [r.text for r in self.pipeline.generator.generate_batch(chats, config)]

    def _search(self, question: str) -> list[Chunk]:
        """What the answering pipeline retrieves for ``question`` at the request's k and mode."""
        from rag.pipeline import AskOptions

        options = AskOptions(k=self.request.k, mode=parse_mode(self.request.mode))
        return [hit.chunk for hit in self.pipeline.search(question, options)]

    # -- answerable ----------------------------------------------------------------------------

    def answerable(
        self, batch: Sequence[Chunk], attempt: int, guard: DuplicateGuard
    ) -> list[dict[str, Any]]:
        chats = [question_chat(c, self.demos) for c in batch]
        replies = self._generate(chats, 64, attempt, stop=PAIR_STOP)
        records = []
        for chunk, reply in zip(batch, replies, strict=True):
            record = _record("answerable", chunk, attempt, reply)
            pair = parse_pair(reply)
            if pair is None:
                record["failed"] = "parsed"
            else:
                record["question"], record["answer"] = pair
                record["failed"] = check_pair(*pair, chunk.text, self.filters)
                if record["failed"] is None and guard.is_duplicate(pair[0]):
                    record["failed"] = "not_duplicate"
                if record["failed"] is None:
                    guard.add(pair[0])
            records.append(record)
        trips = [(r, c) for r, c in zip(records, batch, strict=True) if r["failed"] is None]
        answers = self.pipeline.ask_batch(
            [r["question"] for r, _ in trips],
            options=self.round_trip_options,
            contexts=[[c] for _, c in trips],
        )
        for (record, chunk), answer in zip(trips, answers, strict=True):
            f1 = score_answer(answer.text, [record["answer"]], refused=answer.refused)[1]
            record["round_trip"] = {"answer": answer.text, "f1": f1}
            if f1 < self.filters.round_trip_f1:
                record["failed"] = "round_trip"
                continue
            record["item"] = self._answerable_item(record, chunk, attempt)
        return records

    def _answerable_item(
        self, record: dict[str, Any], chunk: Chunk, attempt: int
    ) -> dict[str, Any]:
        found = self._search(record["question"])
        ids = [c.id for c in found]
        docs = [c.doc_id for c in found]
        item = QAItem(
            id=_item_id(chunk.id, attempt),
            question=record["question"],
            answers=(record["answer"],),
            doc_ids=(chunk.doc_id,),
            context=chunk.text,
            extra={
                "source": _source(chunk),
                "generator": self.generator_info,
                "filters": {
                    "passed": list(ANSWERABLE_CHECKS),
                    "round_trip_answer": record["round_trip"]["answer"],
                    "round_trip_f1": record["round_trip"]["f1"],
                },
                "retrieval": {
                    "mode": self.request.mode,
                    "k": self.request.k,
                    "passage_rank": ids.index(chunk.id) + 1 if chunk.id in ids else None,
                    "doc_rank": docs.index(chunk.doc_id) + 1 if chunk.doc_id in docs else None,
                },
            },
        )
        return item.to_dict()

    # -- unanswerable --------------------------------------------------------------------------

    def unanswerable(
        self, batch: Sequence[Chunk], attempt: int, guard: DuplicateGuard
    ) -> list[dict[str, Any]]:
        chats = [unanswerable_chat(c, self.demos) for c in batch]
        replies = self._generate(chats, 48, attempt, stop=("\n",))
        records = []
        judged: list[tuple[dict[str, Any], list[Chunk]]] = []
        retriever = self.pipeline.retriever
        assert retriever is not None
        for chunk, reply in zip(batch, replies, strict=True):
            record = _record("unanswerable", chunk, attempt, reply)
            records.append(record)
            question = parse_question(reply)
            if question is None:
                record["failed"] = "parsed"
                continue
            record["question"] = question
            if guard.is_duplicate(question):
                record["failed"] = "not_duplicate"
                continue
            closest = retriever.search(question, k=1, mode="dense")
            record["top_score"] = closest[0].score if closest else None
            if closest and closest[0].score >= self.filters.max_unanswerable_score:
                record["failed"] = "retrieval_score"
                continue
            guard.add(question)
            judged.append((record, self._search(question)))
        # With nothing above the relevance floor the pipeline refuses by itself: no judge needed.
        asked = [(r, passages) for r, passages in judged if passages]
        verdicts = self._generate(
            [judge_chat(r["question"], p, self.demos) for r, p in asked], 4, stop=("\n",)
        )
        for (record, _), verdict in zip(asked, verdicts, strict=True):
            record["judge"] = verdict.strip()
            if not judge_says_no(verdict):
                record["failed"] = "judge"
        for record, _ in judged:
            if record.get("failed") is None:
                record["item"] = QAItem(
                    id=_item_id(record["chunk_id"], attempt, "-unanswerable"),
                    question=record["question"],
                    answerable=False,
                    extra={
                        "source": record["source"],
                        "generator": self.generator_info,
                        "filters": {
                            "passed": list(UNANSWERABLE_CHECKS),
                            "top_score": record["top_score"],
                            "judge": record.get("judge", "no passage above the relevance floor"),
                        },
                    },
                ).to_dict()
        return records


def _item_id(chunk_id: int, attempt: int, suffix: str = "") -> str:
    return f"gen-{chunk_id}{suffix}" + (f"-{attempt}" if attempt else "")


def _record(kind: Kind, chunk: Chunk, attempt: int, reply: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "chunk_id": chunk.id,
        "attempt": attempt,
        "doc_id": chunk.doc_id,
        "source": _source(chunk),
        "reply": reply,
        "failed": None,
    }


def _source(chunk: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": chunk.id,
        "doc_id": chunk.doc_id,
        "title": chunk.title,
        "file": chunk.source,
    }


@dataclass
class KindCounts:
    """What happened to one kind's candidates."""

    candidates: int = 0
    #: Candidates removed, by the first check they failed.
    removed: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    #: Kept rows beyond the number wanted (left out of the file).
    surplus: int = 0
    #: Answerable rows whose passage retrieval found in the top k.
    found: int = 0


class CandidateLog:
    """``<out>.candidates.jsonl``: the fingerprint on the first line, then one candidate a line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def start(self, fingerprint: dict[str, Any]) -> list[dict[str, Any]]:
        """The candidates already recorded under ``fingerprint`` (none for a new file)."""
        if not self.path.is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n", "utf-8")
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]  # a line cut off by a crash
            self.path.write_text("".join(lines), encoding="utf-8")
        previous = json.loads(lines[0]).get("fingerprint", {}) if lines else {}
        changed = sorted(k for k in fingerprint if previous.get(k) != fingerprint[k])
        if changed:
            detail = ", ".join(f"{k}: {previous.get(k)!r} -> {fingerprint[k]!r}" for k in changed)
            raise ConfigError(
                f"{self.path} holds candidates of another configuration ({detail}); use another "
                "--out or delete it and the .jsonl beside it to start over"
            )
        return [json.loads(line) for line in lines[1:]]

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def tally(
    records: Sequence[dict[str, Any]], wanted: dict[Kind, int]
) -> tuple[list[dict[str, Any]], dict[Kind, KindCounts]]:
    """The rows to write (the first ``wanted`` of each kind, in drawing order) and the counts."""
    counts: dict[Kind, KindCounts] = {kind: KindCounts() for kind in KINDS}
    items: list[dict[str, Any]] = []
    for record in records:
        kind: Kind = record["kind"]
        tally = counts[kind]
        tally.candidates += 1
        if record.get("failed"):
            tally.removed[record["failed"]] += 1
            continue
        if not record.get("item"):
            continue
        tally.kept += 1
        if tally.kept > wanted[kind]:
            tally.surplus += 1
            continue
        items.append(record["item"])
        if kind == "answerable" and record["item"]["retrieval"]["passage_rank"] is not None:
            tally.found += 1
    return items, counts
