"""The README's first command, run as a user would: fetch the bank corpus, index it, answer."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README must open with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_the_two_commands() -> None:
    assert readme_commands() == ["make quickstart", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make lint" in ci


@pytest.mark.slow
def test_quickstart_answers_from_the_bank_corpus(tmp_path: Path) -> None:
    command = [*shlex.split(readme_commands()[0]), f"INDEX={tmp_path / 'index'}"]
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "index" / "CURRENT").exists()
    # The answer is followed by its cited sources, which come from the bank's documents.
    assert re.search(r"\[\d+\]", out.stdout), out.stdout[-3000:]
    assert "Sources" in out.stdout, out.stdout[-3000:]
