"""The counts a hostile-input or crash test reports: written as JSON where the note can take them.

Each test writes ``<pytest's base temp>/volumes/<name>.json`` and prints one ``VOLUMES`` line
(seen with ``-s`` or ``-rP``), so the figures in the closing note come from a run, not by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def record_volumes(factory: pytest.TempPathFactory, name: str, counts: dict[str, Any]) -> Path:
    folder = factory.getbasetemp() / "volumes"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    print(f"VOLUMES {name}: {json.dumps(counts, sort_keys=True)}")
    return path
