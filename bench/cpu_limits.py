"""Where a CPU answer's time goes, and what bounds it on this machine: a probe, not an engine.

Two parts, one run:

- **torch's kernels at the model's own shapes** (read from its config): the prompt's matrix
  products in float32 and in bfloat16 (which runs on AMX tiles where the CPU has them), and one
  decode step's weight reads with the weights in float32, bfloat16, int8 and int4 (torch's
  weight-only kernels; every layer its own copy, so the weights come from memory, not cache).
  The decode rows are the floor of a token on this memory: a step reads every weight once.
- **the engines against context length**: CTranslate2 int8 (rag's CPU default) and llama.cpp on
  the GGUF as it ships (when installed), each reading a prompt of N tokens and then decoding
  ``--new`` tokens: prefill tok/s and decode ms/token at each N.

    PYTHONPATH=. python bench/cpu_limits.py                      # qwen2.5-0.5b
    PYTHONPATH=. python bench/cpu_limits.py --model qwen2.5-1.5b --contexts 20,700
    PYTHONPATH=. python bench/cpu_limits.py --small              # smollm2, seconds

Prints figures, never pass/fail; compare within one run on an otherwise idle machine (the load
average is printed). What the figures said on the 2-core machines, and why no engine here meets
issue 10's prefill and decode targets together, is in the README's engine section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Group size of torch's int4 weight-only kernel (a scale and a zero per 32 weights).
INT4_GROUP = 32
#: How a decode step's weights are stored, in the order printed.
DECODE_KINDS = ("float32", "bfloat16", "int8", "int4")


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def layer_shapes(config: dict[str, Any]) -> list[tuple[int, int]]:
    """(out, in) of one decoder layer's weight matrices: q, k, v, o, gate, up, down."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    inner = int(config["intermediate_size"])
    kv = kv_heads * head_dim
    return [
        (heads * head_dim, hidden),
        (kv, hidden),
        (kv, hidden),
        (hidden, heads * head_dim),
        (inner, hidden),
        (inner, hidden),
        (hidden, inner),
    ]


def _weights(kind: str, shape: tuple[int, int]) -> tuple[Callable[[Any], Any], list[Any]]:
    """One matrix stored as ``kind``: (its matmul, the tensors it reads, scales included)."""
    import torch

    rows, cols = shape
    if kind in ("float32", "bfloat16"):
        weight = torch.randn(rows, cols, dtype=getattr(torch, kind))
        return (lambda x: torch.nn.functional.linear(x.to(weight.dtype), weight)), [weight]
    if kind == "int8":
        q8 = torch.randint(-127, 128, (rows, cols), dtype=torch.int8)
        scales = torch.rand(rows, dtype=torch.bfloat16)
        return (lambda x: torch.ops.aten._weight_int8pack_mm(x, q8, scales)), [q8, scales]
    nibbles = torch.randint(0, 16, (rows, cols), dtype=torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(nibbles, 1)
    scales_zeros = torch.rand(cols // INT4_GROUP, rows, 2, dtype=torch.bfloat16)
    return (
        lambda x: torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, INT4_GROUP, scales_zeros)
    ), [packed, scales_zeros]


def torch_kernels(config: dict[str, Any], prompt: int, repeats: int) -> dict[str, Any]:
    """Prefill GFLOP/s (fp32, bf16) and one decode step's weight reads per storage kind."""
    import torch

    hidden, inner = int(config["hidden_size"]), int(config["intermediate_size"])
    layers, vocab = int(config["num_hidden_layers"]), int(config["vocab_size"])
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "prefill_gflops": {}}
    for kind in ("float32", "bfloat16"):
        x = torch.randn(prompt, hidden, dtype=getattr(torch, kind))
        weight = torch.randn(inner, hidden, dtype=getattr(torch, kind))
        seconds = _timed(lambda: torch.nn.functional.linear(x, weight), repeats)  # noqa: B023
        out["prefill_gflops"][kind] = 2 * prompt * hidden * inner / seconds / 1e9
    shapes = layer_shapes(config) * layers + [(vocab, hidden)]
    out["decode"] = {kind: _decode_step(kind, shapes, repeats) for kind in DECODE_KINDS}
    return out


def _decode_step(kind: str, shapes: list[tuple[int, int]], repeats: int) -> dict[str, Any]:
    """One decode step's matrix products (one token) with every weight stored as ``kind``."""
    import torch

    try:
        matrices = [_weights(kind, shape) for shape in shapes]
    except RuntimeError as error:  # a shape or a CPU the kernel does not take
        return {"error": str(error).splitlines()[0]}
    inputs = {cols: torch.randn(1, cols, dtype=torch.bfloat16) for _, cols in shapes}

    def step() -> None:
        for (_, cols), (matmul, _) in zip(shapes, matrices, strict=True):
            matmul(inputs[cols])

    seconds = _timed(step, repeats)
    nbytes = sum(t.numel() * t.element_size() for _, read in matrices for t in read)
    return {"ms": seconds * 1000, "mb": nbytes / 1e6, "gbps": nbytes / seconds / 1e9}


