"""Regenerate the `rag --help` block in README.md from the live CLI (`make docs`)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from rag.cli import build_app

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    result = CliRunner().invoke(build_app(), ["--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    text = README.read_text()
    block = f"<!-- rag --help -->\n```text\n{result.output.strip()}\n```"
    new, count = re.subn(r"<!-- rag --help -->\n```text\n.*?```", lambda _: block, text, flags=re.S)
    if count != 1:
        raise SystemExit("README.md has no `<!-- rag --help -->` block to update")
    README.write_text(new)


if __name__ == "__main__":
    main()
