"""`rag qa generate`: a QA set written from a team's own index, checked as a reviewer would.

Passages are drawn stratified by document (documents in a seeded order, each one's chunks
shuffled, taken round-robin), so every document contributes before any contributes twice. For
each, the generator (``Generator.generate_batch``, a batch of passages at a time) writes a
question with a short answer; the pair is kept only when it passes the checks of
`eval/qa_filters.py`, the last of which, the round trip, answers the question from the passage
alone through the answering pipeline (the oracle variant's prompt) and keeps the pair when that
answer reproduces it by F1. Whether retrieval finds the passage is recorded on each row, not
filtered on, so retrieval misses stay measurable. A share of the set are unanswerable questions
(on a passage's subject, about what it does not say) that pass when nothing in the corpus is
close by retrieval score and the model, shown the retrieved passages, says they do not answer.

Every candidate is appended to ``<out stem>.candidates.jsonl`` with the check it failed, so a run
resumes where it stopped, a reviewer can see what was removed, and the counts come from the file.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.qa import QAItem, write_qa_jsonl
from eval.qa_candidates import (
    KINDS,
    CandidateLog,
    CandidateSettings,
    Kind,
    KindCounts,
    QAGenerator,
    tally,
)
from eval.qa_filters import ANSWERABLE_CHECKS, UNANSWERABLE_CHECKS, DuplicateGuard, FilterSettings
from eval.qa_prompts import DEFAULT_DEMOS, load_demos, prompts_digest
from rag.defaults import DEFAULT_SHOTS
from rag.errors import ConfigError
from rag.retrieve import parse_mode
from rag.types import Chunk

if TYPE_CHECKING:
    from rag.generate.remote import Remote
    from rag.pipeline import Pipeline

#: One check step: a batch of passages, the attempt number, the duplicate guard -> records.
Step = Callable[[Sequence[Chunk], int, "DuplicateGuard"], list[dict[str, Any]]]


@dataclass(frozen=True)
class GenerateRequest:
    index: Path
    out: Path
    model: str
    n: int = 200
    #: Where the model runs when not here: an OpenAI-compatible server.
    remote: Remote | None = None
    #: The local generation engine (``rag.generate.ENGINES``).
    engine: str = "auto"
    seed: int = 0
    #: Share of the ``n`` rows that are unanswerable questions.
    unanswerable: float = 0.1
    #: Passages tried per kind, at most, as a multiple of the rows wanted of that kind.
    max_tries: float = 3.0
    #: Passages shorter than this (in words) are not drawn: headings and fragments.
    min_passage_words: int = 25
    #: Only these documents (ids), e.g. the ones a human QA set is about; () means all.
    doc_ids: tuple[str, ...] = ()
    #: Retrieval recorded on each row (and searched for the unanswerable checks).
    k: int = 5
    mode: str = "hybrid"
    #: Demonstrations in the round trip's prompt.
    shots: int = DEFAULT_SHOTS
    batch_size: int = 4
    max_new_tokens: int = 64
    demos: Path = DEFAULT_DEMOS
    filters: FilterSettings = field(default_factory=FilterSettings)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n must be >= 1, got {self.n}")
        if not 0.0 <= self.unanswerable <= 1.0:
            raise ConfigError(f"--unanswerable is a share in [0, 1], got {self.unanswerable}")
        if self.max_tries < 1.0:
            raise ConfigError(f"--max-tries must be >= 1, got {self.max_tries}")
        if self.k < 1 or self.batch_size < 1 or self.shots < 0:
            raise ConfigError(
                f"need k >= 1, batch size >= 1, shots >= 0; got {self.k}, {self.batch_size}, "
                f"{self.shots}"
            )
        if self.out.suffix != ".jsonl":
            raise ConfigError(f"--out is a .jsonl file, got {self.out}")
        parse_mode(self.mode)

    def wanted(self) -> dict[Kind, int]:
        unanswerable = round(self.n * self.unanswerable)
        return {"answerable": self.n - unanswerable, "unanswerable": unanswerable}

    @property
    def candidates_path(self) -> Path:
        return self.out.with_name(self.out.stem + ".candidates.jsonl")

    def candidate_settings(self) -> CandidateSettings:
        return CandidateSettings(
            filters=self.filters,
            k=self.k,
            mode=self.mode,
            shots=self.shots,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
            generator={
                "model": self.model,
                "base_url": self.remote.base_url if self.remote else None,
                "engine": self.engine,
                "seed": self.seed,
                "prompts": prompts_digest(self.demos),
            },
        )

    def fingerprint(self, generation: str) -> dict[str, Any]:
        """What must not change between a run and its resumption (``n`` may grow)."""
        return {
            "index": str(self.index),
            "index_generation": generation,
            "model": self.model,
            "base_url": self.remote.base_url if self.remote else None,
            "engine": self.engine,
            "seed": self.seed,
            "min_passage_words": self.min_passage_words,
            "doc_ids": list(self.doc_ids),
            "k": self.k,
            "mode": self.mode,
            "shots": self.shots,
            "max_new_tokens": self.max_new_tokens,
            "filters": asdict(self.filters),
            # A check added or removed judges candidates differently: a new run.
            "checks": [*ANSWERABLE_CHECKS, *UNANSWERABLE_CHECKS],
            "prompts": prompts_digest(self.demos),
        }


@dataclass
class GenerationSummary:
    out: Path
    candidates_path: Path
    passages: int
    documents: int
    counts: dict[Kind, KindCounts]
    k: int
    seconds: float

    def lines(self) -> list[str]:
        """What the command prints: the draw, then each kind's removals and what was kept."""
        from eval.qa_filters import FAILURES

        out = [
            f"Passages: {self.passages} from {self.documents} documents (drawn round-robin by "
            "document, seeded)."
        ]
        for kind, counts in self.counts.items():
            if not counts.candidates:
                continue
            checks = ANSWERABLE_CHECKS if kind == "answerable" else UNANSWERABLE_CHECKS
            out.append(f"{kind}: {counts.candidates} candidates")
            for check in checks:
                out.append(f"  removed {counts.removed.get(check, 0):>4}  {FAILURES[check]}")
            extra = f" ({counts.surplus} more passed, beyond --n)" if counts.surplus else ""
            out.append(f"  kept    {counts.kept - counts.surplus:>4}{extra}")
        answerable = self.counts["answerable"]
        if answerable.kept:
            out.append(
                f"Retrieval found the passage in the top {self.k} for {answerable.found} of "
                f"{answerable.kept} kept answerable questions (recorded, not filtered)."
            )
        out.append(f"Wrote {self.out}; every candidate and its outcome: {self.candidates_path}")
        out.append(f"Took {self.seconds:.0f} s.")
        return out


