"""What fine-tuning and training from scratch would cost, for the report's "what would" part.

Training compute is ~6·N·D FLOPs for N parameters and D tokens (forward and backward passes;
an upper bound for LoRA, which skips the frozen weights' gradients). Compute-optimal training
wants ~20 tokens per parameter (Hoffmann et al. 2022). Costs are stated at an explicit GPU
throughput and price, so a reader can redo the arithmetic with their own.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

TOKENS_PER_PARAMETER = 20
_SIZE_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*([mb])\b", re.IGNORECASE)


@dataclass(frozen=True)
class Hardware:
    name: str = "GPU"
    #: NVIDIA H100 SXM, dense bf16.
    peak_flops: float = 989e12
    #: Model FLOPs utilization a well-tuned training run reaches.
    utilization: float = 0.4
    usd_per_hour: float = 2.5

    @property
    def flops_per_second(self) -> float:
        return self.peak_flops * self.utilization

    def describe(self) -> str:
        return (
            f"{self.utilization:.0%} of a {self.peak_flops / 1e12:g} TFLOP/s {self.name} "
            f"({self.flops_per_second / 1e12:.0f} TFLOP/s sustained), "
            f"${self.usd_per_hour:.2f} per GPU-hour"
        )


@dataclass(frozen=True)
class CostLine:
    what: str
    parameters: float
    tokens: float
    flops: float
    gpu_hours: float
    usd: float
    note: str = ""

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def training_cost(
    what: str, parameters: float, tokens: float, hardware: Hardware, note: str = ""
) -> CostLine:
    flops = 6 * parameters * tokens
    hours = flops / hardware.flops_per_second / 3600
    return CostLine(what, parameters, tokens, flops, hours, hours * hardware.usd_per_hour, note)


def estimate_costs(
    *,
    corpus_tokens: int,
    reader_parameters: float | None,
    hardware: Hardware = Hardware(),
    finetune_epochs: int = 3,
) -> list[CostLine]:
    """Fine-tuning the reader on the corpus; a compute-optimal model for the corpus alone; and
    a compute-optimal model of the reader's size (which needs far more text than the corpus)."""
    lines = []
    if reader_parameters:
        lines.append(
            training_cost(
                f"fine-tune the reader on the corpus ({finetune_epochs} epochs)",
                reader_parameters,
                corpus_tokens * finetune_epochs,
                hardware,
                "LoRA: an upper bound; the adapter trains a fraction of the weights",
            )
        )
    optimal = corpus_tokens / TOKENS_PER_PARAMETER
    lines.append(
        training_cost(
            "train from scratch, compute-optimal for the corpus alone",
            optimal,
            corpus_tokens,
            hardware,
            f"{optimal:,.0f} parameters: far too small to read or follow instructions",
        )
    )
    if reader_parameters:
        needed = reader_parameters * TOKENS_PER_PARAMETER
        lines.append(
            training_cost(
                "train a reader-sized model from scratch, compute-optimal",
                reader_parameters,
                needed,
                hardware,
                f"needs {needed:,.0f} tokens; the corpus has {corpus_tokens:,} "
                f"({100 * corpus_tokens / needed:.2g}% of that)",
            )
        )
    return lines


def model_parameters(name_or_folder: str) -> float | None:
    """Parameters of a generator: from a folder's config.json, else from its name ("0.5b")."""
    config_path = Path(name_or_folder) / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        hidden = config.get("hidden_size")
        layers = config.get("num_hidden_layers")
        vocab = config.get("vocab_size")
        intermediate = config.get("intermediate_size", 4 * (hidden or 0))
        if hidden and layers and vocab:
            per_layer = 4 * hidden * hidden + 3 * hidden * intermediate
            tied = config.get("tie_word_embeddings", True)
            return float(layers * per_layer + vocab * hidden * (1 if tied else 2))
    match = _SIZE_IN_NAME.search(Path(name_or_folder).name)
    if match is None:
        return None
    return float(match.group(1)) * (1e6 if match.group(2).lower() == "m" else 1e9)
