"""GPU generation benchmark (issue 6): plain ``generate()`` vs our decode engine, same run.

Builds the Qwen2.5-0.5B and -1.5B architectures from configs written here (random weights, bf16
on CUDA: speed does not depend on the values, and the GPU machine has no weights), measures the
device copy bandwidth, then for each model: batch-1 tokens/s, time to first token for a
2,000-token prompt, and batched throughput at 8 and 32 sequences, each as tokens/s and as % of
the floor (weights read once per step: ``batch * bandwidth / weight bytes`` tokens/s), for
``generate()`` and for ``rag.generate.engine.DecodeEngine``. It then checks that the engine's
greedy tokens equal ``generate()``'s on the real architecture (fp32, where kernels agree to
rounding, and bf16, reported as matched prefixes since random bf16 logits tie often).
``--compile`` adds the engine with an inductor-compiled step (batch 1, one shape, compile time
reported), measured last. Results are written to ``--out`` after every section, so a run cut
short still leaves what it measured.

Imports only torch, transformers and this repo. Run: ``PYTHONPATH=. python bench/gpu_generate.py
--out results.json``; ``--tiny`` runs the same code on a tiny config (the tests use it on CPU).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM

from rag.generate.engine import DecodeEngine

SHARED: dict[str, Any] = {
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": {
        **SHARED,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    },
    "qwen2.5-1.5b": {
        **SHARED,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
    },
}
TINY: dict[str, dict[str, Any]] = {
    "tiny-qwen2": {
        "vocab_size": 512,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    sync(device)
    started = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - started


def release(device: torch.device) -> None:
    """Return the last model's memory (its engines' worker threads exit once idle)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def copy_bandwidth(device: torch.device, megabytes: int) -> float:
    """GB/s of a device-to-device copy, counting bytes read plus bytes written."""
    src = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _, seconds = timed(device, lambda: [dst.copy_(src) for _ in range(10)])
    return 2 * 10 * src.numel() / seconds / 1e9


def build(config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> Any:
    torch.manual_seed(0)
    with torch.device(device):
        model: Any = Qwen2ForCausalLM(Qwen2Config(**config))
    return model.to(dtype).eval()


def prompts(count: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (count, length), generator=generator).tolist()


def plain_generate(model: Any, batch: list[list[int]], new_tokens: int) -> list[list[int]]:
    """``generate()`` greedy, never stopping early (no EOS), equal-length prompts."""
    ids = torch.tensor(batch, device=model.device)
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return [row[ids.shape[1] :] for row in out.tolist()]


def engine_generate(
    engine: DecodeEngine, batch: list[list[int]], new_tokens: int
) -> list[list[int]]:
    if len(batch) == 1:
        return [list(engine.generate_stream(batch[0], max_new_tokens=new_tokens))]
    return engine.generate_batch(batch, max_new_tokens=new_tokens)


def first_token_ms(device: torch.device, run: Callable[[], Any]) -> float:
    run()
    _, seconds = timed(device, run)
    return seconds * 1000


def agreement(model: Any, engine: DecodeEngine, batch: list[list[int]], new_tokens: int) -> dict:
    """Engine greedy (all prompts together) vs ``generate()`` on each prompt alone."""
    ours = engine.generate_batch(batch, max_new_tokens=new_tokens)
    prefixes = []
    for prompt, got in zip(batch, ours, strict=True):
        want = plain_generate(model, [prompt], new_tokens)[0]
        prefixes.append(
            next((i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b), len(want))
        )
    return {"exact": sum(p == new_tokens for p in prefixes), "of": len(batch), "prefix": prefixes}


class Report:
    """The JSON results, rewritten after every section."""

    def __init__(self, path: Path, head: dict) -> None:
        self.path, self.data = path, {**head, "models": {}}
        self.save()

    def section(self, model: str, name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            value = fn()
        except Exception as error:
            value = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
            print(f"[{model}] {name}: FAILED {value['error']}", flush=True)
        else:
            print(f"[{model}] {name}: {value} ({time.perf_counter() - started:.1f} s)", flush=True)
        self.data["models"].setdefault(model, {})[name] = value
        self.save()
        return value

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2))