def ct2_engine(
    name: str, cache_dir: Path, threads: int
) -> Callable[[int, int], tuple[float, float]]:
    """CTranslate2 int8 (rag's folder, converted on first use): (prompt, new) -> (s, ms/token)."""
    import ctranslate2

    from rag.generate.ct2_convert import ct2_folder

    generator = ctranslate2.Generator(
        str(ct2_folder(name, cache_dir)), device="cpu", compute_type="int8", intra_threads=threads
    )
    piece = "the"

    def run(prompt: int, new: int) -> tuple[float, float]:
        started = time.perf_counter()
        steps = generator.generate_tokens(
            [piece] * prompt, max_length=new, min_length=new, sampling_topk=1
        )
        next(steps)
        first = time.perf_counter()
        produced = 1 + sum(1 for _ in steps)
        return first - started, (time.perf_counter() - first) / max(1, produced - 1) * 1000

    return run


def llamacpp_engine(
    name: str, cache_dir: Path, threads: int
) -> Callable[[int, int], tuple[float, float]] | None:
    """llama.cpp on the GGUF as it ships, as rag loads it; None when it is not installed."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return None
    from bench.cpu_engines import BareLlamaGenerator

    bare = BareLlamaGenerator(name, cache_dir=cache_dir, threads=threads)
    bare.warm_up()
    llama = bare._llama

    def run(prompt: int, new: int) -> tuple[float, float]:
        ids = [1000 + i % 50 for i in range(prompt)]
        llama.reset()
        started = time.perf_counter()
        first = 0.0
        for produced, _ in enumerate(llama.generate(ids, top_k=1, temp=0.0, reset=True), 1):
            if produced == 1:
                first = time.perf_counter()
            if produced >= new:
                break
        return first - started, (time.perf_counter() - first) / max(1, new - 1) * 1000

    return run


def engines_by_context(
    name: str, cache_dir: Path, contexts: list[int], new: int, repeats: int, threads: int
) -> dict[str, Any]:
    """Per engine and prompt length: prefill tok/s and decode ms/token (best of ``repeats``)."""
    out: dict[str, Any] = {}
    for engine, load in (("ctranslate2", ct2_engine), ("llama.cpp", llamacpp_engine)):
        run = load(name, cache_dir, threads)
        if run is None:
            out[engine] = {"error": "not installed (make llamacpp)"}
            continue
        run(min(contexts), 4)  # warm-up
        rows = {}
        for prompt in contexts:
            results = [run(prompt, new) for _ in range(repeats)]
            rows[prompt] = {
                "prefill_tok_s": prompt / min(r[0] for r in results),
                "decode_ms": min(r[1] for r in results),
            }
        out[engine] = rows
        del run
    return out


def report(kernels: dict[str, Any], engines: dict[str, Any], prompt: int) -> None:
    print(f"\ntorch kernels ({kernels['threads']} threads) at the model's shapes")
    for kind, gflops in kernels["prefill_gflops"].items():
        print(f"  prompt of {prompt}: {kind:<9} {gflops:7.0f} GFLOP/s")
    for kind, row in kernels["decode"].items():
        if "error" in row:
            print(f"  decode step, {kind:<8} n/a ({row['error']})")
            continue
        print(
            f"  decode step, {kind:<8} weights {row['mb']:7.0f} MB  {row['ms']:7.1f} ms "
            f"({row['gbps']:.1f} GB/s)"
        )
    print("\nengines by prompt length: prefill tok/s | decode ms/token")
    for engine, rows in engines.items():
        if "error" in rows:
            print(f"  {engine:<12} {rows['error']}")
            continue
        cells = "  ".join(
            f"{n}: {r['prefill_tok_s']:5.0f} | {r['decode_ms']:5.1f}" for n, r in rows.items()
        )
        print(f"  {engine:<12} {cells}")


def main() -> None:
    from rag.models import tokenizer_folder
    from rag.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="registry generator (qwen2.5-0.5b)")
    parser.add_argument("--contexts", default=None, help="prompt lengths (20,500,1000,1500)")
    parser.add_argument("--new", type=int, default=None, help="tokens decoded per run (40)")
    parser.add_argument("--prompt", type=int, default=None, help="rows of the prefill GEMM (1000)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure (3)")
    parser.add_argument("--small", action="store_true", help="smollm2-135m, short: for tests")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    small = args.small
    name = args.model or ("smollm2-135m" if small else "qwen2.5-0.5b")
    contexts = [
        int(n) for n in (args.contexts or ("8,64" if small else "20,500,1000,1500")).split(",")
    ]
    new = args.new or (4 if small else 40)
    prompt = args.prompt or (64 if small else 1000)
    repeats = args.repeats or (1 if small else 3)
    threads = len(os.sched_getaffinity(0))
    cache_dir = load_settings().cache_dir
    config = json.loads((tokenizer_folder(name, cache_dir) / "config.json").read_text())
    print(f"{name} on {threads} CPUs; load average before: {os.getloadavg()}")
    kernels = torch_kernels(config, prompt, repeats)
    engines = engines_by_context(name, cache_dir, contexts, new, repeats, threads)
    report(kernels, engines, prompt)
    print(f"\nload average at the end: {os.getloadavg()}")
    if args.out:
        args.out.write_text(json.dumps({"model": name, "torch": kernels, "engines": engines}))


if __name__ == "__main__":
    main()
