"""The local transformers backend with the real smollm2-135m (converted once per session).

The converted model is cached in ``RAG_TEST_CACHE`` when set (shared between runs), else in a
pytest temporary folder (one ~25 s conversion per run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rag.convert import MARKER
from rag.errors import ConfigError, GenerationError, ModelNotInstalled
from rag.generate import GenerationConfig, load_generator
from rag.generate.transformers_backend import DEFAULT_SYSTEM, TransformersGenerator
from rag.models import model_folder
from rag.types import Message

QUESTION = [Message("user", "Write two sentences about the river Seine in Paris.")]
SHORT = [Message("user", "Say hello.")]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = os.environ.get("RAG_TEST_CACHE")
    return Path(shared) if shared else tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def generator(cache_dir: Path) -> Iterator[TransformersGenerator]:
    import torch

    # On the shared 2-core machines a second busy process makes torch's spinning OpenMP threads
    # stall each other (20x slower); one thread keeps these tests' time predictable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model_folder("smollm2-135m", cache_dir)
    loaded = load_generator(
        "smollm2-135m", cache_dir=cache_dir, device="cpu", engine="transformers"
    )
    assert isinstance(loaded, TransformersGenerator)
    loaded.warm_up()
    yield loaded
    torch.set_num_threads(threads)


def test_conversion_writes_a_plain_hugging_face_folder(
    generator: TransformersGenerator, cache_dir: Path
) -> None:
    folder = cache_dir / "models" / "smollm2-135m"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert json.loads((folder / MARKER).read_text())["gguf_sha256"].startswith("b179c952")
    generation = json.loads((folder / "generation_config.json").read_text())
    eos = generation["eos_token_id"]
    assert generator.tokenizer.convert_tokens_to_ids("<|im_end|>") in (
        eos if isinstance(eos, list) else [eos]
    )
    assert generator.context_window == 8192  # max_position_embeddings, within the cap
    assert generator.device == "cpu"


def test_a_system_message_is_always_sent(generator: TransformersGenerator) -> None:
    rendered = generator.render(SHORT)
    assert DEFAULT_SYSTEM in rendered and "SmolLM" not in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    custom = generator.render([Message("system", "Be terse."), *SHORT])
    assert "Be terse." in custom and DEFAULT_SYSTEM not in custom
    assert generator.count_prompt_tokens(SHORT) == len(generator.tokenizer(rendered)["input_ids"])


def test_streaming_is_token_by_token_and_matches_the_batch_path(
    generator: TransformersGenerator,
) -> None:
    config = GenerationConfig(max_new_tokens=24)
    deltas = list(generator.stream(QUESTION, config))
    streamed = "".join(d.text for d in deltas)
    last = deltas[-1]
    assert len(deltas) > 10 and all(d.finish_reason is None for d in deltas[:-1])
    assert (last.finish_reason, last.completion_tokens) == ("length", 24)
    assert last.prompt_tokens == generator.count_prompt_tokens(QUESTION)
    assert "Seine" in streamed or "Paris" in streamed
    [batched] = generator.generate_batch([QUESTION], config)
    assert batched.text == streamed and batched.completion_tokens == 24


def test_greedy_batch_with_padding_equals_one_by_one(generator: TransformersGenerator) -> None:
    config = GenerationConfig(max_new_tokens=16)
    singles = [generator.generate(messages, config) for messages in (QUESTION, SHORT)]
    batch = generator.generate_batch([QUESTION, SHORT], config)
    assert [r.text for r in batch] == [r.text for r in singles]
    assert [r.prompt_tokens for r in batch] == [r.prompt_tokens for r in singles]
    assert [r.completion_tokens for r in batch] == [r.completion_tokens for r in singles]
    assert batch[0].prompt_tokens != batch[1].prompt_tokens  # the short one was left-padded


def test_stop_strings_cut_the_text_and_are_never_emitted(generator: TransformersGenerator) -> None:
    free = generator.generate(QUESTION, GenerationConfig(max_new_tokens=24)).text
    stop = free[12:19]  # most likely spans a token boundary
    config = GenerationConfig(max_new_tokens=24, stop=(stop,))
    deltas = list(generator.stream(QUESTION, config))
    text = "".join(d.text for d in deltas)
    assert text == free[: free.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    [batched] = generator.generate_batch([QUESTION], config)
    assert batched.text == text and batched.finish_reason == "stop"


def test_sampling_is_reproducible_with_a_seed(generator: TransformersGenerator) -> None:
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    first = generator.generate(QUESTION, config).text
    assert generator.generate(QUESTION, config).text == first
    others = {generator.generate(QUESTION, replace(config, seed=s)).text for s in (1, 2)}
    assert len(others | {first}) > 1


def test_a_prompt_longer_than_the_window_is_refused(generator: TransformersGenerator) -> None:
    small = TransformersGenerator("smollm2-135m", cache_dir=generator.cache_dir, max_context=32)
    small._model, small._tokenizer = generator.model, generator.tokenizer  # share the weights
    with pytest.raises(GenerationError, match="--k"):
        small.generate([Message("user", "word " * 40)], GenerationConfig())


def test_lora_adapter_changes_the_output(generator: TransformersGenerator, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        str(model_folder("smollm2-135m", generator.cache_dir))
    )
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(str(tmp_path / "adapter"))
    tuned = load_generator(
        "smollm2-135m",
        cache_dir=generator.cache_dir,
        device="cpu",
        adapter=tmp_path / "adapter",
        engine="transformers",
    )
    config = GenerationConfig(max_new_tokens=8)
    assert tuned.generate(SHORT, config).text != generator.generate(SHORT, config).text


def test_bad_arguments_fail_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        TransformersGenerator("smollm2-135m", cache_dir=tmp_path, device="tpu")
    with pytest.raises(ConfigError, match=r"adapter_config\.json"):
        TransformersGenerator("smollm2-135m", cache_dir=tmp_path, adapter=tmp_path)
    with pytest.raises(ModelNotInstalled, match=r"rag models pull gemma3-270m"):
        load_generator("gemma3-270m", cache_dir=tmp_path)
