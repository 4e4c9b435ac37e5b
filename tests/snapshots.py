"""Snapshot checks for rendered prompts: the text must equal the file, which a person reviewed.

A missing snapshot is written and the test fails, so a new one is looked at before it counts;
``UPDATE_SNAPSHOTS=1`` rewrites them all after an intended change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag.types import Message


def transcript(messages: Sequence[Message]) -> str:
    return "".join(f"### {m.role}\n{m.content}\n" for m in messages)


def check_snapshot(path: Path, text: str) -> None:
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text, encoding="utf-8")
        if os.environ.get("UPDATE_SNAPSHOTS") != "1":
            pytest.fail(
                f"snapshot {path.name} was missing and has been written: review it and re-run"
            )
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} changed (UPDATE_SNAPSHOTS=1 to accept)"
    )
