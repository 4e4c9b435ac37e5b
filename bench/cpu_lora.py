"""A LoRA adapter on each CPU engine: how long until it answers, and how fast it answers then.

OpenVINO merges the adapter into the weights as it re-quantizes them to Q8_0, and CTranslate2
as it converts to int8, once each (cached by the adapter's hash); llama.cpp converts it to a
GGUF adapter once and applies it on the fly; transformers loads it with peft over the float32
weights. Per engine, in one run: the first load with an empty cache (conversion included), a
second load from the cache, and the time of a short answer with the adapter. The adapter is a
fresh random rank-16 LoRA on every linear layer (its numbers are what counts here, not its
answers), so nothing of it is cached yet; what the engines converted from it is removed at the
end.

    PYTHONPATH=. python bench/cpu_lora.py                  # qwen2.5-0.5b
    PYTHONPATH=. python bench/cpu_lora.py --model smollm2-135m --engines ctranslate2

Prints figures, never pass/fail; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from rag.generate import GenerationConfig, load_generator
from rag.settings import load_settings
from rag.types import Message

QUESTION = [Message("user", "What is the capital of Japan? Answer in one word.")]


def make_adapter(model: str, cache_dir: Path, folder: Path, seed: int) -> Path:
    """A rank-16 LoRA with random (non-zero) weights on every linear layer of ``model``."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rag.convert import dequantized_model
    from rag.models import gguf_path

    torch.manual_seed(seed)
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(dequantized_model(gguf_path(model, cache_dir)), config).save_pretrained(
        str(folder)
    )
    return folder


def forget_conversions(model: str, cache_dir: Path, adapter: Path) -> None:
    """Remove what the engines converted from this run's adapter (it is never used again)."""
    from rag.generate.ct2_convert import ct2_path
    from rag.generate.lora_gguf import adapter_gguf_path
    from rag.generate.openvino_convert import openvino_path
    from rag.models import gguf_path

    shutil.rmtree(ct2_path(model, cache_dir, adapter), ignore_errors=True)
    shutil.rmtree(openvino_path(model, cache_dir, adapter), ignore_errors=True)
    adapter_gguf_path(adapter, gguf_path(model, cache_dir), cache_dir).unlink(missing_ok=True)


def time_engine(engine: str, model: str, cache_dir: Path, adapter: Path) -> dict[str, float]:
    figures = {}
    for label in ("first load s", "cached load s"):
        started = time.perf_counter()
        generator = load_generator(
            model, cache_dir=cache_dir, engine=engine, adapter=adapter, device="cpu"
        )
        generator.warm_up()
        figures[label] = time.perf_counter() - started
        result = generator.generate(QUESTION, GenerationConfig(max_new_tokens=8))
        figures["answer ms"] = result.total_ms
        del generator
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--engines", default="openvino,ctranslate2,llama.cpp,transformers")
    args = parser.parse_args()
    cache_dir = load_settings().cache_dir
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="rag-lora-") as scratch:
        adapter = make_adapter(args.model, cache_dir, Path(scratch) / "adapter", time.time_ns())
        print(f"load average before: {os.getloadavg()}")
        try:
            for engine in engines:
                rows[engine] = time_engine(engine, args.model, cache_dir, adapter)
                print(f"[{engine}] {rows[engine]}; load average {os.getloadavg()}", flush=True)
        finally:
            forget_conversions(args.model, cache_dir, adapter)
    print(f"\n{args.model} + rank-16 LoRA")
    print(f"{'':<16}" + "".join(f"{e:>14}" for e in rows))
    for label in ("first load s", "cached load s", "answer ms"):
        print(f"{label:<16}" + "".join(f"{rows[e][label]:>14.1f}" for e in rows))


if __name__ == "__main__":
    main()
