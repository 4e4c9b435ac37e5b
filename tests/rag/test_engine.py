"""The decode engine on tiny random Llama / Qwen2 models on the CPU: same tokens as generate()."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rag.errors import ConfigError, GenerationError
from rag.generate.base import GenerationConfig
from rag.generate.engine import DecodeEngine
from rag.generate.engine_runner import DecodeRunner

SHAPE: dict[str, Any] = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
PROMPTS = [[1, 2, 3, 4, 5], [7, 8, 9], list(range(10, 40)), [100] * 12, [3]]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and torch's pool stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(kind: str, attention: str = "sdpa") -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "llama":
        model = LlamaForCausalLM._from_config(LlamaConfig(**SHAPE), attn_implementation=attention)
    else:
        model = Qwen2ForCausalLM._from_config(Qwen2Config(**SHAPE), attn_implementation=attention)
    return model.eval()


@pytest.fixture(scope="module")
def qwen() -> torch.nn.Module:
    return tiny("qwen2")


def reference(model: torch.nn.Module, prompt: list[int], new_tokens: int) -> list[int]:
    """Plain greedy `generate()` on the model's own device: what the engine must reproduce."""
    ids = torch.tensor([prompt], device=next(model.parameters()).device)
    out = model.generate(  # type: ignore[operator]
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize(("kind", "attention"), [("qwen2", "sdpa"), ("llama", "eager")])
def test_streams_match_generate(kind: str, attention: str) -> None:
    model = tiny(kind, attention)
    engine = DecodeEngine(model, max_batch=2, max_len=64)
    for prompt in PROMPTS[:3]:
        assert list(engine.generate_stream(prompt, max_new_tokens=12)) == reference(
            model, prompt, 12
        )


def test_batch_of_mixed_lengths_matches_generate_and_reuses_slots(qwen: torch.nn.Module) -> None:
    # Five prompts over three slots: two wait, then take the slots the first ones free.
    engine = DecodeEngine(qwen, max_batch=3, max_len=96, sync_every=4)
    budgets = [20, 6, 9, 20, 13]
    streams = [
        engine.generate_stream(p, max_new_tokens=n) for p, n in zip(PROMPTS, budgets, strict=True)
    ]
    outputs = [list(stream) for stream in streams]
    for prompt, budget, output in zip(PROMPTS, budgets, outputs, strict=True):
        assert output == reference(qwen, prompt, budget)
    assert engine.generate_batch(PROMPTS, max_new_tokens=10) == [
        reference(qwen, p, 10) for p in PROMPTS
    ]


def test_eos_ends_the_stream_and_is_yielded(qwen: torch.nn.Module) -> None:
    expected = reference(qwen, PROMPTS[2], 16)
    eos = expected[5]
    cut = expected.index(eos) + 1
    engine = DecodeEngine(qwen, max_batch=2, max_len=64)
    assert (
        list(engine.generate_stream(PROMPTS[2], max_new_tokens=16, eos_ids=[eos]))
        == (expected[:cut])
    )


def test_max_new_tokens_is_exact(qwen: torch.nn.Module) -> None:
    engine = DecodeEngine(qwen, max_batch=4, max_len=64, sync_every=8)
    for budget in (1, 2, 7, 8, 9):
        assert [len(o) for o in engine.generate_batch(PROMPTS[:2], max_new_tokens=budget)] == [
            budget,
            budget,
        ]


def test_closing_a_stream_frees_its_slot(qwen: torch.nn.Module) -> None:
    engine = DecodeEngine(qwen, max_batch=1, max_len=96, sync_every=2)
    stream = engine.generate_stream(PROMPTS[0], max_new_tokens=60)
    next(stream)
    stream.close()
    result: list[list[int]] = []
    worker = threading.Thread(
        target=lambda: result.append(list(engine.generate_stream(PROMPTS[1], max_new_tokens=5)))
    )
    worker.start()
    worker.join(timeout=60)
    assert result == [reference(qwen, PROMPTS[1], 5)]


def test_concurrent_callers_share_the_engine(qwen: torch.nn.Module) -> None:
    engine = DecodeEngine(qwen, max_batch=4, max_len=64)
    results: dict[int, list[int]] = {}

    def call(index: int) -> None:
        results[index] = list(engine.generate_stream(PROMPTS[index], max_new_tokens=10))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {i: reference(qwen, PROMPTS[i], 10) for i in range(4)}


def test_decode_steps_yields_every_prompt_per_step(qwen: torch.nn.Module) -> None:
    engine = DecodeEngine(qwen, max_batch=4, max_len=64)
    steps = list(engine.decode_steps(PROMPTS[:3], GenerationConfig(max_new_tokens=6)))
    assert [list(column) for column in zip(*steps, strict=True)] == [
        reference(qwen, p, 6) for p in PROMPTS[:3]
    ]


def test_sampling_is_seeded_and_tiny_top_p_is_greedy(qwen: torch.nn.Module) -> None:
    engine = DecodeEngine(qwen, max_batch=4, max_len=64)

    def sample(seed: int, top_p: float = 1.0) -> list[list[int]]:
        return engine.generate_batch(
            PROMPTS[:2], max_new_tokens=12, temperature=1.0, top_p=top_p, seed=seed
        )

    first = sample(7)
    assert sample(7) == first
    assert sample(8) != first
    assert first != [reference(qwen, p, 12) for p in PROMPTS[:2]]
    assert sample(7, top_p=1e-6) == [reference(qwen, p, 12) for p in PROMPTS[:2]]


def test_a_traced_step_decodes_the_same(qwen: torch.nn.Module) -> None:
    """torch.compile traces the step without changing it (backend "eager": no C++ compile)."""
    engine = DecodeEngine(qwen, max_batch=2, max_len=64, compile_backend="eager")
    assert engine.generate_batch(PROMPTS[:2], max_new_tokens=8) == [
        reference(qwen, p, 8) for p in PROMPTS[:2]
    ]


def test_bad_requests_are_refused(qwen: torch.nn.Module) -> None:
    engine = DecodeEngine(qwen, max_batch=1, max_len=16)
    with pytest.raises(ConfigError, match="max_len"):
        engine.generate_stream(list(range(10)), max_new_tokens=8)
    with pytest.raises(ConfigError, match="empty"):
        engine.generate_stream([], max_new_tokens=1)
    with pytest.raises(ConfigError, match="token ids"):
        engine.generate_stream([999], max_new_tokens=1)
    with pytest.raises(ConfigError, match="max_batch"):
        DecodeEngine(qwen, max_batch=0)


def test_unsupported_models_are_named() -> None:
    torch.manual_seed(0)
    sliding = Qwen2ForCausalLM(
        Qwen2Config(**SHAPE, use_sliding_window=True, sliding_window=8, max_window_layers=0)
    )
    assert not DecodeEngine.supports(sliding)
    with pytest.raises(ConfigError, match="sliding"):
        DecodeEngine(sliding)
    training = tiny("qwen2").train()
    engine = DecodeEngine(training, max_batch=1, max_len=32)
    with pytest.raises(ConfigError, match="eval"):
        engine.generate_stream([1, 2], max_new_tokens=2)


def test_a_device_failure_reaches_the_caller_and_the_engine_recovers(
    qwen: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = DecodeEngine(qwen, max_batch=2, max_len=64)

    def broken(*args: Any, **kwargs: Any) -> list[int]:
        raise RuntimeError("device lost")

    monkeypatch.setattr(DecodeRunner, "prefill", broken)
    with pytest.raises(GenerationError, match="device lost"):
        list(engine.generate_stream(PROMPTS[0], max_new_tokens=4))
    monkeypatch.undo()
    assert list(engine.generate_stream(PROMPTS[0], max_new_tokens=4)) == reference(
        qwen, PROMPTS[0], 4
    )