def run_model(report: Report, name: str, config: dict, args: argparse.Namespace) -> None:
    """Every measurement for one architecture, plain ``generate()`` and the engine side by side."""
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build(config, device, dtype)
    vocab = config["vocab_size"]
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    floor = report.data["bandwidth_gbs"] * 1e9 / size
    report.section(name, "weights", lambda: {"bytes": size, "floor_tok_s_b1": round(floor, 1)})
    max_len = max(args.prefill_tokens + 1, args.prompt_tokens + args.new_tokens)
    engine = DecodeEngine(model, max_batch=max(args.batches), max_len=max_len)
    no_graphs = DecodeEngine(model, max_batch=1, max_len=max_len, cuda_graphs=False)
    paths: dict[str, Callable[[list[list[int]], int], list[list[int]]]] = {
        "plain": lambda work, tokens: plain_generate(model, work, tokens),
        "engine": lambda work, tokens: engine_generate(engine, work, tokens),
        "engine_nographs": lambda work, tokens: engine_generate(no_graphs, work, tokens),
    }

    def rate(path: str, batch: int) -> dict:
        work = prompts(batch, args.prompt_tokens, vocab, seed=batch)
        run = paths[path]
        # Graphs are captured per shape, so the engine warms up over the whole length; the
        # slow eager paths need only a short warm-up.
        run(work, args.new_tokens if path == "engine" else min(8, args.new_tokens))
        outputs, seconds = timed(device, lambda: run(work, args.new_tokens))
        tok_s = sum(len(row) for row in outputs) / seconds
        return {"tok_s": round(tok_s, 1), "floor_pct": round(100 * tok_s / (batch * floor), 2)}

    for batch in (1, *args.batches):
        for path in ("plain", "engine") if batch > 1 else paths:
            report.section(name, f"{path}_b{batch}", functools.partial(rate, path, batch))

    long_prompt = prompts(1, args.prefill_tokens, vocab, seed=1)
    ids = torch.tensor(long_prompt, device=device)

    def forward() -> None:
        with torch.inference_mode():
            model(input_ids=ids, logits_to_keep=1)

    def first(run: Callable[[], Any]) -> float:
        return round(first_token_ms(device, run), 2)

    report.section(name, "prefill_forward_ms", lambda: first(forward))
    report.section(
        name, "plain_ttft_ms", lambda: first(lambda: plain_generate(model, long_prompt, 1))
    )
    report.section(
        name,
        "engine_ttft_ms",
        lambda: first(lambda: next(engine.generate_stream(long_prompt[0], max_new_tokens=1))),
    )

    checks = [prompts(1, n, vocab, seed=100 + n)[0] for n in (5, 17, 64, 4 * args.prompt_tokens)]
    label = "greedy_match_bf16" if dtype == torch.bfloat16 else "greedy_match"
    report.section(name, label, lambda: agreement(model, engine, checks, args.verify_tokens))
    if dtype != torch.float32:
        model.float()  # in place: the bf16 engines above are done with it
        exact = DecodeEngine(model, max_batch=len(checks), max_len=max_len)
        report.section(
            name, "greedy_match_fp32", lambda: agreement(model, exact, checks, args.verify_tokens)
        )


