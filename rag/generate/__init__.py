"""Generators: one interface (`Generator.stream`), local transformers and OpenAI-compatible HTTP."""

from __future__ import annotations

from pathlib import Path

from rag.errors import ConfigError, ModelNotInstalled
from rag.generate.base import Delta, GenerationConfig, GenerationResult, Generator
from rag.generate.remote import REMOTE_ADAPTER, Remote

__all__ = [
    "Delta",
    "GenerationConfig",
    "GenerationResult",
    "Generator",
    "Remote",
    "load_generator",
]


def load_generator(
    name_or_path: str,
    *,
    cache_dir: Path,
    device: str | None = None,
    adapter: Path | None = None,
    remote: Remote | None = None,
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

    from rag.generate.transformers_backend import TransformersGenerator
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
    return TransformersGenerator(name_or_path, cache_dir=cache_dir, device=device, adapter=adapter)
