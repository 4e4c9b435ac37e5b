"""The decode engine with CUDA graphs on a real device (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from rag.generate.engine import DecodeEngine
from tests.rag.test_engine import reference

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
PROMPTS = [[1, 2, 3, 4, 5], [7, 8, 9], list(range(10, 80)), [100] * 12, [3]]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=512,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )
    with torch.device("cuda"):
        return Qwen2ForCausalLM(config).eval()  # fp32: kernels agree to rounding


def test_graphs_decode_what_generate_decodes(model: torch.nn.Module) -> None:
    engine = DecodeEngine(model, max_batch=3, max_len=256)
    assert engine.cuda_graphs
    outputs = engine.generate_batch(PROMPTS, max_new_tokens=40)
    assert outputs == [reference(model, p, 40) for p in PROMPTS]
    assert engine._scheduler.runner._graphs  # the steps were captured and replayed
    assert list(engine.generate_stream(PROMPTS[2], max_new_tokens=90)) == reference(
        model, PROMPTS[2], 90
    )


def test_sampling_on_the_device_is_seeded(model: torch.nn.Module) -> None:
    engine = DecodeEngine(model, max_batch=4, max_len=128)
    first = engine.generate_batch(PROMPTS[:3], max_new_tokens=20, temperature=0.8, seed=3)
    assert engine.generate_batch(PROMPTS[:3], max_new_tokens=20, temperature=0.8, seed=3) == first
    greedy = engine.generate_batch(PROMPTS[:3], max_new_tokens=20, temperature=1.0, top_p=1e-6)
    assert greedy == [reference(model, p, 20) for p in PROMPTS[:3]]