def run_compiled(report: Report, name: str, config: dict, args: argparse.Namespace) -> None:
    """The engine with an inductor-compiled step at one shape (batch 1, prompt + answer)."""
    device = torch.device(args.device)
    model = build(config, device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    floor = report.data["bandwidth_gbs"] * 1e9 / size
    engine = DecodeEngine(
        model, max_batch=1, max_len=args.prompt_tokens + args.new_tokens, compile_backend="inductor"
    )
    work = prompts(1, args.prompt_tokens, config["vocab_size"], seed=1)
    report.section(
        name,
        "compiled_warmup_s",
        lambda: round(timed(device, lambda: engine_generate(engine, work, args.new_tokens))[1], 1),
    )

    def measure() -> dict:
        outputs, seconds = timed(device, lambda: engine_generate(engine, work, args.new_tokens))
        tok_s = len(outputs[0]) / seconds
        return {"tok_s": round(tok_s, 1), "floor_pct": round(100 * tok_s / floor, 2)}

    report.section(name, "engine_compiled_b1", measure)
    checks = [prompts(1, n, config["vocab_size"], seed=100 + n)[0] for n in (5, 17, 64)]
    report.section(
        name, "greedy_match_compiled", lambda: agreement(model, engine, checks, args.verify_tokens)
    )


def table(data: dict) -> str:
    lines = [f"copy bandwidth {data['bandwidth_gbs']:.0f} GB/s on {data['device_name']}"]
    header = f"{'model':<14} {'measure':<12} {'plain':>16} {'engine':>16} {'compiled':>16}"
    lines += [header, "-" * len(header)]

    def cell(value: Any) -> str:
        if isinstance(value, dict) and "tok_s" in value:
            return f"{value['tok_s']:.0f} ({value['floor_pct']:.1f}%)"
        if isinstance(value, dict) and "error" in value:
            return "error"
        return "-" if value is None else str(value)

    for model, results in data["models"].items():
        batches = sorted(int(key[7:]) for key in results if key.startswith("plain_b"))
        for batch in batches:
            lines.append(
                f"{model:<14} {f'b={batch} tok/s':<12} {cell(results.get(f'plain_b{batch}')):>16} "
                f"{cell(results.get(f'engine_b{batch}')):>16} "
                f"{cell(results.get(f'engine_compiled_b{batch}')):>16}"
            )
        no_graphs = cell(results.get("engine_nographs_b1"))
        lines.append(f"{model:<14} {'b=1, no graph':<12} {'':>16} {no_graphs:>16}")
        ttft = (cell(results.get("plain_ttft_ms")), cell(results.get("engine_ttft_ms")))
        lines.append(f"{model:<14} {'TTFT ms':<12} {ttft[0]:>16} {ttft[1]:>16}")
        forward = cell(results.get("prefill_forward_ms"))
        lines.append(f"{model:<14} prefill forward alone: {forward} ms")
        for key in sorted(k for k in results if k.startswith("greedy_match")):
            match = results.get(key)
            if isinstance(match, dict) and "exact" in match:
                lines.append(
                    f"{model:<14} {key}: {match['exact']}/{match['of']} exact, "
                    f"matched prefixes {match['prefix']}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--tiny", action="store_true", help="tiny config, short runs (CPU tests)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default=None, help="comma-separated subset of the models")
    parser.add_argument(
        "--compile", action="store_true", help="also time an inductor-compiled step"
    )
    parser.add_argument("--new-tokens", type=int, default=None)
    args = parser.parse_args(argv)
    configs = TINY if args.tiny else ARCHITECTURES
    if args.models:
        configs = {name: configs[name] for name in args.models.split(",")}
    args.prompt_tokens = 32
    args.new_tokens = args.new_tokens or (8 if args.tiny else 256)
    args.prefill_tokens = 256 if args.tiny else 2000
    args.batches = (8, 32)
    args.verify_tokens = 8 if args.tiny else 32
    device = torch.device(args.device)
    if args.tiny and device.type == "cpu":
        # A tiny model gains nothing from threads, and torch's thread pool stalls badly when
        # other processes keep the cores busy (DESIGN.md, "Benchmarks on the 2-core machines").
        torch.set_num_threads(1)
    head = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "bandwidth_gbs": round(copy_bandwidth(device, 64 if args.tiny else 1024), 1),
    }
    report = Report(args.out, head)
    print(f"copy bandwidth: {head['bandwidth_gbs']} GB/s", flush=True)
    for name, config in configs.items():
        run_model(report, name, config, args)
        release(device)
    if args.compile:
        for name, config in configs.items():
            run_compiled(report, name, config, args)
            release(device)
    print(table(report.data), flush=True)
    return report.data


if __name__ == "__main__":
    main()