def draw_passages(chunks: Sequence[Chunk], seed: int, *, min_words: int = 0) -> list[Chunk]:
    """Every chunk with at least ``min_words`` words, stratified by document: documents in a
    seeded order, each one's chunks shuffled, taken one per document per round."""
    rng = random.Random(seed)
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in sorted(chunks, key=lambda c: c.id):
        if len(chunk.text.split()) >= min_words:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
    docs = sorted(by_doc)
    rng.shuffle(docs)
    for doc in docs:
        rng.shuffle(by_doc[doc])
    order: list[Chunk] = []
    for round_ in range(max((len(v) for v in by_doc.values()), default=0)):
        order.extend(by_doc[doc][round_] for doc in docs if round_ < len(by_doc[doc]))
    return order


def build_qa_pipeline(
    request: GenerateRequest, *, cache_dir: Path, device: str | None = None
) -> Pipeline:
    """The answering pipeline over ``request.index`` with ``request.model`` (local, or remote at
    ``request.remote``), whose example bank is the generation's demonstrations, so the round
    trip is shown the short answers it must reproduce."""
    from rag.examples import ExampleBank
    from rag.pipeline import Pipeline, build_pipeline

    base = build_pipeline(
        request.index,
        request.model,
        cache_dir=cache_dir,
        device=device,
        remote=request.remote,
        engine=request.engine,
    )
    examples = [demo.as_example() for demo in load_demos(request.demos)]
    return Pipeline(
        base.generator,
        index=base.index,
        embedder=base.embedder,
        examples=ExampleBank(examples, embedder=base.embedder),
        refusal=base.refusal,
        min_score=base.min_score,
        condense="off",
    )


