"""`rag finetune`: a LoRA adapter trained on the corpus or on question -> answer pairs.

Two questions, two modes. ``on="corpus"`` continues pre-training on the indexed chunks: does
fine-tuning inject the documents' knowledge (Ovadia et al. 2023)? ``on="qa"`` trains on the
training split's question -> answer pairs, rendered with the exact prompts the pipeline builds:
closed-book prompts (the ``lora`` variant), or with ``with_context`` the retrieval prompts with
their distractors, as in RAFT (Zhang et al. 2024) (the ``lora-rag`` variant): does fine-tuning
make a better reader? The leakage check runs before any model loads. The adapter folder holds
the peft weights, ``loss.json``, ``adapter_meta.json`` and the training questions, which
`rag eval --adapter` checks its test set against.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from eval.lora import TrainConfig, TrainExample, train_lora
from eval.qa import QAItem, load_qa, read_qa_jsonl, sample, write_qa_jsonl
from eval.split import check_no_leakage, split_by_question
from eval.variants import VARIANTS, holds_gold, oracle_context
from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.errors import ConfigError
from rag.types import Chunk, Message

if TYPE_CHECKING:
    from rag.pipeline import AskOptions, Pipeline

TrainOn = Literal["corpus", "qa"]
META_FILE = "adapter_meta.json"
TRAIN_QUESTIONS = "train_questions.jsonl"


@dataclass(frozen=True)
class FinetuneRequest:
    model: str
    out: Path
    on: TrainOn
    index: Path | None = None
    #: QA source for ``on="qa"``: a .jsonl/.json file or a fetchable set name.
    train: str | None = None
    #: A held-out QA set checked for leakage before training.
    test: str | None = None
    #: Split ``train`` into train/test (written to ``out``) instead of passing ``test``.
    test_fraction: float | None = None
    limit: int | None = None
    seed: int = 0
    with_context: bool = False
    k: int = DEFAULT_K
    shots: int = DEFAULT_SHOTS
    #: With context: the share of examples whose prompt is guaranteed the gold passage.
    gold_fraction: float = 0.8
    leakage_threshold: float = 0.8
    train_config: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.on not in ("corpus", "qa"):
            raise ConfigError(f"--on must be corpus or qa, got {self.on!r}")
        if self.on == "corpus" and self.index is None:
            raise ConfigError("--on corpus trains on the indexed chunks: pass --index DIR")
        if self.on == "qa" and not self.train:
            raise ConfigError("--on qa needs --train FILE (question/answer pairs, JSONL)")
        if self.with_context and (self.on != "qa" or self.index is None):
            raise ConfigError("--with-context needs --on qa and --index DIR to retrieve from")
        if self.test and self.test_fraction is not None:
            raise ConfigError("pass either --test FILE or --test-fraction F, not both")
        if not 0.0 <= self.gold_fraction <= 1.0:
            raise ConfigError(f"gold fraction must be in [0, 1], got {self.gold_fraction}")

    def variant(self) -> str | None:
        """The eval variant whose prompts a QA adapter is trained on (None for the corpus)."""
        if self.on == "corpus":
            return None
        return "lora-rag" if self.with_context else "lora"

    def options(self) -> AskOptions:
        """The pipeline options of that variant (how training prompts are built)."""
        variant = VARIANTS[self.variant() or "lora"]
        return variant.configure(shots=self.shots, k=self.k).options()


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    meta: dict[str, Any]


def finetune(
    request: FinetuneRequest,
    *,
    cache_dir: Path,
    device: str | None = None,
    pipeline: Pipeline | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Check for leakage, build the examples, train, and save the adapter with its metadata."""
    train_items: list[QAItem] = []
    if request.on == "qa":
        assert request.train is not None
        train_items = sample(
            load_qa(request.train, cache_dir=cache_dir), request.limit, request.seed
        )
        train_items = _hold_out(request, train_items, cache_dir)
    if pipeline is None:
        from rag.pipeline import build_pipeline

        pipeline = build_pipeline(
            request.index if request.index else None,
            request.model,
            cache_dir=cache_dir,
            device=device,
            engine="transformers",  # training needs the torch model
        )
    generator: Any = pipeline.generator
    if not all(hasattr(generator, a) for a in ("model", "tokenizer", "render")):
        raise ConfigError(
            "fine-tuning needs a local transformers model; a remote (--base-url) model cannot "
            "be trained here"
        )
    if request.on == "corpus":
        assert pipeline.index is not None
        examples = [TrainExample("", chunk.text) for chunk in pipeline.index.all_chunks()]
    else:
        examples = qa_examples(pipeline, generator.render, train_items, request)
    result = train_lora(
        generator.model,
        generator.tokenizer,
        examples,
        request.out,
        request.train_config,
        progress=progress,
    )
    if train_items:
        write_qa_jsonl(train_items, request.out / TRAIN_QUESTIONS)
    meta = {
        "base_model": request.model,
        "on": request.on,
        "with_context": request.with_context,
        "variant": request.variant(),
        "prompt_options": (
            {k: v for k, v in asdict(request.options()).items() if k in ("k", "shots", "retrieval")}
            if request.on == "qa"
            else None
        ),
        "train": request.train,
        "test": request.test,
        "index": str(request.index) if request.index else None,
        "examples": len(examples),
        "data_sha256": data_hash(examples),
        "steps": result.steps,
        "final_loss": round(result.final_loss, 4),
        "seconds": round(result.seconds, 1),
        "trainable_parameters": result.trainable_parameters,
        "device": result.device,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{f"lora_{k}": v for k, v in asdict(request.train_config).items()},
    }
    (request.out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return FinetuneResult(request.out, meta)


def _hold_out(request: FinetuneRequest, items: list[QAItem], cache_dir: Path) -> list[QAItem]:
    """The training items, after the leakage check against the test set (or a fresh split)."""
    if request.test_fraction is not None:
        split = split_by_question(
            items,
            test_fraction=request.test_fraction,
            seed=request.seed,
            threshold=request.leakage_threshold,
        )
        write_qa_jsonl(split.train, request.out / "train.jsonl")
        write_qa_jsonl(split.test, request.out / "test.jsonl")
        items, test = split.train, split.test
    elif request.test:
        test = load_qa(request.test, cache_dir=cache_dir)
    else:
        return items
    check_no_leakage(items, test, threshold=request.leakage_threshold)
    return items


def qa_examples(
    pipeline: Pipeline,
    render: Callable[[Sequence[Message]], str],
    items: Sequence[QAItem],
    request: FinetuneRequest,
) -> list[TrainExample]:
    """Prompts exactly as the pipeline builds them, each followed by the answer to learn.

    With context, the gold passage is swapped into the retrieved passages when retrieval missed
    it, for ``gold_fraction`` of the examples; the rest keep what retrieval gave. The target cites
    the block holding the answer, or is the refusal when no block does (what the prompt's rules
    ask for).
    """
    options = request.options()
    rng = random.Random(request.seed)
    examples = []
    for item in items:
        context: list[Chunk] | None = None
        if request.with_context:
            context = [hit.chunk for hit in pipeline.search(item.question, options)]
            gold = oracle_context(item)
            missed = not any(holds_gold(chunk, item) for chunk in context)
            if gold and missed and rng.random() < request.gold_fraction:
                context = context[: max(0, options.k - 1)]
                context.insert(rng.randrange(len(context) + 1), gold[0])
        build = pipeline.build_messages(item.question, options=options, context=context)
        examples.append(
            TrainExample(
                render(build.messages), _target(item, build.context, pipeline.refusal, context)
            )
        )
    return examples


def _target(
    item: QAItem, blocks: Sequence[Chunk], refusal: str, context: Sequence[Chunk] | None
) -> str:
    if not item.answerable:
        return refusal
    if context is None:
        return item.answers[0]
    marker = next((n for n, chunk in enumerate(blocks, 1) if holds_gold(chunk, item)), None)
    return f"{item.answers[0]} [{marker}]" if marker is not None else refusal


def data_hash(examples: Sequence[TrainExample]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.prompt, example.target]).encode("utf-8"))
    return digest.hexdigest()


def train_questions(adapter: Path) -> list[QAItem]:
    """The questions an adapter was trained on (empty for corpus adapters)."""
    path = adapter / TRAIN_QUESTIONS
    return read_qa_jsonl(path) if path.is_file() else []
