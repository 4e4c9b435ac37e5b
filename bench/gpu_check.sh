#!/usr/bin/env bash
# The whole GPU check for issue 6 in one run (about 5 minutes of GPU time): the engine's CUDA
# tests (when pytest is installed), generation (plain generate() vs the decode engine on the
# Qwen2.5-0.5B/1.5B shapes, greedy agreement, then the compiled step) and embedding (MiniLM-L6
# shape: tokenizer vs model, which binds).
# Usage, from the repository root:  bash bench/gpu_check.sh [RESULTS_DIR]
# RESULTS_DIR defaults to $OUT (the device runner's folder) or ./gpu-results. Each script writes
# its JSON after every section, so a run cut short by the timeouts still leaves its figures.
set -u
cd "$(dirname "$0")/.."
results="${1:-${OUT:-gpu-results}}"
python="${PYTHON:-$(command -v python3 || command -v python)}"
mkdir -p "$results"
export PYTHONPATH=.
{
    "$python" -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__, "cuda", torch.version.cuda)'
    nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,clocks.max.sm --format=csv || true
} 2>&1 | tee "$results/env.txt"
if "$python" -c 'import pytest' 2>/dev/null; then
    timeout 90 "$python" -m pytest -q -p no:cacheprovider tests/rag/test_engine_gpu.py 2>&1 \
        | tee "$results/test_engine_gpu.log"
fi
timeout 380 "$python" bench/gpu_generate.py --compile --out "$results/gpu_generate.json" 2>&1 \
    | tee "$results/gpu_generate.log"
timeout 100 "$python" bench/gpu_embed.py --out "$results/gpu_embed.json" 2>&1 \
    | tee "$results/gpu_embed.log"
echo "results in $results"
