"""A registry GGUF (a LoRA adapter merged, optionally) -> the same GGUF in 8-bit blocks, once.

OpenVINO GenAI reads a GGUF directly, but keeps only Q8_0 and Q4_0 blocks compressed: the
registry ships Q5_0 (qwen2.5-0.5b, which it refuses), Q4_K/Q6_K (qwen2.5-1.5b, which it expands
to float16 in memory, decoding 180 ms a token against 165 from Q8_0) and Q4_1 (smollm2). So every
weight matrix is de-quantized (the gguf package's own numpy kernels) and re-quantized to Q8_0:
blocks of 32 weights with a float16 scale, which keeps what 4-6 bits held. Vectors (norms,
biases) keep their values (in float32), and every metadata key is copied (the tokenizer and the
chat template with them), so the file is the registry's model in another encoding. A LoRA
adapter is merged on the way (``W + alpha / r * B @ A``, in the GGUF's own layout: see
``rag.generate.lora_gguf``); each adapter gets its own file, named by a hash of its files.
Published like every cached model (a lock, a temporary folder, a marker): qwen2.5-0.5b takes
~17 s and 676 MB, qwen2.5-1.5b ~40 s and 1.9 GB.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from rag.errors import ConfigError

log = logging.getLogger("rag.generate")

#: The block size of Q8_0: a matrix whose rows are not a multiple of it stays float32.
_BLOCK = 32
#: ``general.file_type`` of a GGUF whose weights are mostly Q8_0 (llama.cpp's LLAMA_FTYPE).
_MOSTLY_Q8_0 = 7


def openvino_gguf(name: str, cache_dir: Path, adapter: Path | None = None) -> Path:
    """The Q8_0 GGUF of registry model ``name`` (``adapter`` merged), written on first use."""
    from rag.convert import MARKER, publish_folder
    from rag.models import get_spec, gguf_path

    spec = get_spec(name)
    folder = openvino_path(name, cache_dir, adapter)
    target = folder / f"{name}.gguf"
    if (folder / MARKER).is_file():
        return target
    source = gguf_path(name, cache_dir)

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        deltas = _lora_deltas(adapter, source) if adapter is not None else {}
        write_q8_0(source, tmp / target.name, deltas)
        log.info(
            "re-quantized %s%s to Q8_0 for OpenVINO in %.0f s",
            name,
            f" + {adapter}" if adapter else "",
            time.perf_counter() - started,
        )

    publish_folder(spec, folder, build)
    return target


def openvino_path(name: str, cache_dir: Path, adapter: Path | None = None) -> Path:
    """Where ``openvino_gguf`` keeps model ``name`` (with ``adapter`` merged), written or not."""
    from rag.generate.ct2_convert import merged_path
    from rag.models import openvino_base_path

    return merged_path(openvino_base_path(name, cache_dir), adapter)


def write_q8_0(source: Path, out: Path, deltas: dict[str, Any]) -> None:
    """``source`` with every weight matrix in Q8_0, ``deltas[name]`` added to its weights first."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(source))
    unused = set(deltas) - {tensor.name for tensor in reader.tensors}
    if unused:
        raise ConfigError(f"the adapter adapts weights {source.name} lacks: {sorted(unused)}")
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(out), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # the header, and what the writer's constructor wrote
        if key == "general.file_type":
            writer.add_uint32(key, _MOSTLY_Q8_0)
            continue
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), kind, sub_type=sub_type)
    for tensor in reader.tensors:
        weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        if tensor.name in deltas:
            weights = weights + deltas[tensor.name]
        if weights.ndim < 2 or weights.shape[-1] % _BLOCK:
            writer.add_tensor(tensor.name, np.ascontiguousarray(weights, dtype=np.float32))
            continue
        blocks = gguf.quants.quantize(weights.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(tensor.name, blocks, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _lora_deltas(adapter: Path, source: Path) -> dict[str, Any]:
    """What ``adapter`` adds to each weight it adapts: ``alpha / r * B @ A``, in float32."""
    from rag.generate.lora_gguf import gguf_lora_pairs, unsupported_reason

    reason = unsupported_reason(adapter)
    if reason:
        raise ConfigError(f"OpenVINO cannot merge the adapter {adapter}: {reason}")
    alpha, pairs = gguf_lora_pairs(adapter, source)
    return {name: (alpha / a.shape[0]) * (b @ a) for name, (a, b) in pairs.items()}
