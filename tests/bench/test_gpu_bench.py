"""The GPU benchmark scripts run end to end on the CPU (--tiny) with only torch + transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Packages the GPU machine does not have; the scripts must not load them.
ABSENT_ON_GPU = {"faiss", "fastapi", "uvicorn", "starlette", "sentence_transformers", "peft"}
RUNNER = """
import runpy, sys
for script, out in (("bench/gpu_generate.py", sys.argv[1]), ("bench/gpu_embed.py", sys.argv[2])):
    sys.argv = [script, "--tiny", "--device", "cpu", "--out", out]
    runpy.run_path(script, run_name="__main__")
print("LOADED", sorted({name.split(".")[0] for name in sys.modules}))
"""


def test_tiny_runs_write_json_and_import_nothing_absent_on_the_gpu(tmp_path: Path) -> None:
    generate_out, embed_out = tmp_path / "generate.json", tmp_path / "embed.json"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(generate_out), str(embed_out)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(done.stdout.split("LOADED", 1)[1].strip(" []\n").replace("'", "").split(", "))
    assert not loaded & ABSENT_ON_GPU

    generate = json.loads(generate_out.read_text())
    results = generate["models"]["tiny-qwen2"]
    assert not [
        key for key, value in results.items() if isinstance(value, dict) and "error" in value
    ]
    for key in ("plain_b1", "engine_b1", "engine_nographs_b1", "engine_b8", "engine_b32"):
        assert results[key]["tok_s"] > 0 and results[key]["floor_pct"] > 0
    assert results["engine_ttft_ms"] > 0 and results["plain_ttft_ms"] > 0
    assert results["greedy_match"]["exact"] == results["greedy_match"]["of"] == 4
    assert generate["bandwidth_gbs"] > 0
    assert "b=32 tok/s" in done.stdout  # the printed table

    embed = json.loads(embed_out.read_text())
    for batch in ("32", "256"):
        figures = embed["batches"][batch]
        assert figures["binds"] in ("tokenizer", "model")
        assert 150 < figures["tokens_per_chunk"] <= 256
        assert figures["tokenizer_chunks_s"] > 0 and figures["model_tokens_s"] > 0


def test_gpu_check_script_parses() -> None:
    script = ROOT / "bench" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "bench/gpu_generate.py" in text and "bench/gpu_embed.py" in text
