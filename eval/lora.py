"""The LoRA training loop: (prompt, target) texts in, a peft adapter folder and a loss curve out.

A plain loop rather than a Trainer: the data is small, the steps are few, and every number the
report shows (loss per step, seconds) is measured here. The loss covers the target tokens only
(the prompt is context, not something to learn to write); for continued pre-training on the
corpus the prompt is empty, so every token counts. Works on CPU (fp32) and CUDA (the model's
dtype; the adapter weights stay fp32).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import ConfigError

IGNORE = -100
LOSS_FILE = "loss.json"


@dataclass(frozen=True)
class TrainExample:
    """Text the model reads (no loss) followed by text it learns to write."""

    prompt: str
    target: str


@dataclass(frozen=True)
class TrainConfig:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    learning_rate: float = 2e-4
    epochs: float = 1.0
    #: Stop after this many optimizer steps (overrides ``epochs`` when set).
    max_steps: int | None = None
    batch_size: int = 4
    #: Longer examples lose prompt tokens from the left (the target is kept whole if it fits).
    max_tokens: int = 1024
    warmup_fraction: float = 0.05
    seed: int = 0
    target_modules: str = "all-linear"

    def __post_init__(self) -> None:
        if self.rank < 1 or self.alpha < 1:
            raise ConfigError(f"LoRA rank and alpha must be >= 1, got {self.rank}, {self.alpha}")
        if self.learning_rate <= 0 or self.epochs <= 0 or self.batch_size < 1:
            raise ConfigError("learning rate, epochs and batch size must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max steps must be >= 1, got {self.max_steps}")
        if self.max_tokens < 8:
            raise ConfigError(f"max tokens must be >= 8, got {self.max_tokens}")

    def steps_for(self, examples: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(examples * self.epochs / self.batch_size))


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    seconds: float
    loss_curve: list[dict[str, float]]
    trainable_parameters: int
    device: str


def encode_examples(
    examples: Sequence[TrainExample], tokenizer: Any, max_tokens: int
) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example; labels are IGNORE over the prompt."""
    eos = tokenizer.eos_token_id
    encoded = []
    for example in examples:
        prompt = (
            tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
            if example.prompt
            else []
        )
        target = tokenizer(example.target, add_special_tokens=False)["input_ids"]
        if eos is not None:
            target = [*target, eos]
        target = target[:max_tokens]
        prompt = prompt[max(0, len(prompt) - (max_tokens - len(target))) :]
        encoded.append(([*prompt, *target], [IGNORE] * len(prompt) + list(target)))
    return encoded


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[TrainExample],
    out: Path,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on ``model`` (modified in place, restored after) and save it to
    ``out`` with ``loss.json``. Returns the measured steps, loss and time."""
    import peft
    import torch
    from tqdm import tqdm

    if not examples:
        raise ConfigError("no training examples: check the training file or the index")
    torch.manual_seed(config.seed)
    order_rng = random.Random(config.seed)
    data = encode_examples(examples, tokenizer, config.max_tokens)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    lora = peft.get_peft_model(
        model,
        peft.LoraConfig(
            task_type="CAUSAL_LM",
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=config.target_modules,
        ),
    )
    trainable = [p for p in lora.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    steps = config.steps_for(len(data))
    warmup = max(1, int(steps * config.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))),
    )
    curve: list[dict[str, float]] = []
    queue: list[int] = []
    started = time.perf_counter()
    lora.train()
    try:
        with tqdm(total=steps, desc="lora", unit="step", disable=not progress) as bar:
            for step in range(1, steps + 1):
                batch: list[tuple[list[int], list[int]]] = []
                while len(batch) < config.batch_size:
                    if not queue:
                        queue = list(range(len(data)))
                        order_rng.shuffle(queue)
                    batch.append(data[queue.pop()])
                inputs, labels, mask = _pad(batch, pad)
                output = lora(
                    input_ids=torch.tensor(inputs, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    labels=torch.tensor(labels, device=device),
                )
                output.loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                loss = float(output.loss.detach())
                curve.append({"step": step, "loss": loss, "seconds": time.perf_counter() - started})
                bar.set_postfix(loss=f"{loss:.3f}")
                bar.update(1)
        seconds = time.perf_counter() - started
        out.mkdir(parents=True, exist_ok=True)
        lora.save_pretrained(str(out))
        (out / LOSS_FILE).write_text(json.dumps(curve) + "\n", encoding="utf-8")
    finally:
        lora.eval()
        lora.unload()  # give the caller back its base model, without LoRA layers
    tail = [point["loss"] for point in curve[-max(1, len(curve) // 10) :]]
    return TrainResult(
        steps=steps,
        final_loss=sum(tail) / len(tail),
        seconds=seconds,
        loss_curve=curve,
        trainable_parameters=sum(p.numel() for p in trainable),
        device=str(device),
    )


def _pad(
    batch: Sequence[tuple[list[int], list[int]]], pad: int
) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    width = max(len(ids) for ids, _ in batch)
    inputs = [ids + [pad] * (width - len(ids)) for ids, _ in batch]
    labels = [lab + [IGNORE] * (width - len(lab)) for _, lab in batch]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]
    return inputs, labels, mask
