"""Cached model folders, built once, safely: GGUF carriers -> a Hugging Face folder here.

Dequantizing a GGUF and rebuilding its tokenizer takes tens of seconds; loading the resulting
safetensors folder takes a few. So a registry model is converted on first use and every later
load reads the folder. The build (``build_once``, also used for the int8 ONNX encoder in
``rag.onnx_export``) is crash-safe and concurrency-safe: it runs under a lock file, writes into a
temporary folder beside the target, and renames it into place only when complete (with the
marker file written last), so a reader sees either no folder or a whole one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from rag.errors import ChecksumMismatch


class GgufSource(Protocol):
    """What a conversion needs to know of a model (a `rag.models.ModelSpec` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def packages(self) -> tuple[str, ...]: ...

    @property
    def sha256(self) -> str | None: ...

    @property
    def size_bytes(self) -> int | None: ...


#: Written last into a converted folder; its presence means the folder is complete.
MARKER = "rag-model.json"
_BLOCK = 4 * 1024 * 1024


def convert_gguf(spec: GgufSource, parts: Sequence[Path], folder: Path) -> Path:
    """Join ``parts`` in order, verify the sha256, convert, and publish the result at ``folder``.

    A second process converting the same model waits on the lock and then finds the folder done.
    """

    def build(tmp: Path) -> None:
        gguf = assemble(spec, parts, tmp / f"{spec.name}.gguf")
        _dequantize(gguf, tmp)
        if gguf.parent == tmp:
            gguf.unlink()

    return publish_folder(spec, folder, build)


def convert_tokenizer(spec: GgufSource, gguf: Path, folder: Path) -> Path:
    """Publish at ``folder`` only what a native engine needs beside the GGUF: the tokenizer,
    ``config.json`` and ``generation_config.json`` (seconds and a few MB, not gigabytes)."""

    def build(tmp: Path) -> None:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        generation = _chat_generation_config(GenerationConfig.from_model_config(config), tokenizer)
        config.save_pretrained(str(tmp))
        generation.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    return publish_folder(spec, folder, build)


def publish_gguf(spec: GgufSource, parts: Sequence[Path], folder: Path) -> Path:
    """The verified GGUF a native engine loads: a one-part carrier as installed (checked once),
    several parts joined once into ``folder``."""
    joined = folder / f"{spec.name}.gguf"

    def build(tmp: Path) -> None:
        assemble(spec, parts, tmp / joined.name)

    publish_folder(spec, folder, build)
    return joined if len(parts) > 1 else parts[0]


def publish_folder(spec: GgufSource, folder: Path, build: Callable[[Path], None]) -> Path:
    """``build_once`` for a folder made from ``spec``'s carriers; its marker names the model,
    the GGUF checksum, the packages and how long the build took."""

    def built(tmp: Path) -> dict[str, object]:
        started = time.perf_counter()
        build(tmp)
        return {
            "name": spec.name,
            "gguf_sha256": spec.sha256,
            "packages": list(spec.packages),
            "convert_seconds": round(time.perf_counter() - started, 1),
        }

    return build_once(folder, built)


def has_marker(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def build_once(
    folder: Path,
    build: Callable[[Path], dict[str, object]],
    *,
    fresh: Callable[[Path], bool] = has_marker,
) -> Path:
    """Publish ``folder`` once: ``build(tmp)`` fills a temporary folder beside it and returns
    the marker's content; the marker is written last and the folder renamed into place.

    Runs under a lock file, so a second process waits and then finds the folder done. A folder
    that is not ``fresh`` (no marker: a crashed run's; or a stale or damaged build) is replaced.
    """
    if fresh(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh(folder):
            return folder
        # Holding the lock, any temporary folder for this model is a crashed run's leftover.
        for stale in folder.parent.glob(f".tmp-{folder.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        try:
            marker = build(tmp)
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            _fsync_tree(tmp)
            if folder.exists():
                remove_converted(folder)
            os.replace(tmp, folder)
            _fsync_dir(folder.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder


def assemble(spec: GgufSource, parts: Sequence[Path], target: Path) -> Path:
    """The verified GGUF: ``parts[0]`` itself when there is one part, else the parts joined
    into ``target``. Raises ChecksumMismatch (saying how to reinstall) when the bytes differ."""
    digest = hashlib.sha256()
    if len(parts) == 1:
        gguf = parts[0]
        with open(gguf, "rb") as source:
            while block := source.read(_BLOCK):
                digest.update(block)
    else:
        gguf = target
        with open(target, "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
    size = gguf.stat().st_size
    got = digest.hexdigest()
    if spec.sha256 is not None and got != spec.sha256:
        expected_size = f", {spec.size_bytes} bytes" if spec.size_bytes else ""
        raise ChecksumMismatch(
            f"{spec.name}: the GGUF joined from {len(parts)} part(s) has sha256 {got} "
            f"({size} bytes), expected {spec.sha256}{expected_size}. The carrier packages are "
            f"damaged or not the pinned versions; reinstall them with "
            f"`rag models pull {spec.name} --force`."
        )
    return gguf


def _dequantize(gguf: Path, out: Path) -> None:
    """Load the GGUF with transformers and save a plain float32 safetensors folder."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = dequantized_model(gguf)
    model.generation_config = _chat_generation_config(model.generation_config, tokenizer)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def dequantized_model(gguf: Path, dtype: str = "float32") -> Any:
    """The GGUF's weights in a plain transformers model (no GGUF quantization config).

    A GGUF-loaded model keeps its GGUF quantization config, which ``save_pretrained`` and
    converters refuse, so its weights move into a model built from the cleaned config.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch_dtype
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model


def _chat_generation_config(generation: Any, tokenizer: Any) -> Any:
    """``generation`` stopping where a chat turn ends as well as where pretraining text does.

    The GGUF's eos is often the pretraining <|endoftext|>, while a chat turn ends with the
    tokenizer's eos (<|im_end|>): stop on both, so plain ``generate()`` stops where we do.
    """
    eos = generation.eos_token_id
    eos_ids = [*(eos if isinstance(eos, list) else [] if eos is None else [eos])]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
        eos_ids.append(tokenizer.eos_token_id)
    generation.eos_token_id = eos_ids[0] if len(eos_ids) == 1 else eos_ids
    if tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    return generation


def remove_converted(folder: Path) -> None:
    """Delete a converted folder (the marker first, so a half-deleted folder is never trusted)."""
    (folder / MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(0o644)  # safetensors writes 0600; the cache may be shared
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
