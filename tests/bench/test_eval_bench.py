"""bench/eval_squad.py runs as a script and names its per-set sample sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_help_names_the_per_set_limits() -> None:
    done = subprocess.run(
        [sys.executable, "bench/eval_squad.py", "--help"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "squad 200, bank 60" in " ".join(done.stdout.split())
