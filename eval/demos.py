"""Demonstrations drawn from the team's own QA set, instead of the generic default bank.

In-context learning works best when the demonstrations look like the task: the default bank
teaches full-sentence answers about a fictional office, and on SQuAD that makes a small model
answer in sentences (F1 punishes every extra word) and pick up the bank's refusals. With
``--demos-from-qa N``, N questions that are *not* evaluated (and are no near-duplicate of one)
become the demonstrations: their gold paragraph as the one passage, their first gold answer,
cited, as the answer. The file is written into the output folder, so a reader can see exactly
what the model was shown.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from eval.qa import QAItem
from eval.split import find_leaks
from rag.errors import ConfigError

DEMOS_FILE = "demos.jsonl"


def demo_pool(
    all_items: Sequence[QAItem], evaluated: Sequence[QAItem], n: int, seed: int
) -> list[QAItem]:
    """Up to ``n`` answerable items with a gold passage, disjoint from and not leaking into
    ``evaluated``, chosen with ``seed``."""
    if n < 0:
        raise ConfigError(f"--demos-from-qa must be >= 0, got {n}")
    taken = {item.id for item in evaluated}
    candidates = [
        item
        for item in all_items
        if item.id not in taken and item.answerable and item.answers and item.context
    ]
    leaking = {leak.train_id for leak in find_leaks(candidates, evaluated)}
    candidates = [item for item in candidates if item.id not in leaking]
    random.Random(seed).shuffle(candidates)
    return candidates[:n]


def write_demos(items: Sequence[QAItem], out: Path) -> Path:
    """Write ``items`` as an example bank (the format `--examples` reads) to ``out/demos.jsonl``."""
    path = out / DEMOS_FILE
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "question": item.question,
                "context": [{"title": "", "text": item.context}],
                "answer": f"{item.answers[0]} [1]",
                "source_id": item.id,
            },
            ensure_ascii=False,
        )
        for item in items
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
