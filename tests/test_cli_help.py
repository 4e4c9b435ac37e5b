"""`rag --help` lists every subcommand, starts without heavy imports, and matches the README."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rag.cli import build_app
from rag.defaults import DEFAULT_K, DEFAULT_SHOTS

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


def test_answering_help_states_each_default() -> None:
    """The defaults are written in the help text, not eaten as markup (``[...]`` would be)."""
    passages_and_shots = (f"else {DEFAULT_K})", f"else {DEFAULT_SHOTS})")
    for command, defaults in (
        ("ask", (*passages_and_shots, "else hybrid.")),
        ("chat", passages_and_shots),  # chat has no --mode: it takes the settings file's
    ):
        result = CliRunner().invoke(
            build_app(), [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}
        )
        text = " ".join(result.output.replace("│", " ").split())
        for default in defaults:
            assert default in text, f"{command} --help lacks {default!r}:\n{result.output}"


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from rag.cli import build_app\n"
        "from typer.testing import CliRunner\n"
        "for args in (['--help'], ['ingest', '--help'], ['serve', '--help']):\n"
        "    assert CliRunner().invoke(build_app(), args).exit_code == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers',"
        " 'peft', 'fastapi', 'numpy', 'ray', 'llama_cpp') if m in sys.modules]\n"
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


def readme_rag_commands(page: str = "README.md") -> list[str]:
    """Every `rag ...` line of a page's bash blocks, continuations joined, comments cut."""
    readme = (ROOT / page).read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("rag "):
                commands.append(line)
    return commands


def parse_only(command: Any, name: str, args: list[str], parent: Any = None) -> None:
    """Parse ``args`` down to the leaf subcommand, as the CLI would, without running anything.

    The README puts no option before a subcommand, so a group's first argument names it.
    """
    if hasattr(command, "get_command"):
        ctx = command.make_context(name, args[:1], parent=parent)
        sub = command.get_command(ctx, args[0]) if args else None
        assert sub is not None, f"`{name}` has no subcommand {args[:1]}"
        parse_only(sub, args[0], args[1:], ctx)
    else:
        command.make_context(name, args, parent=parent)


@pytest.mark.parametrize(("page", "least"), [("README.md", 10), ("docs/deploy.md", 8)])
def test_readme_rag_commands_parse(page: str, least: int) -> None:
    """Each documented command names options that exist, with the values they take."""
    commands = readme_rag_commands(page)
    assert len(commands) >= least
    app = typer.main.get_command(build_app())
    for line in commands:
        line = re.sub(r"\$\([^)]*\)", "DIR", line)  # "$(rag corpora path squad)"
        line = re.sub(r"\s\[[^\]]*\]", "", line)  # optional parts: [--api-key KEY]
        try:
            parse_only(app, "rag", shlex.split(line)[1:])
        except (AssertionError, typer.Exit):
            raise
        except Exception as error:  # typer's own click raises its UsageError family
            message = error.format_message() if hasattr(error, "format_message") else error
            raise AssertionError(f"{page}'s `{line}` does not parse: {message}") from None
