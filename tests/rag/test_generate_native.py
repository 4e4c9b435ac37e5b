"""The CPU engines (OpenVINO 8-bit, CTranslate2 int8, llama.cpp) on the real smollm2-135m GGUF,
no fakes.

Each test runs against every engine. The transformers backend is the reference: same prompt
token for token, and greedy answers that agree with it as far as quantization allows.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rag.errors import GenerationError
from rag.generate import GenerationConfig, load_generator
from rag.generate.native import NativeGenerator
from rag.generate.transformers_backend import TransformersGenerator
from rag.models import model_folder
from rag.types import Message

MODEL = "smollm2-135m"
ENGINES = ("openvino", "ctranslate2", "llama.cpp")
QUESTION = [Message("user", "Write two sentences about the river Seine in Paris.")]
SHORT = [Message("user", "Say hello.")]
PROMPTS = [
    QUESTION,
    SHORT,
    [Message("user", "What is the capital of Japan?")],
    [Message("user", "Name three colors.")],
    [Message("user", "Describe a cat in one sentence.")],
    [Message("user", "What does a bank teller do?")],
    [Message("system", "Answer in one word."), Message("user", "Is water wet?")],
    [Message("user", "List three fruits.")],
]


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    return Path(os.environ["RAG_TEST_CACHE"])


@pytest.fixture(scope="module")
def reference(cache_dir: Path) -> Iterator[TransformersGenerator]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second busy process stalls torch's spinning threads
    model_folder(MODEL, cache_dir)
    generator = load_generator(MODEL, cache_dir=cache_dir, device="cpu", engine="transformers")
    assert isinstance(generator, TransformersGenerator)
    generator.warm_up()
    yield generator
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=ENGINES)
def native(request: pytest.FixtureRequest, cache_dir: Path) -> NativeGenerator:
    generator = load_generator(MODEL, cache_dir=cache_dir, engine=request.param)
    assert isinstance(generator, NativeGenerator) and generator.engine == request.param
    generator.warm_up()
    return generator


def common_prefix(a: Sequence[object], b: Sequence[object]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_the_prompt_is_the_transformers_prompt_token_for_token(
    native: NativeGenerator, reference: TransformersGenerator
) -> None:
    for chat in PROMPTS:
        assert native.encode(chat) == reference.encode(chat)
        assert native.count_prompt_tokens(chat) == reference.count_prompt_tokens(chat)
    assert native.render(SHORT).startswith("<|im_start|>system\nYou are a helpful assistant.")
    text = "Le fleuve traverse Paris: 777 km, naïve café ☕."
    assert native.count_tokens(text) == reference.count_tokens(text)


def test_the_window_comes_from_the_model_config(native: NativeGenerator) -> None:
    # max_position_embeddings of SmolLM2 (8192), not a 512 or 2048 default.
    assert native.context_window == 8192
    long = [Message("user", "word " * 2100)]
    result = native.generate(long, GenerationConfig(max_new_tokens=4))
    assert result.prompt_tokens > 2100 and result.completion_tokens >= 1


def test_streaming_is_token_by_token_and_matches_generate(native: NativeGenerator) -> None:
    config = GenerationConfig(max_new_tokens=24)
    deltas = list(native.stream(QUESTION, config))
    last = deltas[-1]
    assert len(deltas) > 10 and all(d.finish_reason is None for d in deltas[:-1])
    assert all(d.text for d in deltas[:-1])
    assert (last.finish_reason, last.completion_tokens) == ("length", 24)
    assert last.prompt_tokens == native.count_prompt_tokens(QUESTION)
    streamed = "".join(d.text for d in deltas)
    assert "Seine" in streamed or "Paris" in streamed
    assert native.generate(QUESTION, config).text == streamed


def test_stop_strings_cut_the_text_across_token_boundaries(native: NativeGenerator) -> None:
    free = native.generate(QUESTION, GenerationConfig(max_new_tokens=24)).text
    stop = free[12:19]  # most likely spans a token boundary
    config = GenerationConfig(max_new_tokens=24, stop=(stop,))
    deltas = list(native.stream(QUESTION, config))
    assert "".join(d.text for d in deltas) == free[: free.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    [batched] = native.generate_batch([QUESTION], config)
    assert batched.text == free[: free.index(stop)] and batched.finish_reason == "stop"


def test_the_answer_budget_follows_the_window(native: NativeGenerator, cache_dir: Path) -> None:
    small = load_generator(MODEL, cache_dir=cache_dir, engine=native.engine)
    small.context_window = 48
    prompt_tokens = small.count_prompt_tokens(SHORT)
    result = small.generate(SHORT, GenerationConfig(max_new_tokens=200))
    # The answer may take what the window leaves, and no more.
    assert result.completion_tokens <= 48 - prompt_tokens
    with pytest.raises(GenerationError, match="--k"):
        small.generate([Message("user", "word " * 60)], GenerationConfig())


def test_seeded_sampling_repeats_itself(native: NativeGenerator) -> None:
    texts = [
        native.generate(QUESTION, GenerationConfig(12, temperature=1.0, top_p=0.9, seed=seed)).text
        for seed in (7, 7, 1, 2)
    ]
    assert texts[0] == texts[1], texts
    assert len(set(texts)) > 1, texts  # and the seed matters


def test_a_batch_keeps_its_order_and_gives_the_single_answers(native: NativeGenerator) -> None:
    config = GenerationConfig(max_new_tokens=16)
    chats = PROMPTS[:4]
    singles = [native.generate(chat, config) for chat in chats]
    batch = native.generate_batch(chats, config)
    assert [r.prompt_tokens for r in batch] == [r.prompt_tokens for r in singles]
    assert all(r.first_token_ms is not None and r.total_ms >= r.first_token_ms for r in batch)
    if native.engine == "ctranslate2":  # one request per replica: the same arithmetic
        assert [r.text for r in batch] == [r.text for r in singles]
        return
    # llama.cpp and OpenVINO read a prompt in chunks whose size depends on what else is in the
    # step (and on the cached prefix), and kernels round differently per chunk size: a near-tie
    # may flip later on. Each answer still starts as its own single answer, in the input order.
    for i, result in enumerate(batch):
        shared = [common_prefix(result.text, s.text) for s in singles]
        assert shared.index(max(shared)) == i and shared[i] >= 10, (i, shared)


def test_two_streams_at_once_both_progress(native: NativeGenerator) -> None:
    """Neither waits for the other to finish: their deltas interleave in time."""
    arrivals: dict[int, list[float]] = {0: [], 1: []}
    config = GenerationConfig(max_new_tokens=40)

    def read(row: int, chat: list[Message]) -> None:
        for delta in native.stream(chat, config):
            if delta.text:
                arrivals[row].append(time.perf_counter())

    threads = [threading.Thread(target=read, args=(i, PROMPTS[i * 2])) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = arrivals[0], arrivals[1]
    assert len(first) > 5 and len(second) > 5
    assert second[0] < first[-1] and first[0] < second[-1]


def test_greedy_answers_agree_with_transformers(
    native: NativeGenerator, reference: TransformersGenerator
) -> None:
    """Quantization moves near-ties, so answers drift apart after a while; they start alike.

    Measured on these prompts (24 tokens): llama.cpp on the GGUF keeps 5-24 tokens in common
    with transformers' fp32 copy, CTranslate2's int8 re-quantization of the 4-bit weights 0-11.
    """
    config = GenerationConfig(max_new_tokens=24)
    prefixes = []
    for chat in PROMPTS:
        ours = native.tokenizer(native.generate(chat, config).text)["input_ids"]
        theirs = reference.tokenizer(reference.generate(chat, config).text)["input_ids"]
        prefixes.append(common_prefix(ours, theirs))
    same_start = sum(n >= 1 for n in prefixes)
    assert same_start >= len(PROMPTS) // 2, prefixes
    if native.engine == "llama.cpp":
        assert sum(n >= 5 for n in prefixes) >= len(PROMPTS) * 3 // 4, prefixes


def test_a_lora_adapter_changes_the_answer_as_transformers_does(
    native: NativeGenerator, reference: TransformersGenerator, tmp_path: Path
) -> None:
    """A random adapter on the query and key projections, strong enough to make the model say
    Japan's capital is Japan. For llama.cpp its rows must be permuted like the GGUF's base
    weights (and for CTranslate2 it must be merged before the int8 conversion), or the answer
    would not follow the transformers one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_folder(MODEL, native.cache_dir)))
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    tuned_model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, weight in tuned_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(3.0)
    tuned_model.save_pretrained(str(tmp_path / "adapter"))
    config = GenerationConfig(max_new_tokens=10)
    chat = [Message("user", "What is the capital of Japan?")]
    assert "Tokyo" in native.generate(chat, config).text
    tuned = load_generator(
        MODEL, cache_dir=native.cache_dir, engine=native.engine, adapter=tmp_path / "adapter"
    )
    answer = tuned.generate(chat, config).text
    with_adapter = load_generator(
        MODEL, cache_dir=native.cache_dir, engine="transformers", adapter=tmp_path / "adapter"
    )
    expected = with_adapter.generate(chat, config).text
    assert "Tokyo" not in expected and "Tokyo" not in answer, (answer, expected)
    ours, theirs = (reference.tokenizer(text)["input_ids"] for text in (answer, expected))
    assert common_prefix(ours, theirs) >= 5, (answer, expected)


