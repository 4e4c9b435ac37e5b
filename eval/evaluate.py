"""`rag eval` as one function: QA set -> runs through the pipeline -> results.jsonl -> report.

Loads and samples the QA set, checks it against the adapter's training questions, records the
run's configuration (model, index, adapter, sampling, k, shots; a rerun must match it to add
rows), counts the corpus's tokens for the cost estimate, measures each search mode's recall of
the gold documents (eval/search_modes.py), runs what is missing, and writes the report from the
rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.costs import Hardware, model_parameters
from eval.demos import DEMOS_FILE, demo_pool, write_demos
from eval.finetune import META_FILE, train_questions
from eval.qa import load_qa, reviewed_items, sample
from eval.recommend import MIN_GAIN
from eval.report import write_report
from eval.results import ResultsFile
from eval.runner import PipelineFactory, RunnerConfig, run_eval
from eval.search_modes import measure_modes, measured
from eval.split import check_no_leakage
from eval.summary import Summary
from eval.variants import default_variants, get_variant, plan_runs
from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.errors import ConfigError
from rag.generate.remote import REMOTE_ADAPTER, Remote
from rag.prompt import templates_digest
from rag.retrieve import parse_mode

if TYPE_CHECKING:
    from rag.pipeline import Pipeline

log = logging.getLogger("eval")

SWEEP = (0, 1, 3, 5)
#: Passages retrieved at the sweep's points (the baseline with the run's demonstrations).
K_SWEEP = (1, 2, 3, 5)


@dataclass(frozen=True)
class EvalRequest:
    qa: str
    index: Path
    model: str
    out: Path
    adapter: Path | None = None
    #: None: every variant that applies (the LoRA ones only with an adapter).
    variants: tuple[str, ...] | None = None
    limit: int | None = None
    seed: int = 0
    k: int = DEFAULT_K
    #: The search mode of the retrieval runs (the report compares every mode's recall anyway).
    mode: str = "hybrid"
    shots: int = DEFAULT_SHOTS
    sweep: tuple[int, ...] = SWEEP
    k_sweep: tuple[int, ...] = K_SWEEP
    target: float | None = None
    #: The smallest F1 gain worth fine-tuning for (a report setting: changing it reruns nothing).
    min_gain: float = MIN_GAIN
    batch_size: int = 4
    max_new_tokens: int = 64
    examples: Path | None = None
    #: Draw this many demonstrations from the QA set's unevaluated questions (eval/demos.py).
    demos_from_qa: int = 32
    #: Label the report as a smoke run (too few questions for conclusions).
    smoke: bool = False
    #: Evaluate only the rows a person accepted or edited (`rag qa review`); rejected rows are
    #: left out either way.
    reviewed_only: bool = False
    #: The generation engine (``rag.generate.ENGINES``); ``evaluate`` records the one it
    #: resolves to, since answers differ between engines (their weights are quantized apart).
    engine: str = "auto"

    def __post_init__(self) -> None:
        parse_mode(self.mode)
        names = self.variants or ()
        for name in names:
            get_variant(name).check_adapter(self.adapter is not None)
        if self.target is not None and not 0.0 < self.target <= 1.0:
            raise ConfigError(f"--target is an F1 in (0, 1], got {self.target}")
        if not 0.0 < self.min_gain < 1.0:
            raise ConfigError(f"--min-gain is an F1 difference in (0, 1), got {self.min_gain}")

    def variant_names(self) -> tuple[str, ...]:
        return self.variants or default_variants(self.adapter is not None)

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        return {
            "qa": self.qa,
            "index": str(self.index),
            "model": self.model,
            "adapter": str(self.adapter) if self.adapter else None,
            "seed": self.seed,
            "k": self.k,
            "mode": self.mode,
            "shots": self.shots,
            "max_new_tokens": self.max_new_tokens,
            "examples": None
            if self.demos_from_qa
            else str(self.examples)
            if self.examples
            else None,
            "demos_from_qa": self.demos_from_qa,
            "reviewed_only": self.reviewed_only,
            "engine": self.engine,
            # Answers depend on the prompt wording: an edited template starts a new run.
            "prompts": templates_digest(),
        }


def evaluate(
    request: EvalRequest,
    *,
    cache_dir: Path,
    device: str | None = None,
    hardware: Hardware = Hardware(),
    pipeline_for: PipelineFactory | None = None,
    progress: bool = True,
    remote: Remote | None = None,
) -> Summary:
    """Run what is missing of ``request`` into ``request.out`` and write the report; the model
    runs behind ``remote`` when given (every variant but the LoRA ones)."""
    if remote is not None and request.adapter is not None:
        raise ConfigError(REMOTE_ADAPTER)
    loaded = load_qa(request.qa, cache_dir=cache_dir)
    every_item = reviewed_items(loaded, only=request.reviewed_only, where=request.qa)
    if len(every_item) < len(loaded):
        log.info(
            "Left out %d questions of %s: %s",
            len(loaded) - len(every_item),
            request.qa,
            "not reviewed or rejected" if request.reviewed_only else "rejected in review",
        )
    items = sample(every_item, request.limit, request.seed)
    demonstrations = str(request.examples or "the bundled bank")
    if request.demos_from_qa and request.examples is None:
        pool = demo_pool(every_item, items, request.demos_from_qa, request.seed)
        if pool:
            request = replace(request, examples=write_demos(pool, request.out))
            demonstrations = f"{len(pool)} unevaluated questions of the QA set ({DEMOS_FILE})"
        else:
            demonstrations = "the bundled bank: no unevaluated question was left to draw from"
            log.warning(
                "All %d questions of %s are evaluated, so none is left for demonstrations: the "
                "few-shot variants use the bundled bank. Sample fewer with --limit to draw them "
                "from the QA set.",
                len(items),
                request.qa,
            )
    from rag.generate import choose_engine

    engine, _ = choose_engine(request.engine, request.model, device=device)
    request = replace(request, engine=engine)
    if request.adapter is not None:
        _check_adapter(request.adapter, request.model)
        check_no_leakage(train_questions(request.adapter), items)
    runs = plan_runs(
        request.variant_names(),
        shots=request.shots,
        k=request.k,
        sweep=request.sweep,
        k_sweep=request.k_sweep,
    )
    results = ResultsFile(request.out)
    results.start(
        request.fingerprint(),
        {"limit": request.limit, "smoke": request.smoke, "demonstrations": demonstrations},
    )
    if pipeline_for is None:
        pipeline_for = _build_factory(request, cache_dir, device, remote)
    done = results.done()
    pending = any((item.id, run.name) not in done for run in runs for item in items)
    base: list[Pipeline] = []
    if pending and "corpus_tokens" not in results.config():
        base.append(pipeline_for(False))
        results.update(_corpus_figures(base[0], request.model))
    if request.index is not None and not measured(request.out, items):
        if not base:
            base.append(pipeline_for(False))
        measure_modes(base[0], items, request.out)

    def factory(adapter: bool) -> Pipeline:
        return base.pop() if base and not adapter else pipeline_for(adapter)

    config = RunnerConfig(
        max_new_tokens=request.max_new_tokens,
        batch_size=request.batch_size,
        mode=parse_mode(request.mode),
        progress=progress,
    )
    run_eval(items, runs, factory, results, config)
    base.clear()
    return write_report(
        request.out,
        target=request.target,
        min_gain=request.min_gain,
        hardware=hardware,
        seed=request.seed,
    )


def _build_factory(
    request: EvalRequest, cache_dir: Path, device: str | None, remote: Remote | None
) -> PipelineFactory:
    from rag.pipeline import build_pipeline

    def build(adapter: bool) -> Pipeline:
        return build_pipeline(
            request.index,
            request.model,
            cache_dir=cache_dir,
            device=device,
            adapter=request.adapter if adapter else None,
            examples_path=request.examples,
            remote=remote,
            engine=request.engine,
        )

    return build


def _corpus_figures(pipeline: Pipeline, model: str) -> dict[str, Any]:
    """The corpus's size in the reader's tokens and the reader's size, for the cost estimate."""
    generator: Any = pipeline.generator
    figures: dict[str, Any] = {"corpus_tokens": None, "reader_parameters": None}
    if pipeline.index is not None:
        figures["corpus_tokens"] = sum(
            generator.count_tokens(chunk.text) for chunk in pipeline.index.all_chunks()
        )
    weights = getattr(generator, "model", None)
    if weights is not None and hasattr(weights, "parameters"):
        figures["reader_parameters"] = float(sum(p.numel() for p in weights.parameters()))
    else:
        figures["reader_parameters"] = model_parameters(model)
    return figures


def _check_adapter(adapter: Path, model: str) -> None:
    meta_path = adapter / META_FILE
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter} is not a LoRA adapter folder: pass what `rag finetune` wrote")
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("base_model") not in (None, model):
            raise ConfigError(
                f"adapter {adapter} was trained on {meta['base_model']}, not {model}: "
                f"pass --model {meta['base_model']}"
            )


def parse_variants(text: str | None) -> tuple[str, ...] | None:
    """``"rag,oracle"`` -> ("rag", "oracle"), validated; None or "" -> None (the defaults)."""
    if not text:
        return None
    names: Sequence[str] = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        get_variant(name)
    return tuple(names)
