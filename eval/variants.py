"""The concrete runs the variants expand to, and per-question attribution.

The variants themselves (name -> retrieval, demonstrations, adapter, oracle) are `rag.variants`,
the table the server and the CLI read too, so a report's row means what a client asking for that
name gets. Here: planning the runs (the requested variants plus the demonstrations and k
sweeps), the oracle's gold passage, and why each answer went right or wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from eval.metrics import contains_answer
from eval.qa import QAItem
from rag.errors import ConfigError
from rag.types import Chunk
from rag.variants import DEFAULT_VARIANT, VARIANTS, Variant, VariantConfig, available, get_variant

Attribution = Literal["correct", "retrieval miss", "reading miss", "refused"]
ATTRIBUTIONS: tuple[Attribution, ...] = ("correct", "retrieval miss", "reading miss", "refused")

#: The id of the gold passage given as context (real chunk ids are positive).
ORACLE_CHUNK_ID = -1

#: The product default every other variant is compared against.
BASELINE = DEFAULT_VARIANT


def default_variants(with_adapter: bool) -> tuple[str, ...]:
    return tuple(v.name for v in available(adapter=with_adapter, oracle=True))


@dataclass(frozen=True)
class RunSpec:
    """One concrete setting run over the QA set; ``name`` keys its rows in results.jsonl."""

    name: str
    variant: Variant
    shots: int
    k: int
    #: A point of the demonstrations sweep only (not a requested variant).
    sweep: bool = False

    @property
    def config(self) -> VariantConfig:
        """What this run answers with (what the server runs for ``variant``'s name, too)."""
        return self.variant.configure(shots=self.shots, k=self.k)

    @property
    def config_key(self) -> tuple[bool, int, int, bool, bool]:
        """What the run answers with; two runs with one key would give the same rows (k only
        matters with retrieval)."""
        config = self.config
        k = config.k if config.retrieval else 0
        return (config.retrieval, config.shots, k, config.oracle, config.adapter)


def plan_runs(
    names: Sequence[str],
    *,
    shots: int,
    k: int,
    sweep: Sequence[int] = (),
    k_sweep: Sequence[int] = (),
) -> list[RunSpec]:
    """The requested variants, then sweep points that no requested variant already covers:
    retrieval with N demonstrations at ``k`` (``sweep``), and the baseline with K passages at
    ``shots`` (``k_sweep``). Runs without the adapter come first, so the base pipeline can be
    released before the adapter's is loaded."""
    if shots < 0 or k < 1:
        raise ConfigError(f"need shots >= 0 and k >= 1, got shots={shots} k={k}")
    runs = []
    for name in dict.fromkeys(names):
        variant = get_variant(name)
        runs.append(RunSpec(name, variant, variant.configure(shots=shots, k=k).shots, k))
    points = []
    for count in sorted(set(sweep)):
        if count < 0:
            raise ConfigError(f"sweep shot counts must be >= 0, got {count}")
        base = VARIANTS["rag" if count == 0 else BASELINE]
        points.append(RunSpec(f"rag@{count}shot", base, count, k, sweep=True))
    for passages in sorted(set(k_sweep)):
        if passages < 1:
            raise ConfigError(f"k sweep values must be >= 1, got {passages}")
        base = VARIANTS["rag" if shots == 0 else BASELINE]
        points.append(RunSpec(f"{base.name}@k{passages}", base, shots, passages, sweep=True))
    covered = {run.config_key for run in runs}
    for run in points:
        if run.config_key not in covered:
            runs.append(run)
            covered.add(run.config_key)
    return sorted(runs, key=lambda run: run.variant.adapter)


def is_gold_doc(chunk: Chunk, gold_ids: Sequence[str]) -> bool:
    """Whether ``chunk`` comes from a gold document, named by id, source path or file stem.

    QA files written by hand name documents loosely ("Normans", "docs/Normans.md"), so an id
    matches the chunk's document id or source exactly, as a path suffix, or by stem.
    """
    names = {chunk.doc_id, chunk.source} - {""}
    stems = {PurePosixPath(name).stem for name in names}
    for gold in gold_ids:
        if gold in names or PurePosixPath(gold).stem in stems:
            return True
        if any(name.endswith("/" + gold.lstrip("/")) for name in names):
            return True
    return False


def holds_gold(chunk: Chunk, item: QAItem) -> bool:
    """Whether a context block gives the model what it needs to answer ``item``.

    The oracle passage always does. With a known gold passage (SQuAD) or no gold documents, a
    block must hold a gold answer (from a gold document, when those are known); with gold
    documents only (FAQ answers that are paraphrased, not quoted), any block of one does.
    """
    if chunk.id == ORACLE_CHUNK_ID:
        return True
    if not item.answerable:
        return False
    if item.context is not None or not item.doc_ids:
        return contains_answer(chunk.text, item.answers) and (
            not item.doc_ids or is_gold_doc(chunk, item.doc_ids)
        )
    return is_gold_doc(chunk, item.doc_ids)


def oracle_context(item: QAItem) -> list[Chunk] | None:
    """The gold passage as a context block, or None when the item carries no passage text."""
    if item.context is None or not item.context.strip():
        return None
    doc_id = item.doc_ids[0] if item.doc_ids else "gold"
    title = PurePosixPath(doc_id).stem.replace("_", " ")
    return [Chunk(id=ORACLE_CHUNK_ID, doc_id=doc_id, text=item.context, title=title, source=doc_id)]


def attribute(
    *, answerable: bool, refused: bool, correct: bool, gold_in_context: bool
) -> Attribution:
    """Why a question went right or wrong.

    ``retrieval miss``: the answer was wrong and the gold passage was not in the prompt (always
    so without retrieval); ``reading miss``: it was there and the model still answered wrongly
    (or answered an unanswerable question); ``refused``: an answerable question refused.
    """
    if not answerable:
        return "correct" if refused else "reading miss"
    if refused:
        return "refused"
    if correct:
        return "correct"
    return "reading miss" if gold_in_context else "retrieval miss"
