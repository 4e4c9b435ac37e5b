"""A registry GGUF (with a LoRA adapter merged, optionally) -> a CTranslate2 int8 model, once.

The weights go straight from the GGUF into CTranslate2's converter: transformers de-quantizes
them in memory (float16) and CTranslate2 re-quantizes them to int8 per output channel. No
float32 copy is written to disk. The tokenizer and config come from the
model's tokenizer folder, so the int8 model's vocabulary is the tokenizer rag renders prompts
with. A LoRA adapter is merged into the de-quantized weights before the int8 conversion; each
adapter gets its own folder, named by a hash of its files, so a retrained adapter converts anew.
The conversion is published like every cached model (a lock, a temporary folder, a marker).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("rag.generate")


def ct2_folder(name: str, cache_dir: Path, adapter: Path | None = None) -> Path:
    """The CTranslate2 int8 folder of registry model ``name`` (``adapter`` merged), converted
    on first use."""
    from rag.convert import MARKER, publish_folder
    from rag.models import get_spec, gguf_path, tokenizer_folder

    spec = get_spec(name)
    folder = ct2_path(name, cache_dir, adapter)
    if (folder / MARKER).is_file():
        return folder
    gguf = gguf_path(name, cache_dir)
    tokenizer = tokenizer_folder(name, cache_dir)

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        _converter(gguf, tokenizer, adapter).convert(str(tmp), quantization="int8", force=True)
        log.info(
            "converted %s%s to CTranslate2 int8 in %.0f s",
            name,
            f" + {adapter}" if adapter else "",
            time.perf_counter() - started,
        )

    return publish_folder(spec, folder, build)


def ct2_path(name: str, cache_dir: Path, adapter: Path | None = None) -> Path:
    """Where ``ct2_folder`` keeps model ``name`` (with ``adapter`` merged), converted or not."""
    from rag.models import ct2_base_path

    return merged_path(ct2_base_path(name, cache_dir), adapter)


def merged_path(base: Path, adapter: Path | None) -> Path:
    """``base``, or for a model with ``adapter`` merged into it the folder beside it named by
    the adapter's files (every engine that merges an adapter keeps its copies this way)."""
    if adapter is None:
        return base
    return base.with_name(f"{base.name}-lora-{adapter_digest(adapter)}")


def adapter_digest(adapter: Path) -> str:
    """A short hash of the adapter's config and weights: a retrained adapter gets a new one."""
    digest = hashlib.sha256()
    for path in sorted(Path(adapter).iterdir()):
        if path.name.startswith("adapter_") and path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _converter(gguf: Path, tokenizer: Path, adapter: Path | None) -> Any:
    from ctranslate2.converters import TransformersConverter

    class FromGGUF(TransformersConverter):
        """Reads the config and tokenizer from ``tokenizer``, the weights from the GGUF."""

        def load_model(self, model_class: Any, _: str, **kwargs: Any) -> Any:
            from rag.convert import dequantized_model

            # float16 is exact enough for an int8 target and cuts the conversion's peak memory
            # (qwen2.5-0.5b: 3.0 GB against 3.8 GB in float32).
            model = dequantized_model(gguf, "float16")
            if adapter is None:
                return model
            from peft import PeftModel

            return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()

    return FromGGUF(str(tokenizer), low_cpu_mem_usage=True)
