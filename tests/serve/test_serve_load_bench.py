"""`bench/serve_load.py --fake` runs end to end with no errors (a smoke test, not a figure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_load_check_runs_against_the_fake_server() -> None:
    command = [
        sys.executable,
        "bench/serve_load.py",
        "--fake",
        "--clients",
        "3",
        "--requests",
        "12",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 requests, 3 concurrent streaming clients" in result.stdout
    assert "errors (must be 0)           0" in result.stdout
    assert "stream pieces      15.0 per answer" in result.stdout


def test_the_load_check_compares_worker_counts() -> None:
    command = [sys.executable, "bench/serve_load.py", "--fake", "--workers", "1,2"]
    command += ["--clients", "4", "--requests", "12"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fake generator, 2 worker(s): 12 requests" in result.stdout
    assert result.stdout.count("errors (must be 0)           0") == 2
    assert "== answers/s by worker count (ratio to the first)" in result.stdout
    assert "workers 2" in result.stdout
