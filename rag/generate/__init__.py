"""Generators: one interface (`Generator.stream`); local engines and OpenAI-compatible HTTP.

``load_generator`` picks the local engine (``choose_engine``): transformers on a CUDA device
(with the decode engine); on the CPU, OpenVINO on the registry's GGUF re-quantized once to 8-bit
blocks (the fastest in `bench/cpu_generate.py`, prompt and decode), else CTranslate2 int8 or
llama.cpp on the GGUF as it ships; transformers in fp32 for what none runs (a Hugging Face
folder).
"""

from __future__ import annotations

import logging
from pathlib import Path

from rag.errors import ConfigError, ModelNotInstalled
from rag.generate.base import Delta, GenerationConfig, GenerationResult, Generator
from rag.generate.remote import REMOTE_ADAPTER, Remote

__all__ = [
    "ENGINES",
    "Delta",
    "GenerationConfig",
    "GenerationResult",
    "Generator",
    "Remote",
    "choose_engine",
    "engine_capacity",
    "load_generator",
    "prepare_model",
]

log = logging.getLogger("rag.generate")

#: What ``--engine`` accepts: ``auto`` picks by device and model (see ``choose_engine``).
ENGINES = ("auto", "openvino", "ctranslate2", "llama.cpp", "transformers")
#: The engines that run a registry GGUF on the CPU, preferred first: (module, pip requirement).
_CPU_ENGINES = {
    "openvino": ("openvino_genai", "openvino-genai"),
    "ctranslate2": ("ctranslate2", "ctranslate2"),
    "llama.cpp": ("llama_cpp", "'rag-icl[llamacpp]' (llama-cpp-python, compiled at install)"),
}


def load_generator(
    name_or_path: str,
    *,
    cache_dir: Path,
    device: str | None = None,
    adapter: Path | None = None,
    remote: Remote | None = None,
    engine: str = "auto",
) -> Generator:
    """The generator for ``name_or_path``: the model ``remote`` serves when given, else local.

    Construction is cheap (weights load on first use or ``warm_up()``), but a registry name is
    checked now, so an unknown or uninstalled model fails before any work starts.
    """
    if remote is not None:
        if adapter is not None:
            raise ConfigError(REMOTE_ADAPTER)
        from rag.generate.openai_backend import OpenAIGenerator

        return OpenAIGenerator(
            name_or_path,
            base_url=remote.base_url,
            api_key=remote.api_key,
            context_window=remote.context_window,
            tokenizer=remote.tokenizer,
            cache_dir=cache_dir,
        )

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
    fell_back = chosen == "transformers" and why not in ("asked for", "CUDA device")
    if fell_back and name_or_path in REGISTRY:
        log.warning("generating with transformers on the CPU (slower): %s", why)
    if chosen == "openvino":
        from rag.generate.openvino_backend import OpenVINOGenerator

        return OpenVINOGenerator(name_or_path, cache_dir=cache_dir, adapter=adapter)
    if chosen == "ctranslate2":
        from rag.generate.ct2_backend import CT2Generator

        return CT2Generator(name_or_path, cache_dir=cache_dir, adapter=adapter)
    if chosen == "llama.cpp":
        from rag.generate.llamacpp_backend import LlamaCppGenerator

        return LlamaCppGenerator(name_or_path, cache_dir=cache_dir, adapter=adapter)
    from rag.generate.transformers_backend import TransformersGenerator

    return TransformersGenerator(name_or_path, cache_dir=cache_dir, device=device, adapter=adapter)


def choose_engine(
    engine: str, name_or_path: str, *, device: str | None = None, adapter: Path | None = None
) -> tuple[str, str]:
    """The local engine for ``name_or_path`` and why it was chosen.

    ``auto``: transformers on CUDA; on the CPU the first of OpenVINO, CTranslate2 and llama.cpp
    that is installed and can run the model (a registry name; for OpenVINO and llama.cpp, an
    adapter they can apply), else transformers with a warning. An explicit engine that cannot
    run it is a ConfigError.
    """
    if engine == "llamacpp":
        engine = "llama.cpp"
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "transformers":
        return engine, "asked for"
    cuda = _on_cuda(device)
    if engine != "auto":
        blocker = _cpu_blocker(engine, name_or_path, cuda, adapter)
        if blocker:
            raise ConfigError(f"--engine {engine} cannot run {name_or_path}: {blocker}")
        return engine, "asked for"
    if cuda:
        return "transformers", "CUDA device"
    blockers = []
    for candidate in _CPU_ENGINES:
        blocker = _cpu_blocker(candidate, name_or_path, cuda, adapter)
        if blocker is None:
            return candidate, "no CUDA device"
        blockers.append(f"{candidate}: {blocker}")
    return "transformers", "; ".join(blockers)


def engine_capacity(engine: str, name_or_path: str, *, device: str | None = None) -> int:
    """Requests the chosen engine decodes together: what a server should let run at once."""
    chosen, _ = choose_engine(engine, name_or_path, device=device)
    if chosen == "openvino":
        from rag.generate.openvino_backend import DEFAULT_SLOTS as OPENVINO_SLOTS

        return OPENVINO_SLOTS
    if chosen == "ctranslate2":
        from rag.generate.ct2_backend import DEFAULT_SLOTS

        return DEFAULT_SLOTS
    if chosen == "llama.cpp":
        from rag.generate.llamacpp_backend import DEFAULT_SLOTS as LLAMA_SLOTS

        return LLAMA_SLOTS
    return 1


def _registry() -> dict[str, object]:
    from rag.models import REGISTRY

    return dict(REGISTRY)


def _on_cuda(device: str | None) -> bool:
    if device:
        return device.startswith("cuda")
    import torch

    return bool(torch.cuda.is_available())


def _cpu_blocker(engine: str, name_or_path: str, cuda: bool, adapter: Path | None) -> str | None:
    """Why CPU engine ``engine`` cannot run this model here, or None."""
    import importlib.util

    if cuda:
        return f"the {engine} engine runs on the CPU here (use --device cpu)"
    if name_or_path not in _registry():
        return "it is a Hugging Face folder, not a registry GGUF"
    module, requirement = _CPU_ENGINES[engine]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install {requirement})"
    if engine in ("llama.cpp", "openvino") and adapter is not None:
        from rag.generate.lora_gguf import unsupported_reason

        reason = unsupported_reason(Path(adapter))
        if reason:
            return f"{engine} cannot apply the adapter {adapter}: {reason}"
    return None


def prepare_model(
    name: str, cache_dir: Path, *, engine: str = "auto", device: str | None = None
) -> tuple[str, Path]:
    """Convert what the chosen engine loads for registry model ``name``, once.

    OpenVINO: the Q8_0 GGUF (and the tokenizer folder); CTranslate2: its int8 folder;
    llama.cpp: the checked GGUF (and the tokenizer folder). All skip the float32 Hugging Face
    folder, which transformers (and fine-tuning) convert to when they first need it. Returns
    the engine and where its model is.
    """
    chosen, _ = choose_engine(engine, name, device=device)
    if chosen == "ctranslate2":
        from rag.generate.ct2_convert import ct2_folder

        return chosen, ct2_folder(name, cache_dir)
    from rag.models import gguf_path, model_folder, tokenizer_folder

    if chosen == "openvino":
        from rag.generate.openvino_convert import openvino_gguf

        tokenizer_folder(name, cache_dir)
        return chosen, openvino_gguf(name, cache_dir)
    if chosen == "llama.cpp":
        tokenizer_folder(name, cache_dir)
        return chosen, gguf_path(name, cache_dir)
    return chosen, model_folder(name, cache_dir)