def test_ctranslate2_reads_each_system_turn_once_and_answers_the_same(cache_dir: Path) -> None:
    """The replicas keep the state after the system turn; a request reads only the rest, and
    its answer is token for token the one read from the start (lengths included)."""
    from rag.generate.ct2_backend import CT2Generator

    kept = load_generator(MODEL, cache_dir=cache_dir, engine="ctranslate2")
    whole = load_generator(MODEL, cache_dir=cache_dir, engine="ctranslate2")
    assert isinstance(kept, CT2Generator) and isinstance(whole, CT2Generator)
    whole.reuse_system_turn = False
    config = GenerationConfig(max_new_tokens=24)
    for chat in PROMPTS:
        ours, theirs = kept.generate(chat, config), whole.generate(chat, config)
        assert (ours.text, ours.completion_tokens) == (theirs.text, theirs.completion_tokens)
        assert ours.prompt_tokens == theirs.prompt_tokens
    # Both system messages the prompts use (the default one, "Answer in one word.") are kept,
    # and each prompt starts with one of them; the one without reuse learns none.
    turns = [kept._static_prefix(kept.encode(chat)) for chat in PROMPTS]
    assert len(kept._turns) == 2 and all(n > 5 for n in turns), (kept._turns, turns)
    assert not whole._turns and whole._static_prefix(whole.encode(SHORT)) == 0
    # A system message too long to keep (an API client's own) is read with the prompt.
    long = [Message("system", "Answer briefly. " * 200), *SHORT]
    assert kept._static_prefix(kept.encode(long)) == 0 and len(kept._turns) == 2
    assert kept.generate(long, config).text == whole.generate(long, config).text
    [streamed] = [d for d in kept.stream(QUESTION, config) if d.finish_reason]
    assert (streamed.finish_reason, streamed.completion_tokens) == ("length", 24)
