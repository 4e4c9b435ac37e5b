"""Run the variants over a QA set through the answering pipeline, appending rows as it goes.

Questions go through ``Pipeline.ask_batch`` in batches (one ``generate_batch`` call each, which
a GPU turns into real batching); every finished batch is appended to results.jsonl, and a rerun
skips the (question, run) pairs already there. Runs without the adapter go first so the base
model can be released before the adapted one loads.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval.metrics import (
    contains_answer,
    exact_match_score,
    max_over_ground_truths,
    score_answer,
    strip_citations,
)
from eval.qa import QAItem
from eval.results import ResultsFile, Retrieved, Row
from eval.variants import RunSpec, attribute, holds_gold, is_gold_doc, oracle_context
from rag.errors import ConfigError
from rag.types import Answer, Chunk

if TYPE_CHECKING:
    from rag.pipeline import AskOptions, Pipeline
    from rag.retrieve import SearchMode

#: Builds the pipeline; ``True`` asks for the generator with the LoRA adapter loaded.
PipelineFactory = Callable[[bool], "Pipeline"]


@dataclass(frozen=True)
class RunnerConfig:
    max_new_tokens: int = 64
    batch_size: int = 4
    #: Search mode of the retrieval runs.
    mode: SearchMode = "hybrid"
    #: F1 at or above which an answer counts as correct in the failure attribution (an answer
    #: that contains a gold answer counts as correct whatever its F1).
    correct_f1: float = 0.5
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0.0 < self.correct_f1 <= 1.0:
            raise ConfigError(f"correct F1 threshold must be in (0, 1], got {self.correct_f1}")


def run_eval(
    items: Sequence[QAItem],
    runs: Sequence[RunSpec],
    pipeline_for: PipelineFactory,
    results: ResultsFile,
    config: RunnerConfig = RunnerConfig(),
) -> int:
    """Answer every (question, run) pair not yet in ``results``; return how many were added."""
    done = results.done()
    todo = [(run, [it for it in items if (it.id, run.name) not in done]) for run in runs]
    todo = [(run, pending) for run, pending in todo if pending]
    total = sum(len(pending) for _, pending in todo)
    if not total:
        return 0
    from tqdm import tqdm

    bar = tqdm(total=total, unit="q", desc="eval", disable=not config.progress)
    added = 0
    pipeline: Pipeline | None = None
    loaded_adapter: bool | None = None
    try:
        for run, pending in todo:
            if loaded_adapter != run.variant.adapter:
                pipeline = None
                gc.collect()  # drop the base model's weights before the adapted copy loads
                pipeline = pipeline_for(run.variant.adapter)
                loaded_adapter = run.variant.adapter
            assert pipeline is not None
            for start in range(0, len(pending), config.batch_size):
                batch = pending[start : start + config.batch_size]
                rows = _answer_batch(pipeline, run, batch, config)
                results.append(rows)
                added += len(rows)
                bar.set_postfix_str(run.name)
                bar.update(len(batch))
    finally:
        bar.close()
    return added


def _answer_batch(
    pipeline: Pipeline, run: RunSpec, batch: Sequence[QAItem], config: RunnerConfig
) -> list[Row]:
    options = run.config.options(max_new_tokens=config.max_new_tokens, mode=config.mode)
    contexts: list[Sequence[Chunk] | None] | None = None
    if run.variant.oracle:
        batch = [item for item in batch if item.context or item.doc_ids]
        contexts = [_oracle_chunks(pipeline, item, options) for item in batch]
        if not batch:
            return []
    answers = pipeline.ask_batch(
        [item.question for item in batch], options=options, contexts=contexts
    )
    return [
        make_row(
            item,
            run,
            answer,
            given=contexts[i] if contexts else None,
            batch_size=len(batch),
            correct_f1=config.correct_f1,
        )
        for i, (item, answer) in enumerate(zip(batch, answers, strict=True))
    ]


def _oracle_chunks(pipeline: Pipeline, item: QAItem, options: AskOptions) -> list[Chunk]:
    """The gold passage; for items that only name gold documents, the best chunks of those."""
    passage = oracle_context(item)
    if passage is not None:
        return passage
    from dataclasses import replace

    restricted = replace(options, retrieval=True, doc_ids=tuple(item.doc_ids))
    return [hit.chunk for hit in pipeline.search(item.question, restricted)]


def make_row(
    item: QAItem,
    run: RunSpec,
    answer: Answer,
    *,
    given: Sequence[Chunk] | None = None,
    batch_size: int = 1,
    correct_f1: float = 0.5,
) -> Row:
    """Score one answer and record what the report needs about it."""
    em, f1 = score_answer(
        answer.text, item.answers, answerable=item.answerable, refused=answer.refused
    )
    # A sentence that states the gold answer is right even when its F1 is low ("The lighthouse
    # was built in 1874" against "1874"), so containment counts as correct too.
    contains = (
        item.answerable
        and not answer.refused
        and contains_answer(strip_citations(answer.text), item.answers)
    )
    if not item.answerable:
        correct = answer.refused
    else:
        correct = not answer.refused and (f1 >= correct_f1 or contains)
    retrieved = []
    if given is None:
        retrieved = [
            Retrieved(
                chunk_id=hit.chunk.id,
                doc_id=hit.chunk.doc_id,
                score=float(hit.score),
                gold_doc=is_gold_doc(hit.chunk, item.doc_ids),
                has_answer=_is_gold_passage(hit.chunk, item),
            )
            for hit in answer.hits
        ]
    doc_rank = next((i for i, r in enumerate(retrieved, 1) if r.gold_doc), None)
    passage_rank = next((i for i, r in enumerate(retrieved, 1) if r.has_answer), None)
    context = list(given) if given is not None else [hit.chunk for hit in answer.hits]
    in_context = any(holds_gold(chunk, item) for chunk in context)
    cited = [c.chunk for c in answer.citations]
    return Row(
        qid=item.id,
        run=run.name,
        variant=run.variant.name,
        shots=run.shots,
        k=run.k,
        question=item.question,
        answers=list(item.answers),
        answerable=item.answerable,
        prediction=answer.text,
        refused=answer.refused,
        em=em,
        f1=f1,
        correct=bool(correct),
        attribution=attribute(
            answerable=item.answerable,
            refused=answer.refused,
            correct=bool(correct),
            gold_in_context=in_context,
        ),
        gold_in_context=in_context,
        gold_known=bool(item.doc_ids),
        gold_doc_rank=doc_rank if item.doc_ids else None,
        gold_passage_rank=passage_rank,
        retrieved=retrieved,
        citations=[
            {"marker": c.marker, "chunk_id": c.chunk.id, "doc_id": c.chunk.doc_id}
            for c in answer.citations
        ],
        citation_correct=(
            any(contains_answer(chunk.text, item.answers) for chunk in cited)
            if cited and item.answerable
            else None
        ),
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        retrieve_ms=answer.timings.retrieve_ms,
        first_token_ms=answer.timings.first_token_ms,
        total_ms=answer.timings.total_ms,
        batch_size=batch_size,
        sweep=run.sweep,
        dropped=list(answer.dropped),
        finish_reason=answer.finish_reason,
        memory_em=_memory_em(answer, item),
        contains_answer=contains,
    )


def _memory_em(answer: Answer, item: QAItem) -> float | None:
    """EM against the answers the context was changed away from (counterfactual sets)."""
    original = item.extra.get("original_answers")
    if not original or answer.refused:
        return None if not original else 0.0
    return max_over_ground_truths(exact_match_score, strip_citations(answer.text), original)


def _is_gold_passage(chunk: Chunk, item: QAItem) -> bool:
    """A chunk holding a gold answer (from a gold document, when those are known)."""
    if not item.answerable or not contains_answer(chunk.text, item.answers):
        return False
    return not item.doc_ids or is_gold_doc(chunk, item.doc_ids)
