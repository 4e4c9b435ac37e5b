"""bench/cpu_generate.py runs every engine end to end in its small mode and prints the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("load_s", "ttft_ms", "prefill_tok_s", "decode_tok_s", "batch4_tok_s", "peak_rss_mb")


def test_small_run_measures_every_engine(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    command = ["bench/cpu_generate.py", "--small", "--questions", "2", "--decode-tokens", "8"]
    done = subprocess.run(
        [sys.executable, *command, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert set(results) == {"transformers", "llamacpp", "llamacpp-bare", "ct2"}
    for engine, figures in results.items():
        assert "error" not in figures, (engine, figures)
        assert all(figures[key] > 0 for key in FIGURES), (engine, figures)
        # The same prompt for all (a 4-token tag in front defeats prefix caches between runs).
        assert figures["prompt_tokens"] == results["transformers"]["prompt_tokens"]
        assert figures["prompt_tokens"] >= report["inputs"]["rag_prompt_tokens"]
        assert len(figures["answers"]) == 2 and 0 <= figures["agree_f1"] <= 1
    for engine in ("llamacpp", "ct2"):  # the engines that take concurrent requests
        assert results[engine]["threads4_tok_s"] > 0
    assert results["transformers"]["agree_f1"] == 1.0
    assert "prefill tok/s" in done.stdout and "ct2 vs transformers" in done.stdout


def test_lora_bench_times_an_engine_and_leaves_no_conversion_behind() -> None:
    cache = Path(os.environ["RAG_TEST_CACHE"])
    before = sorted((cache / "adapters").glob("*.gguf"))
    command = ["bench/cpu_lora.py", "--model", "smollm2-135m", "--engines", "llama.cpp"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAG_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.split("rank-16 LoRA")[1]
    assert "llama.cpp" in table and "first load s" in table and "answer ms" in table
    assert sorted((cache / "adapters").glob("*.gguf")) == before
