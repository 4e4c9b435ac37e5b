"""A peft LoRA adapter (what `rag finetune` writes) -> a GGUF LoRA adapter llama.cpp applies.

llama.cpp adds ``B @ A`` to a weight on the fly, scaled by ``alpha / r``, on top of the
quantized base: no merged copy of the model, no re-quantization, a file of a few MB written in
about a second. The tensors keep peft's layout (A: rank x in, B: out x rank) under the GGUF
names of the weights they adapt; for the ``llama`` architecture the query and key rows are
permuted the way the GGUF converter permuted the base weights (rotary halves interleaved).

Adapters this cannot express (DoRA, trained embeddings or heads, per-module ranks, biases) are
refused by ``unsupported_reason``; the caller then falls back to the transformers backend.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from rag.errors import ConfigError

_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def unsupported_reason(adapter: Path) -> str | None:
    """Why llama.cpp cannot apply ``adapter`` as it is, or None when it can."""
    config = _config(adapter)
    if config.get("peft_type", "LORA") != "LORA":
        return f"it is a {config.get('peft_type')} adapter, not LoRA"
    if config.get("use_dora"):
        return "it uses DoRA"
    if config.get("modules_to_save"):
        return f"it trains whole modules ({config['modules_to_save']})"
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        return "it has per-module ranks or alphas"
    if config.get("bias", "none") != "none":
        return "it trains biases"
    if not any((adapter / name).is_file() for name in _WEIGHTS):
        return f"it has no weights file ({' or '.join(_WEIGHTS)})"
    return None


def adapter_gguf_path(adapter: Path, base_gguf: Path, cache_dir: Path) -> Path:
    """Where ``adapter`` converted for ``base_gguf`` is cached (named by their content)."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", *_WEIGHTS):
        if (adapter / name).is_file():
            digest.update(name.encode() + b"\0" + (adapter / name).read_bytes())
    digest.update(str(base_gguf.resolve()).encode())
    return cache_dir / "adapters" / f"{digest.hexdigest()[:20]}.gguf"


def converted_adapter(adapter: Path, base_gguf: Path, cache_dir: Path) -> Path:
    """The GGUF version of ``adapter`` for ``base_gguf``, converted once (cached by content)."""
    reason = unsupported_reason(adapter)
    if reason:
        raise ConfigError(f"llama.cpp cannot apply the adapter {adapter}: {reason}")
    target = adapter_gguf_path(adapter, base_gguf, cache_dir)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".gguf", dir=target.parent)
    os.close(fd)
    try:
        write_gguf_adapter(adapter, base_gguf, Path(tmp))
        os.replace(tmp, target)  # whole or absent, whoever else converts it at the same time
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def write_gguf_adapter(adapter: Path, base_gguf: Path, out: Path) -> None:
    import gguf
    import numpy as np

    arch = _base_facts(base_gguf)[0]
    alpha, pairs = gguf_lora_pairs(adapter, base_gguf)
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for target, (lora_a, lora_b) in sorted(pairs.items()):
        writer.add_tensor(f"{target}.lora_a", np.ascontiguousarray(lora_a, dtype=np.float32))
        writer.add_tensor(f"{target}.lora_b", np.ascontiguousarray(lora_b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_lora_pairs(adapter: Path, base_gguf: Path) -> tuple[float, dict[str, tuple[Any, Any]]]:
    """``adapter``'s alpha (``B @ A`` is scaled by alpha / rank, the rank being A's rows) and its
    (A, B) matrices in float32 under the GGUF names of the weights they adapt, laid out like
    those weights."""
    config = _config(adapter)
    arch, n_blocks, n_head, n_head_kv = _base_facts(base_gguf)
    names = gguf_names(arch, n_blocks)
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # llama.cpp scales by alpha / r, rsLoRA by alpha / sqrt(r)
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in _load_weights(adapter).items():
        module, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")
        if part.split(".")[0] not in ("A", "B"):
            raise ConfigError(f"the adapter holds {key}: only LoRA A/B matrices convert")
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise ConfigError(f"the adapter's module {module} has no counterpart in {arch}")
        pairs.setdefault(target, {})[part.split(".")[0]] = tensor.float().numpy()
    laid_out = {}
    for target, pair in pairs.items():
        lora_a, lora_b = pair["A"], pair["B"]
        if arch == "llama" and target.endswith(("attn_q.weight", "attn_k.weight")):
            heads = n_head if target.endswith("attn_q.weight") else n_head_kv
            lora_b = _rope_permute(lora_b, heads)
        laid_out[target] = (lora_a, lora_b)
    return alpha, laid_out


def _rope_permute(rows: Any, heads: int) -> Any:
    """The GGUF converter's permutation of llama's query/key output rows."""
    shape = rows.shape
    return rows.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _config(adapter: Path) -> dict[str, Any]:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        raise ConfigError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def _load_weights(adapter: Path) -> dict[str, Any]:
    if (adapter / _WEIGHTS[0]).is_file():
        from safetensors.torch import load_file

        return dict(load_file(str(adapter / _WEIGHTS[0])))
    import torch

    weights: dict[str, Any] = torch.load(adapter / _WEIGHTS[1], map_location="cpu")
    return weights


def _base_facts(base_gguf: Path) -> tuple[str, int, int, int]:
    """Architecture, layers, attention heads and KV heads from the base model's metadata."""
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(reader.fields["general.architecture"].contents())

    def value(key: str) -> int:
        return int(reader.fields[f"{arch}.{key}"].contents())

    heads = value("attention.head_count")
    kv_field = reader.fields.get(f"{arch}.attention.head_count_kv")
    return arch, value("block_count"), heads, int(kv_field.contents()) if kv_field else heads


def gguf_names(arch: str, n_blocks: int) -> Any:
    """The gguf package's map from Hugging Face module names to ``arch``'s GGUF tensor names."""
    import gguf

    for enum, name in gguf.MODEL_ARCH_NAMES.items():
        if name == arch:
            return gguf.get_tensor_name_map(enum, n_blocks)
    raise ConfigError(f"the gguf package does not know the architecture {arch!r}")
