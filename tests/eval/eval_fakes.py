"""Stand-ins for the evaluation's logic tests: a reading fake model, and a
tiny trainable causal LM with a word-level tokenizer (no downloads)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from eval.qa import QAItem
from rag.examples import ExampleBank
from rag.pipeline import Pipeline
from rag.types import Chunk, Message
from tests.fakes import FakeEmbedder, FakeIndex, ScriptedGenerator

_WORD = re.compile(r"\w+")


CHUNKS = [
    Chunk(1, "france.md", "Paris is the capital of France.", title="France", source="france.md"),
    Chunk(2, "japan.md", "Tokyo is the capital of Japan.", title="Japan", source="japan.md"),
    Chunk(3, "peru.md", "Lima is the capital of Peru.", title="Peru", source="peru.md"),
    Chunk(4, "kenya.md", "Nairobi is the capital of Kenya.", title="Kenya", source="kenya.md"),
]

ITEMS = [
    QAItem("q1", "What is the capital of France?", ("Paris",), ("france.md",)),
    QAItem("q2", "What is the capital of Japan?", ("Tokyo",), ("japan.md",)),
    QAItem(
        "q3",
        "What is the capital of Peru?",
        ("Lima",),
        ("peru.md",),
        context="Lima is the capital of Peru.",
    ),
    QAItem("q4", "What is the capital of Atlantis?", (), answerable=False),
]


def reader(messages: Sequence[Message]) -> str:
    """Answers from the numbered passage naming the asked country, like a model that reads;
    closed-book it knows only France; otherwise it refuses."""
    question = messages[-1].content
    country = re.search(r"capital of (\w+)\?", question)
    if country is None:
        return "I don't know."
    for line in question.splitlines():
        match = re.match(r"\[(\d+)\].*", line)
        if match:
            number = match.group(1)
        elif f"capital of {country.group(1)}." in line:
            return f"{line.split()[0]} [{number}]."
    if "Context:" not in question and country.group(1) == "France":
        return "Paris."
    return "I don't know."


def make_pipeline(script: Any = reader) -> Pipeline:
    embedder = FakeEmbedder()
    return Pipeline(
        ScriptedGenerator(script=script),
        index=FakeIndex(CHUNKS, embedder),
        embedder=embedder,
        examples=ExampleBank.default(embedder=embedder),
    )


def tiny_model_and_tokenizer(words: Sequence[str]) -> tuple[Any, Any]:
    """A 2-layer Llama with random weights and a word-level tokenizer over ``words``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=1,
    )
    return LlamaForCausalLM(config), tokenizer
