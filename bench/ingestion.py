"""Ingestion throughput against two floors: the bare fp32 encode and the int8 encoder's own.

    python bench/ingestion.py [--corpus bank | --docs DIR] [--device cpu|cuda]
                              [--encoder torch-fp32|onnx-int8] [--repeat N] [--json]
    python bench/ingestion.py --ray [--corpus bank] [--first N]

Fetches the corpus (cached), loads the encoders once and warms them up, then times, interleaved
in each round on exactly the chunk texts that ingestion produced:

1. ``ingest``: a full ``ingest_paths`` into a fresh index, with the encoder ingestion picks
   (``--encoder``; by default int8 on the CPU, torch on a GPU);
2. ``fp32_encode``: a bare ``SentenceTransformer.encode`` (sentence-transformers' defaults), the
   floor LlamaIndex and Haystack stand on, so the ratio to it is the ratio to those peers;
3. ``int8_encode``: the int8 encoder's bare ``embed_batch`` (CPU only), our encoder's floor.

Throughput is in embedded tokens (the model's tokens per chunk, [CLS]/[SEP] included, capped at
its window: padding excluded) per second. With ``--repeat``, each side's best time is kept.
Prints figures, never a verdict; run it on an otherwise idle machine (the load average is printed
with the figures). ``--docs tests/eval/fixtures/corpus`` is the tiny run the tests use.

With ``--ray``, the same documents are also ingested cold (the embedder loaded inside the run, as
a fresh `rag ingest` does) locally and on a throwaway Ray cluster on this machine of 1 node (all
CPUs) and of 2 nodes (half the CPUs each), started with `ray start` and stopped after: chunks/s
of each, and the ratio to the local cold run. On one machine the nodes share its cores, so the
Ray rows show Ray's overhead (task and actor start-up, a model load per actor, shipping
documents and vectors through the object store), never a speed-up: a speed-up needs nodes with
cores (or GPUs) of their own. ``--first N`` takes the first N files only (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(sync: Callable[[], None], run: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds ``run(*args, **kwargs)`` takes, the device's queue drained."""
    started = time.perf_counter()
    run(*args, **kwargs)
    sync()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", default="bank", help="A corpus name (rag corpora list).")
    source.add_argument("--docs", type=Path, help="A folder of documents instead of a corpus.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--encoder", choices=("torch-fp32", "onnx-int8"), default=None)
    parser.add_argument("--repeat", type=int, default=1, help="Rounds; each side's best is kept.")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument(
        "--ray", action="store_true", help="Also time local vs Ray 1 and 2 nodes (cold runs)."
    )
    parser.add_argument("--first", type=int, default=None, help="Only the first N files.")
    args = parser.parse_args()

    import torch

    from ingest.corpora import fetch
    from ingest.pipeline import ingest_paths
    from rag.embed import OnnxEmbedder, SentenceTransformerEmbedder, load_embedder
    from rag.settings import load_settings
    from rag.store import Index

    cache_dir = args.cache_dir or load_settings().cache_dir
    docs = args.docs or fetch(args.corpus, cache_dir).docs_dir
    if args.first is not None:
        subset = Path(tempfile.mkdtemp(prefix="bench-ingest-docs-"))
        for path in sorted(p for p in docs.iterdir() if p.is_file())[: args.first]:
            shutil.copy(path, subset / path.name)
        docs = subset
    embedder = load_embedder("minilm", args.device, encoder=args.encoder, cache_dir=cache_dir)
    fp32 = (
        embedder
        if isinstance(embedder, SentenceTransformerEmbedder)
        else SentenceTransformerEmbedder("minilm", device=args.device or "cpu")
    )
    cuda = bool(fp32.device and fp32.device.startswith("cuda"))
    int8 = None
    if not cuda:
        int8 = embedder if isinstance(embedder, OnnxEmbedder) else OnnxEmbedder(cache_dir=cache_dir)
    warm = ["warm up the kernels"] * 64
    for encoder in {id(e): e for e in (embedder, fp32, int8) if e is not None}.values():
        encoder.warm_up()
        encoder.embed_batch(warm)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    load_before = os.getloadavg()

    times: dict[str, list[float]] = {"ingest": [], "fp32_encode": [], "int8_encode": []}
    # Interleaved, so a change in the machine's load hits every side alike.
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for run in range(args.repeat):
            index_dir = Path(tmp) / f"index-{run}"
            times["ingest"].append(timed(sync, ingest_paths, [docs], index_dir, embedder=embedder))
            with Index.open(index_dir) as index:
                texts = [chunk.text for chunk in index.all_chunks()]
                chunks = index.chunk_count()
            encode = fp32.model.encode
            times["fp32_encode"].append(
                timed(sync, encode, texts, normalize_embeddings=True, show_progress_bar=False)
            )
            if int8 is not None:
                times["int8_encode"].append(timed(sync, int8.embed_batch, texts))

    window = fp32.max_tokens + 2
    tokens = sum(min(fp32.count_tokens(text) + 2, window) for text in texts)
    best = {side: min(values) for side, values in times.items() if values}
    figures: dict[str, Any] = {
        "docs": str(docs),
        "device": "cuda" if cuda else "cpu",
        "encoder": embedder.encoder,
        "torch_threads": torch.get_num_threads(),
        "chunks": chunks,
        "embedded_tokens": tokens,
    }
    for side, seconds in best.items():
        figures[f"{side}_seconds"] = round(seconds, 2)
        figures[f"{side}_tokens_per_s"] = round(tokens / seconds, 1)
    figures["speedup_ingest_over_fp32_encode"] = round(best["fp32_encode"] / best["ingest"], 3)
    if "int8_encode" in best:
        figures["speedup_int8_encode_over_fp32_encode"] = round(
            best["fp32_encode"] / best["int8_encode"], 3
        )
    own = best["int8_encode"] if embedder is int8 else best["fp32_encode"]
    figures["ingest_over_own_floor"] = round(best["ingest"] / own, 3)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["load_average_before"] = [round(x, 2) for x in load_before]
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.ray:
        figures["cold"] = cold_runs(docs, args.device)
    if args.first is not None:
        shutil.rmtree(docs, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        if key != "cold":
            print(f"{key:<38} {value}")
    for row in figures.get("cold", []):
        print(
            f"cold {row['where']:<16} {row['seconds']:>8.1f} s  {row['chunks_per_s']:>7.1f} "
            f"chunks/s  x{row['ratio_to_local']:.2f} of local"
        )


def cold_runs(docs: Path, device: str | None) -> list[dict[str, object]]:
    """Local and Ray (1 node, 2 nodes) ingestion from scratch, model loading included."""
    from ingest.pipeline import IngestOptions, ingest_paths
    from ingest.ray_ingest import ingest_on_ray
    from ingest.ray_local import LocalCluster

    options = IngestOptions(device=device)
    cpus = os.cpu_count() or 2
    timings: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-ray-") as tmp:
        started = time.perf_counter()
        summary = ingest_paths([docs], Path(tmp) / "local", options)
        timings.append(("local", time.perf_counter() - started))
        for nodes in (1, 2):
            with LocalCluster(nodes=nodes, cpus_per_node=max(1, cpus // nodes)) as cluster:
                started = time.perf_counter()
                ingest_on_ray([docs], Path(tmp) / f"ray{nodes}", options, address=cluster.address)
                timings.append((f"ray {nodes} node(s)", time.perf_counter() - started))
    local = timings[0][1]
    return [
        {
            "where": where,
            "seconds": round(seconds, 2),
            "chunks_per_s": round(summary.chunks / seconds, 1),
            "ratio_to_local": round(local / seconds, 3),
        }
        for where, seconds in timings
    ]


if __name__ == "__main__":
    main()
