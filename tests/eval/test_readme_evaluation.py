"""The README's evaluation walkthrough, run as a user would on the sample corpus with a real
model: ingest, generate, show, review (keystrokes piped in), evaluate, apply the settings, ask.

The commands are the README's, with two substitutions: ``--n 6`` for ``--n 200`` (the sample
corpus has five passages) and ``RAG_MODEL=smollm2-135m`` (a plumbing model: its questions and
answers are poor, and what is checked is that every step runs and hands the next what it needs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- evaluation walkthrough: run by tests/eval/test_readme_evaluation.py -->"


def walkthrough() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(re.escape(MARKER) + r"\n```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "the README's evaluation section must keep its walkthrough block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_the_walkthrough_starts_from_a_folder_and_ends_with_the_settings() -> None:
    steps = [" ".join(command.split()[:3]) for command in walkthrough()]
    assert steps == [
        'rag ingest "$(rag',
        "rag qa generate",
        "rag qa show",
        "rag qa review",
        "rag eval --qa",
        "rag eval --qa",
        'rag ask "How',
    ]
    assert walkthrough()[5].endswith("--apply-settings")


@pytest.mark.slow
def test_the_readme_evaluation_walkthrough_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "RAG_MODEL": "smollm2-135m",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }
    out: dict[str, str] = {}
    for command in walkthrough():
        command = command.replace("--n 200", "--n 6")
        keys = "a\n" * 50 if command.startswith("rag qa review") else None
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            input=keys,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        out[" ".join(command.split()[:3])] = done.stdout

    generated = out["rag qa generate"]
    assert "answerable: " in generated and "removed" in generated and "kept" in generated
    rows = [json.loads(line) for line in (tmp_path / "qa.jsonl").read_text().splitlines()]
    assert rows, generated
    for row in rows:
        assert row["generator"]["model"] == "smollm2-135m" and row["filters"]["passed"]
        assert row["source"]["doc_id"]
    assert "questions (" in out["rag qa show"] and "Q: " in out["rag qa show"]
    reviewed = [json.loads(line) for line in (tmp_path / "reviewed.jsonl").read_text().splitlines()]
    assert [row["reviewed"] for row in reviewed] == ["accepted"] * len(rows)

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["config"]["reviewed_only"] is True
    assert {r["n"] for r in report["runs"] if r["run"] == "rag-few-shot"} == {len(rows)}
    assert [p["k"] for p in report["k_sweep"]] == [1, 2, 3, 5]
    settings = json.loads((tmp_path / "report" / "settings.json").read_text())
    assert {"k", "shots", "mode", "lines"} <= set(settings)
    assert "Recommended settings:" in out["rag eval --qa"]
    assert json.loads((tmp_path / "idx" / "settings.json").read_text()) == settings
    assert "Sources" in out['rag ask "How']
