"""Settings from the environment and options; `rag serve` fails fast and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve.settings import load_serve_settings
from serve.state import Pipelines
from tests.serve.conftest import build_index, free_port


def test_keys_and_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_API_KEYS", "alpha, beta,,")
    monkeypatch.setenv("RAG_MAX_MESSAGES", "7")
    monkeypatch.setenv("RAG_CONCURRENCY", "3")
    settings = load_serve_settings()
    assert settings.api_keys == ("alpha", "beta")
    assert settings.max_messages == 7 and settings.concurrency == 3


def test_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_API_KEYS", "alpha")
    monkeypatch.setenv("RAG_PORT", "9000")
    settings = load_serve_settings(api_keys=["cli"], port=8123, model=None, host=None)
    assert settings.api_keys == ("cli",) and settings.port == 8123
    assert load_serve_settings(api_keys=[]).api_keys == ("alpha",)


def test_a_bad_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="concurrency"):
        load_serve_settings()


def test_the_state_from_settings_is_not_loaded_yet(tmp_path: Path) -> None:
    from serve.server import build_state

    state = build_state(load_serve_settings(index=tmp_path, api_keys=["k"]))
    assert not state.ready and state.config.api_keys == ("k",)
    assert state.config.index_dir == tmp_path


def run_serve(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAG_CACHE_DIR": str(cwd / "cache")}
    command = [sys.executable, "-m", "rag.cli", "serve", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_missing_index_fails_before_serving(tmp_path: Path) -> None:
    result = run_serve(["--index", str(tmp_path / "none")], tmp_path)
    assert result.returncode == 1
    assert "rag ingest" in result.stderr


def test_a_model_that_cannot_load_stops_the_server(tmp_path: Path) -> None:
    index = build_index(tmp_path / "index")
    port = str(free_port())
    result = run_serve(
        ["--index", str(index), "--model", "no-such-model", "--port", port], tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "the model failed to load" in result.stderr
    assert "no-such-model" in result.stderr.splitlines()[-1]


def test_pipelines_hold_an_optional_adapter() -> None:
    assert Pipelines.__dataclass_fields__["adapter"].default is None
