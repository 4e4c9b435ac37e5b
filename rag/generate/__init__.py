"""Generators: one interface (`Generator.stream`); local engines and OpenAI-compatible HTTP.

``load_generator`` picks the local engine: transformers on a CUDA device (with the decode
engine), llama.cpp on the registry's GGUF everywhere else, transformers again for what llama.cpp
cannot run here (a Hugging Face folder, an adapter it cannot apply, no llama-cpp-python).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rag.errors import ConfigError, ModelNotInstalled
from rag.generate.base import Delta, GenerationConfig, GenerationResult, Generator

__all__ = [
    "ENGINES",
    "Delta",
    "GenerationConfig",
    "GenerationResult",
    "Generator",
    "choose_engine",
    "load_generator",
]

log = logging.getLogger("rag.generate")

#: What ``--engine`` accepts: ``auto`` picks by device and model (see ``choose_engine``).
ENGINES = ("auto", "llamacpp", "transformers")


def load_generator(
    name_or_path: str,
    *,
    cache_dir: Path,
    device: str | None = None,
    adapter: Path | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    engine: str = "auto",
) -> Generator:
    """The generator for ``name_or_path``: a remote model when ``base_url`` is set, else local.

    Construction is cheap (weights load on first use or ``warm_up()``), but a registry name is
    checked now, so an unknown or uninstalled model fails before any work starts.
    """
    if base_url:
        if adapter is not None:
            raise ConfigError(
                "A LoRA adapter cannot be applied to a remote model: load the adapter in the "
                "serving engine, or drop --base-url to run the model locally"
            )
        from rag.generate.openai_backend import OpenAIGenerator

        return OpenAIGenerator(name_or_path, base_url=base_url, api_key=api_key)

    from rag.models import REGISTRY, get_spec, installed, is_converted, model_folder

    if name_or_path in REGISTRY:
        spec = get_spec(name_or_path)
        if spec.kind != "generator":
            raise ConfigError(f"{name_or_path} is an embedder, not a generator (try: smollm2-135m)")
        if not installed(spec) and not is_converted(spec.name, cache_dir):
            raise ModelNotInstalled(
                f"Model {spec.name} is not installed. Install it with: {spec.pull_command}"
            )
    else:
        model_folder(name_or_path, cache_dir)  # a folder without config.json, an unknown name
    chosen, why = choose_engine(engine, name_or_path, device=device, adapter=adapter)
    log.info("generator %s: engine %s (%s)", name_or_path, chosen, why)
    if chosen == "llamacpp":
        from rag.generate.llamacpp_backend import LlamaCppGenerator

        return LlamaCppGenerator(name_or_path, cache_dir=cache_dir, adapter=adapter)
    from rag.generate.transformers_backend import TransformersGenerator

    return TransformersGenerator(name_or_path, cache_dir=cache_dir, device=device, adapter=adapter)


def choose_engine(
    engine: str, name_or_path: str, *, device: str | None = None, adapter: Path | None = None
) -> tuple[str, str]:
    """The local engine for ``name_or_path`` (``llamacpp`` or ``transformers``) and why.

    ``auto``: transformers on CUDA; llama.cpp for a registry model on the CPU, unless
    llama-cpp-python is missing or cannot apply ``adapter`` (then transformers, with a warning
    that says so). An explicit engine that cannot run the model is a ConfigError.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "transformers":
        return engine, "asked for"
    cuda = _on_cuda(device)
    blocker = _llamacpp_blocker(name_or_path, cuda, adapter)
    if engine == "llamacpp":
        if blocker:
            raise ConfigError(f"--engine llamacpp cannot run {name_or_path}: {blocker}")
        return engine, "asked for"
    if cuda:
        return "transformers", "CUDA device"
    if blocker:
        if adapter is not None or "llama-cpp-python" in blocker:
            log.warning("generating with transformers on the CPU (slower): %s", blocker)
        return "transformers", blocker
    return "llamacpp", "no CUDA device"


def _on_cuda(device: str | None) -> bool:
    if device:
        return device.startswith("cuda")
    import torch

    return bool(torch.cuda.is_available())


def _llamacpp_blocker(name_or_path: str, cuda: bool, adapter: Path | None) -> str | None:
    """Why llama.cpp cannot run this model here, or None."""
    import importlib.util

    from rag.models import REGISTRY

    if cuda:
        return "the llama.cpp engine runs on the CPU only (use --device cpu)"
    if name_or_path not in REGISTRY:
        return "it is a Hugging Face folder, not a registry GGUF"
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install llama-cpp-python)"
    if adapter is not None:
        from rag.generate.lora_gguf import unsupported_reason

        reason = unsupported_reason(Path(adapter))
        if reason:
            return f"llama.cpp cannot apply the adapter {adapter}: {reason}"
    return None