def generate_qa(
    request: GenerateRequest,
    pipeline: Pipeline,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> GenerationSummary:
    """Generate, check and write ``request.out``; resumes from the candidates file."""
    started = time.perf_counter()
    index = pipeline.index
    if index is None:
        raise ConfigError("generating questions needs an index: pass --index DIR")
    chunks = list(index.all_chunks())
    if request.doc_ids:
        allowed = set(request.doc_ids)
        chunks = [c for c in chunks if c.doc_id in allowed]
    order = draw_passages(chunks, request.seed, min_words=request.min_passage_words)
    if not order:
        raise ConfigError(
            f"no passage of {request.index} has {request.min_passage_words} words or more"
            + (" among --doc-ids" if request.doc_ids else "")
            + ": lower --min-passage-words, or ingest more documents"
        )
    candidate_log = CandidateLog(request.candidates_path)
    records = candidate_log.start(request.fingerprint(str(getattr(index, "generation", ""))))
    generator = QAGenerator(request.candidate_settings(), pipeline, load_demos(request.demos))
    guard = DuplicateGuard(
        request.filters.duplicate_threshold, [r["question"] for r in records if _guarded(r)]
    )
    steps: dict[Kind, Step] = {
        "answerable": generator.answerable,
        "unanswerable": generator.unanswerable,
    }
    wanted = request.wanted()
    # The unanswerable questions start from another seeded order, so their subjects differ.
    orders: dict[Kind, list[Chunk]] = {
        "answerable": order,
        "unanswerable": draw_passages(
            chunks, request.seed + 1, min_words=request.min_passage_words
        ),
    }
    for kind in KINDS:
        limit = math.ceil(wanted[kind] * request.max_tries)
        kept = _run_kind(
            kind,
            steps[kind],
            _draws(orders[kind], limit),
            wanted[kind],
            records,
            guard,
            candidate_log,
            request.batch_size,
            progress,
        )
        tried = sum(1 for r in records if r["kind"] == kind)
        if kept < wanted[kind] and log is not None:
            log(
                f"only {kept} of {wanted[kind]} {kind} questions passed the checks after "
                f"{tried} candidates; raise --max-tries or lower the thresholds for more"
            )
    items, counts = tally(records, wanted)
    write_qa_jsonl([QAItem.from_dict(item) for item in items], request.out)
    return GenerationSummary(
        out=request.out,
        candidates_path=request.candidates_path,
        passages=len(order),
        documents=len({c.doc_id for c in order}),
        counts=counts,
        k=request.k,
        seconds=time.perf_counter() - started,
    )


def _guarded(record: dict[str, Any]) -> bool:
    """Whether the run added ``record``'s question to the duplicate guard: it passed the
    duplicate check (whatever later check it failed)."""
    checks = ANSWERABLE_CHECKS if record["kind"] == "answerable" else UNANSWERABLE_CHECKS
    failed = record.get("failed")
    return failed is None or checks.index(failed) > checks.index("not_duplicate")


def _draws(order: Sequence[Chunk], limit: int) -> list[tuple[int, Chunk]]:
    """(attempt, passage) pairs: the draw order, then again as often as ``limit`` needs."""
    return [(i // len(order), order[i % len(order)]) for i in range(limit)]


def _run_kind(
    kind: Kind,
    step: Step,
    draws: Sequence[tuple[int, Chunk]],
    wanted: int,
    records: list[dict[str, Any]],
    guard: DuplicateGuard,
    candidate_log: CandidateLog,
    batch_size: int,
    progress: bool,
) -> int:
    """Try ``draws`` not yet in ``records`` until ``wanted`` pass; return how many have."""
    from tqdm import tqdm

    tried = {(r["attempt"], r["chunk_id"]) for r in records if r["kind"] == kind}
    pending = [(a, c) for a, c in draws if (a, c.id) not in tried]
    kept = sum(1 for r in records if r["kind"] == kind and r.get("item"))
    bar = tqdm(
        total=wanted,
        initial=min(kept, wanted),
        desc=kind,
        unit="q",
        disable=not progress or not wanted,
    )
    for attempt, batch in _batches(pending, batch_size):
        if kept >= wanted:
            break
        new = step(batch, attempt, guard)
        candidate_log.append(new)
        records.extend(new)
        added = sum(1 for r in new if r.get("item"))
        bar.update(min(added, wanted - kept))
        kept += added
    bar.close()
    return kept


def _batches(draws: Sequence[tuple[int, Chunk]], size: int) -> Iterator[tuple[int, list[Chunk]]]:
    """Batches of up to ``size`` passages of one attempt each (one decoding setting a batch)."""
    batch: list[Chunk] = []
    attempt = draws[0][0] if draws else 0
    for number, chunk in draws:
        if batch and (number != attempt or len(batch) == size):
            yield attempt, batch
            batch = []
        attempt = number
        batch.append(chunk)
    if batch:
        yield attempt, batch
