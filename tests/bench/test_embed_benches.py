"""The embedding and retrieval benchmarks run end to end on a tiny corpus, with the real MiniLM
in both encoders, and print the figures they promise (their values are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = "tests/eval/fixtures/corpus"
RUNNER = """
import contextlib, io, runpy, sys
for script, *args in (line.split() for line in sys.stdin.read().splitlines()):
    sys.argv = [script, *args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(script, run_name="__main__")
    print("RESULT", script, out.getvalue().strip().splitlines()[-1])
"""


def test_tiny_runs_print_every_figure(tmp_path: Path) -> None:
    cache = os.environ["RAG_TEST_CACHE"]
    common = f"--cache-dir {cache} --json"
    scripts = [
        f"bench/ingestion.py --docs {DOCS} --device cpu {common}",
        f"bench/retrieve.py --docs {DOCS} --scale 300 --queries 3 --repeat 2 "
        f"--vector-index flat --vector-index hnsw --work {tmp_path / 'retrieve'} {common}",
        f"bench/embed_quality.py --docs {DOCS} --qa tests/eval/fixtures/qa.jsonl "
        f"--work {tmp_path / 'quality'} {common}",
    ]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input="\n".join(scripts),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {
        line.split()[1]: json.loads(line.split(maxsplit=2)[2])
        for line in done.stdout.splitlines()
        if line.startswith("RESULT ")
    }

    ingest = results["bench/ingestion.py"]
    assert ingest["encoder"] == "onnx-int8" and ingest["chunks"] == 4
    assert ingest["embedded_tokens"] > 4 * 2
    for side in ("ingest", "fp32_encode", "int8_encode"):
        assert ingest[f"{side}_tokens_per_s"] > 0
    for ratio in ("speedup_ingest_over_fp32_encode", "speedup_int8_encode_over_fp32_encode"):
        assert ingest[ratio] > 0
    assert len(ingest["load_average_before"]) == 3

    retrieve = results["bench/retrieve.py"]
    assert retrieve["parallel"] is True
    assert retrieve["indexes"]["corpus"]["chunks"] == 4
    assert retrieve["indexes"]["scaled"]["chunks"] == 300
    assert retrieve["indexes"]["scaled"]["vector_index"] == "flat"
    assert retrieve["indexes"]["scaled-hnsw"]["chunks"] == 300
    assert retrieve["indexes"]["scaled-hnsw"]["vector_index"] == "hnsw"
    for index in retrieve["indexes"].values():
        assert set(index["modes"]) == {"hybrid", "dense", "keyword"}
        hybrid = index["modes"]["hybrid"]
        parts = ("encode", "dense", "keyword", "floor", "fusion", "fetch")
        for part in ("search", *parts, "path"):
            assert hybrid[part]["p95"] >= hybrid[part]["p50"] >= 0
        # The keyword search runs beside encode + dense: the path is at most the parts' sum.
        assert hybrid["path"]["mean"] <= sum(hybrid[p]["mean"] for p in parts) + 0.01
        assert index["modes"]["dense"]["keyword"]["mean"] == 0  # dense mode runs no FTS query

    [quality] = results["bench/embed_quality.py"]
    assert quality["questions"] == 3 and quality["same_chunks"]
    assert 0.9 < quality["chunk_cosine"]["mean"] <= 1.0
    pairings = {(row["mode"], row["pairing"]) for row in quality["table"]}
    assert pairings == {
        (mode, pairing)
        for mode in ("hybrid", "dense", "keyword")
        for pairing in ("fp32/fp32", "fp32/int8", "int8/fp32", "int8/int8")
    }
    base = next(r for r in quality["table"] if r["pairing"] == "fp32/fp32")
    assert base["diff"]["1"] is None and 0 <= base["recall"]["10"]["value"] <= 1
