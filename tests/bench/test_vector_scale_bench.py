"""bench/vector_scale.py runs its tiny mode end to end (a smoke test, not a figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tiny_run_measures_every_index_kind_against_flat() -> None:
    done = subprocess.run(
        [sys.executable, "bench/vector_scale.py", "--tiny", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.splitlines()[-1])["rows"]
    assert [(r["kind"], r["vectors"]) for r in rows] == [
        ("flat", 2000),
        ("flat-fp16", 2000),
        ("ivf", 2000),
        ("hnsw", 2000),
    ]
    flat = rows[0]
    assert flat["recall@10"] == 1.0, "flat is the exact baseline"
    for row in rows:
        assert 0.5 <= row["recall@10"] <= 1.0
        width = 2 if row["kind"] == "flat-fp16" else 4  # bytes a component
        assert row["index_mb"] >= 2000 * 384 * width / 1e6 * 0.99, "every kind keeps the vectors"
        assert row["p50_ms"] > 0 and row["build_s"] >= 0
        assert 0 < row["cos_10th"] <= row["cos_1st"] <= 1.0
