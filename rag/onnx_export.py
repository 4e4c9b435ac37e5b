"""A registry embedder as an int8 ONNX Runtime model, exported from its packaged weights once.

The recipe (``RECIPE``, recorded in the folder's marker; another recipe rebuilds the folder):

1. ``torch.onnx.export`` of the transformer alone, inputs ``input_ids``, ``attention_mask``,
   ``token_type_ids``, output ``last_hidden_state``, batch and sequence axes dynamic. Eager
   attention, so that ONNX Runtime's BERT fusions recognise the pattern.
2. ONNX Runtime's transformer optimizer fuses embeddings + LayerNorm, attention, GELU and the
   residual LayerNorms into single operators.
3. Dynamic int8 quantization of the MatMul and fused Attention weights, one scale per output
   channel (activations are quantized per batch at run time). One scale per tensor cost too much:
   on bank and SQuAD texts the mean cosine to the fp32 vectors was 0.958 (min 0.86), per channel
   0.994 (min 0.978), at the same speed.

Pooling and normalization stay outside the graph, in ``rag.embed_onnx``, written the way
sentence-transformers computes them; the tokenizer file is copied from the packaged model.
The folder is built under ``rag.convert.build_once`` (lock, temporary folder, marker last,
atomic rename); its marker holds the model file's size and sha256, so a damaged file is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.convert import MARKER, build_once, remove_converted
from rag.errors import ConfigError

#: Bump when the export, fusion or quantization changes: cached folders are then rebuilt.
RECIPE = 1
ENCODER = "onnx-int8"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_BLOCK = 4 * 1024 * 1024


def int8_folder(name: str, cache_dir: Path) -> Path:
    """Where the int8 ONNX encoder of registry embedder ``name`` is cached."""
    return Path(cache_dir) / "models" / f"{name}-{ENCODER}"


def int8_encoder(
    name: str, packages: Sequence[str], source: Path, cache_dir: Path, *, rebuild: bool = False
) -> Path:
    """The folder of embedder ``name``'s int8 encoder, exported on first use (tens of seconds,
    once) from the sentence-transformers folder ``source`` that its pinned ``packages`` install.
    """
    folder = int8_folder(name, cache_dir)
    if rebuild:
        remove_converted(folder)
    return build_once(
        folder,
        lambda tmp: _export(name, packages, source, tmp),
        fresh=lambda built: is_intact(built, packages),
    )


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def is_intact(folder: Path, packages: Sequence[str]) -> bool:
    """Whether ``folder`` is a whole build of this recipe from these pinned ``packages``."""
    marker = read_marker(folder)
    if (
        marker is None
        or marker.get("recipe") != RECIPE
        or marker.get("packages") != list(packages)
        or not (folder / TOKENIZER_FILE).is_file()
    ):
        return False
    model = folder / MODEL_FILE
    try:
        size = model.stat().st_size
    except OSError:
        return False
    return size == marker.get("onnx_bytes") and sha256_file(model) == marker.get("onnx_sha256")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _export(name: str, packages: Sequence[str], source: Path, out: Path) -> dict[str, object]:
    shape = _recipe_fits(source)
    started = time.perf_counter()
    fp32, fused = out / "fp32.onnx", out / "fused.onnx"
    with _quiet():
        _export_fp32(source, fp32)
        _fuse(fp32, fused, heads=shape["heads"], hidden=shape["dimension"])
        _quantize(fused, out / MODEL_FILE)
    fp32.unlink()
    fused.unlink()
    shutil.copyfile(source / TOKENIZER_FILE, out / TOKENIZER_FILE)
    model = out / MODEL_FILE
    return {
        "name": name,
        "encoder": ENCODER,
        "recipe": RECIPE,
        "packages": list(packages),
        **shape,
        "onnx_bytes": model.stat().st_size,
        "onnx_sha256": sha256_file(model),
        "export_seconds": round(time.perf_counter() - started, 1),
    }


def _recipe_fits(source: Path) -> dict[str, Any]:
    """The shape facts the recipe needs, after checking that the model is one it reproduces:
    a BERT-style transformer, mean pooling over the attention mask, then L2 normalization."""

    def read(relative: str) -> Any:
        try:
            return json.loads((source / relative).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot export {source} to ONNX: {error}") from None

    modules = [m["type"].rsplit(".", 1)[-1] for m in read("modules.json")]
    pooling = read("1_Pooling/config.json")
    config = read("config.json")
    means = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if (
        modules != ["Transformer", "Pooling", "Normalize"]
        or means != ["pooling_mode_mean_tokens"]
        or config.get("model_type") != "bert"
    ):
        raise ConfigError(
            f"{source} is not a BERT model with mean pooling and normalization "
            f"(modules {modules}, pooling {means}): the int8 ONNX recipe does not apply; "
            "use the torch encoder (encoder='torch-fp32')"
        )
    settings = read("sentence_bert_config.json")
    return {
        "dimension": int(config["hidden_size"]),
        "heads": int(config["num_attention_heads"]),
        "max_seq_length": int(settings["max_seq_length"]),
    }


def _export_fp32(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        """The transformer with positional inputs and one tensor out, as the exporter wants."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.no_grad():
        torch.onnx.export(
            LastHidden(),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(target),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _fuse(source: Path, target: Path, *, heads: int, hidden: int) -> None:
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=heads, hidden_size=hidden
    )
    fused.save_model_to_file(str(target))


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Attention"],
        # The fused operators are outside the standard domain, so shape inference cannot type
        # their outputs; they are all float32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's tracer warnings and the quantizer's advice, both expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
