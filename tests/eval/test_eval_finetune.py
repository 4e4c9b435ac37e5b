"""LoRA training on a tiny random model, the training examples built from pipeline prompts,
and the adapter folder `rag eval --adapter` reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from eval.finetune import FinetuneRequest, finetune, qa_examples, train_questions
from eval.lora import IGNORE, TrainConfig, TrainExample, encode_examples, train_lora
from eval.qa import QAItem, write_qa_jsonl
from eval.split import LeakageError, check_no_leakage
from rag.errors import ConfigError
from rag.examples import ExampleBank
from rag.pipeline import Pipeline
from rag.types import Message
from tests.eval.eval_fakes import (
    CHUNKS,
    ITEMS,
    make_pipeline,
    tiny_model_and_tokenizer,
)
from tests.fakes import FakeEmbedder, FakeIndex, ScriptedGenerator

WORDS = [
    "what",
    "is",
    "the",
    "capital",
    "of",
    "france",
    "japan",
    "peru",
    "paris",
    "tokyo",
    "lima",
    "question",
    "answer",
]


def render(messages: Sequence[Message]) -> str:
    return " ".join(m.content for m in messages)


def test_encode_masks_the_prompt_and_keeps_the_target() -> None:
    _, tokenizer = tiny_model_and_tokenizer(WORDS)
    [(ids, labels)] = encode_examples([TrainExample("what is the capital", "paris")], tokenizer, 64)
    assert len(ids) == 6 and labels[:4] == [IGNORE] * 4
    assert labels[4:] == ids[4:] == [tokenizer.convert_tokens_to_ids("paris"), 1]  # + eos
    [(ids, labels)] = encode_examples([TrainExample("what is the capital", "paris")], tokenizer, 3)
    assert len(ids) == 3 and labels[1:] == ids[1:]  # the prompt loses tokens from the left
    [(ids, labels)] = encode_examples([TrainExample("", "lima peru")], tokenizer, 64)
    assert labels == ids  # continued pre-training: every token counts


def predicted_targets(model: Any, tokenizer: Any, examples: list[TrainExample]) -> list[str]:
    """The greedy next word after each prompt."""
    import torch

    out = []
    for example in examples:
        ids = tokenizer(example.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out.append(tokenizer.decode([int(model(input_ids=ids).logits[0, -1].argmax())]))
    return out


def test_train_lora_learns_and_saves_an_adapter(tmp_path: Path) -> None:
    from peft import PeftModel

    model, tokenizer = tiny_model_and_tokenizer(WORDS)
    before = {name for name, _ in model.named_modules()}
    examples = [
        TrainExample("what is the capital of france", "paris"),
        TrainExample("what is the capital of japan", "tokyo"),
    ]
    assert predicted_targets(model, tokenizer, examples) != ["paris", "tokyo"]
    config = TrainConfig(rank=4, alpha=8, learning_rate=1e-2, max_steps=30, batch_size=2)
    result = train_lora(model, tokenizer, examples, tmp_path / "adapter", config, progress=False)
    losses = [point["loss"] for point in result.loss_curve]
    assert result.steps == 30 and len(losses) == 30
    assert losses[-1] < 0.85 * losses[0]  # a random tiny model's frozen head caps how low
    assert json.loads((tmp_path / "adapter" / "loss.json").read_text())[0]["step"] == 1
    assert result.trainable_parameters > 0 and result.device == "cpu"
    assert {name for name, _ in model.named_modules()} == before  # LoRA layers removed again
    fresh, _ = tiny_model_and_tokenizer(WORDS)  # the same seed: the same base weights
    adapted = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter"))
    assert predicted_targets(adapted, tokenizer, examples) == ["paris", "tokyo"]


def test_qa_examples_use_pipeline_prompts_and_raft_gold_insertion(tmp_path: Path) -> None:
    pipeline = make_pipeline()
    chile = QAItem(
        "q5",
        "What is the capital of Chile?",
        ("Santiago",),
        ("chile.md",),
        context="Santiago is the capital of Chile.",
    )
    request = FinetuneRequest(
        model="m",
        out=tmp_path,
        on="qa",
        train="x",
        index=tmp_path,
        with_context=True,
        k=2,
        shots=1,
        gold_fraction=1.0,
    )
    france, _, _, atlantis, chile_example = qa_examples(pipeline, render, [*ITEMS, chile], request)
    assert france.target == "Paris [1]"
    assert "Paris is the capital of France." in france.prompt
    assert atlantis.target == "I don't know."
    assert "Santiago is the capital of Chile." in chile_example.prompt  # swapped in
    assert chile_example.target.startswith("Santiago [")
    never = FinetuneRequest(
        model="m",
        out=tmp_path,
        on="qa",
        train="x",
        index=tmp_path,
        with_context=True,
        k=2,
        gold_fraction=0.0,
    )
    assert qa_examples(pipeline, render, [chile], never)[0].target == "I don't know."
    closed = FinetuneRequest(model="m", out=tmp_path, on="qa", train="x")
    [example] = qa_examples(pipeline, render, ITEMS[:1], closed)
    assert example.target == "Paris" and "Context:" not in example.prompt


class TinyGenerator(ScriptedGenerator):
    """The attributes fine-tuning reaches on TransformersGenerator, on a tiny random model."""

    def __init__(self) -> None:
        super().__init__(replies=[])
        self.model, self.tokenizer = tiny_model_and_tokenizer(WORDS)

    def render(self, messages: Sequence[Message]) -> str:
        return render(messages)


def tiny_pipeline() -> Pipeline:
    embedder = FakeEmbedder()
    return Pipeline(
        TinyGenerator(),
        index=FakeIndex(CHUNKS, embedder),
        embedder=embedder,
        examples=ExampleBank.default(embedder=embedder),
    )


def test_finetune_on_qa_splits_checks_leakage_and_writes_metadata(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    write_qa_jsonl(ITEMS, qa)
    out = tmp_path / "adapter"
    request = FinetuneRequest(
        model="tiny",
        out=out,
        on="qa",
        train=str(qa),
        test_fraction=0.5,
        train_config=TrainConfig(rank=2, max_steps=3, batch_size=2),
    )
    result = finetune(request, cache_dir=tmp_path, pipeline=tiny_pipeline(), progress=False)
    meta = json.loads((out / "adapter_meta.json").read_text())
    assert meta == result.meta
    assert meta["base_model"] == "tiny" and meta["steps"] == 3 and meta["examples"] == 2
    assert meta["variant"] == "lora" and len(meta["data_sha256"]) == 64
    trained = train_questions(out)
    assert [i.id for i in trained] == [
        json.loads(line)["id"] for line in (out / "train.jsonl").read_text().splitlines()
    ]
    test = [
        QAItem.from_dict(json.loads(line)) for line in (out / "test.jsonl").read_text().splitlines()
    ]
    check_no_leakage(trained, test)
    with pytest.raises(LeakageError):
        check_no_leakage(trained, trained)


def test_finetune_refuses_a_leaking_test_set_before_loading_a_model(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    write_qa_jsonl(ITEMS, qa)
    request = FinetuneRequest(
        model="never-loaded", out=tmp_path / "a", on="qa", train=str(qa), test=str(qa)
    )
    with pytest.raises(LeakageError, match="leak into the training data"):
        finetune(request, cache_dir=tmp_path, progress=False)


def test_finetune_on_corpus_reads_every_chunk(tmp_path: Path) -> None:
    pipeline = tiny_pipeline()
    request = FinetuneRequest(
        model="tiny",
        out=tmp_path / "a",
        on="corpus",
        index=tmp_path,
        train_config=TrainConfig(rank=2, max_steps=2, batch_size=4),
    )
    meta = finetune(request, cache_dir=tmp_path, pipeline=pipeline, progress=False).meta
    assert meta["examples"] == len(CHUNKS) and meta["on"] == "corpus"
    assert train_questions(tmp_path / "a") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on": "corpus"}, "pass --index"),
        ({"on": "qa"}, "needs --train"),
        ({"on": "qa", "train": "x", "with_context": True}, "--with-context needs"),
        ({"on": "qa", "train": "x", "test": "y", "test_fraction": 0.5}, "not both"),
        ({"on": "web"}, "corpus or qa"),
    ],
)
def test_request_validation(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        FinetuneRequest(model="m", out=tmp_path, **kwargs)
