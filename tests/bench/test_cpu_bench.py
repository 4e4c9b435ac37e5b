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
    assert set(results) == {
        "transformers",
        "llamacpp",
        "llamacpp-bare",
        "ct2",
        "openvino",
        "openvino-bare",
    }
    for engine, figures in results.items():
        assert "error" not in figures, (engine, figures)
        assert all(figures[key] > 0 for key in FIGURES), (engine, figures)
        # The same prompt for all (a 4-token tag in front defeats prefix caches between runs).
        assert figures["prompt_tokens"] == results["transformers"]["prompt_tokens"]
        assert figures["prompt_tokens"] >= report["inputs"]["rag_prompt_tokens"]
        assert len(figures["answers"]) == 2 and 0 <= figures["agree_f1"] <= 1
    for engine in ("llamacpp", "ct2", "openvino"):  # the engines that take concurrent requests
        assert results[engine]["threads4_tok_s"] > 0
    assert results["transformers"]["agree_f1"] == 1.0
    assert "prefill tok/s" in done.stdout and "openvino vs transformers" in done.stdout
    assert "rag openvino answer time / bare LLMPipeline" in done.stdout


def test_the_bare_openvino_call_ends_before_the_next_begins() -> None:
    """The pipeline answers one request at a time: a stream ended by EOS, or closed early, has
    its call finished and joined before the next starts (an overlap crashed CI once)."""
    import threading
    from collections.abc import Generator

    from bench.cpu_engines import BareOpenVINOGenerator
    from rag.generate import GenerationConfig
    from rag.types import Message

    generator = BareOpenVINOGenerator("smollm2-135m", cache_dir=Path(os.environ["RAG_TEST_CACHE"]))
    generator.warm_up()
    threads = threading.active_count()
    question = [Message("user", "What is the capital of France?")]
    first = generator.generate(question, GenerationConfig(max_new_tokens=64))
    assert first.finish_reason == "stop" and "Paris" in first.text
    assert threading.active_count() == threads
    story = generator.stream([Message("user", "Tell me a long story.")], GenerationConfig(200))
    assert isinstance(story, Generator)
    next(story)
    story.close()
    assert threading.active_count() == threads
    assert generator.generate(question, GenerationConfig(max_new_tokens=64)).text == first.text


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


def test_limits_probe_measures_kernels_and_engines_by_prompt_length(tmp_path: Path) -> None:
    out = tmp_path / "limits.json"
    cache = os.environ["RAG_TEST_CACHE"]
    done = subprocess.run(
        [sys.executable, "bench/cpu_limits.py", "--small", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "RAG_CACHE_DIR": cache},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["model"] == "smollm2-135m"
    kernels = figures["torch"]
    assert set(kernels["prefill_gflops"]) == {"float32", "bfloat16"}
    assert all(v > 0 for v in kernels["prefill_gflops"].values())
    decode = kernels["decode"]
    for kind in ("float32", "bfloat16", "int8", "int4"):
        assert decode[kind]["ms"] > 0 and decode[kind]["gbps"] > 0, (kind, decode[kind])
    # What a step reads follows the storage: 4, 2, 1 and ~0.6 bytes a weight (scales included).
    sizes = [decode[kind]["mb"] for kind in ("float32", "bfloat16", "int8", "int4")]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 2 * sizes[1]
    for engine in ("ctranslate2", "llama.cpp"):
        rows = figures["engines"][engine]
        assert set(rows) == {"8", "64"}, (engine, rows)
        assert all(r["prefill_tok_s"] > 0 and r["decode_ms"] > 0 for r in rows.values())
    assert "engines by prompt length" in done.stdout
