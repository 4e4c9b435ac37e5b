"""`rag --help` lists every subcommand, starts without heavy imports, and matches the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from rag.cli import build_app

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["ingest", "ask", "chat", "search", "serve", "eval", "finetune", "models", "corpora"]


def help_text() -> str:
    result = CliRunner().invoke(build_app(), ["--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_every_subcommand() -> None:
    text = help_text()
    for name in SUBCOMMANDS:
        assert re.search(rf"^\W*{name}\s", text, re.MULTILINE), f"{name} missing from:\n{text}"


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from rag.cli import build_app\n"
        "from typer.testing import CliRunner\n"
        "assert CliRunner().invoke(build_app(), ['--help']).exit_code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers',"
        " 'peft', 'fastapi', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "", f"rag --help imported: {out.stdout.strip()}"


def test_readme_help_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- rag --help -->\n```text\n(.*?)```", readme, re.DOTALL)
    assert match, "README lacks the generated `rag --help` block"
    assert match.group(1).strip() == help_text().strip(), (
        "README's `rag --help` is stale: run `make docs`"
    )
