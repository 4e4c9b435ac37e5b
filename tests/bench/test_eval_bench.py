"""bench/eval_squad.py and bench/qa_validate.py run as scripts and name their sample sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def script_help(script: str) -> str:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_help_names_the_per_set_limits() -> None:
    assert "squad 200, bank 60" in script_help("eval_squad.py")


def test_validation_help_names_the_limits_and_the_generator() -> None:
    text = script_help("qa_validate.py")
    assert "squad 200, bank 60" in text and "--generator" in text and "--max-tries" in text
