"""Which engine generates, and what a CPU engine needs on disk (no float32 copy of the model)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.convert import MARKER
from rag.errors import ConfigError
from rag.generate import choose_engine, engine_capacity, load_generator, prepare_model
from rag.generate.ct2_backend import CT2Generator
from rag.generate.lora_gguf import unsupported_reason
from rag.generate.openvino_backend import OpenVINOGenerator
from rag.models import converted_folder, gguf_path, model_folder, tokenizer_folder

MODEL = "smollm2-135m"


def adapter(folder: Path, **config: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8, **config})
    )
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def test_auto_picks_openvino_on_the_cpu_and_transformers_on_cuda(tmp_path: Path) -> None:
    assert choose_engine("auto", MODEL, device="cpu") == ("openvino", "no CUDA device")
    assert choose_engine("auto", MODEL, device="cuda") == ("transformers", "CUDA device")
    assert choose_engine("transformers", MODEL, device="cpu")[0] == "transformers"
    assert choose_engine("llamacpp", MODEL, device="cpu")[0] == "llama.cpp"
    engine, why = choose_engine("auto", str(tmp_path), device="cpu")
    assert engine == "transformers" and "Hugging Face folder" in why
    assert engine_capacity("auto", MODEL, device="cpu") == 4
    assert engine_capacity("ctranslate2", MODEL, device="cpu") == 2
    assert engine_capacity("llama.cpp", MODEL, device="cpu") == 4
    assert engine_capacity("transformers", MODEL, device="cpu") == 1


def test_an_engine_that_cannot_run_the_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="engine must be one of auto, openvino, ctranslate2"):
        choose_engine("vllm", MODEL, device="cpu")
    with pytest.raises(ConfigError, match="not a registry GGUF"):
        choose_engine("ctranslate2", str(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="CPU"):
        choose_engine("llama.cpp", MODEL, device="cuda")
    dora = adapter(tmp_path / "dora", use_dora=True)
    for engine in ("llama.cpp", "openvino"):
        with pytest.raises(ConfigError, match="DoRA"):
            choose_engine(engine, MODEL, device="cpu", adapter=dora)
    # CTranslate2 merges the adapter with peft, so any peft LoRA goes: auto falls back to it.
    assert choose_engine("auto", MODEL, device="cpu", adapter=dora)[0] == "ctranslate2"


def test_llama_cpp_applies_plain_lora_only(tmp_path: Path) -> None:
    assert unsupported_reason(adapter(tmp_path / "plain", target_modules=["q_proj"])) is None
    saved = adapter(tmp_path / "m", modules_to_save=["lm_head"])
    assert "whole modules" in str(unsupported_reason(saved))
    assert "biases" in str(unsupported_reason(adapter(tmp_path / "b", bias="all")))
    assert "per-module" in str(unsupported_reason(adapter(tmp_path / "p", rank_pattern={"q": 8})))


def test_loading_on_the_cpu_is_cheap_until_first_use(tmp_path: Path) -> None:
    generator = load_generator(MODEL, cache_dir=tmp_path, device="cpu")
    assert isinstance(generator, OpenVINOGenerator) and generator.engine == "openvino"
    assert isinstance(load_generator(MODEL, cache_dir=tmp_path, engine="ctranslate2"), CT2Generator)
    for made in ("openvino", "ct2", "tokenizers"):
        assert not (tmp_path / made).exists()


def test_a_cpu_engine_never_needs_the_float32_folder(tmp_path: Path) -> None:
    """The GGUF is checked in place (one part), the tokenizer converted alone, and the int8
    model converted straight from the GGUF: 0.5 GB of fp32 for smollm2 is never written."""
    gguf = gguf_path(MODEL, tmp_path)
    assert gguf.name.endswith(".gguf") and (tmp_path / "gguf" / MODEL / MARKER).is_file()
    tokenizer = tokenizer_folder(MODEL, tmp_path)
    names = {p.name for p in tokenizer.iterdir()}
    assert {"tokenizer.json", "config.json", "generation_config.json", MARKER} <= names
    assert not any(name.endswith(".safetensors") for name in names)
    engine, folder = prepare_model(MODEL, tmp_path, engine="ctranslate2", device="cpu")
    assert engine == "ctranslate2" and (folder / "model.bin").is_file()
    engine, q8 = prepare_model(MODEL, tmp_path, device="cpu")
    assert engine == "openvino" and q8.suffix == ".gguf" and (q8.parent / MARKER).is_file()
    assert not converted_folder(MODEL, tmp_path).exists()
    # The tokenizer-only folder tokenizes as the full conversion's tokenizer does.
    from transformers import AutoTokenizer

    text = "<|im_start|>user\nLe café coûte 3,50 € — naïve?<|im_end|>\n"
    full = AutoTokenizer.from_pretrained(
        str(model_folder(MODEL, Path(os.environ["RAG_TEST_CACHE"])))
    )
    alone = AutoTokenizer.from_pretrained(str(tokenizer))
    assert alone(text)["input_ids"] == full(text)["input_ids"]
