"""Ingestion throughput against its floor: a bare `SentenceTransformer.encode` of the same chunks.

    python bench/ingestion.py [--corpus bank] [--device cpu|cuda] [--repeat N] [--json]
    python bench/ingestion.py --ray [--corpus bank]

Fetches the corpus (cached), loads the embedder once, warms it up, then times, interleaved,
(1) a full `ingest_paths` into a fresh index and (2) `model.encode` over exactly the chunk texts
that ingestion produced, with sentence-transformers' defaults. Embedding is the real work; loading,
chunking, token counting and storage should add little, so the ratio should stay near 1 (the
target is within 15%). With `--repeat`, each side's best time is kept. Prints figures, never a
verdict; run it on an otherwise idle machine (the load average is printed with the figures).

With `--ray`, the same corpus is also ingested cold (the embedder loaded inside the run, as a
fresh `rag ingest` does) locally and on a throwaway Ray cluster on this machine of 1 node (all
CPUs) and of 2 nodes (half the CPUs each), started with `ray start` and stopped after: chunks/s
of each, and the ratio to the local cold run. On one machine the nodes share its cores, so the
Ray rows show Ray's overhead (task and actor start-up, a model load per actor, shipping
documents and vectors through the object store), never a speed-up: a speed-up needs nodes with
cores (or GPUs) of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="bank", help="A corpus name (rag corpora list).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per side; the best is kept.")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument(
        "--ray", action="store_true", help="Also time local vs Ray 1 and 2 nodes (cold runs)."
    )
    parser.add_argument(
        "--docs", type=int, default=None, help="Only the corpus's first N files (a smoke run)."
    )
    args = parser.parse_args()

    import torch

    from ingest.corpora import fetch
    from ingest.pipeline import ingest_paths
    from rag.embed import SentenceTransformerEmbedder
    from rag.settings import load_settings
    from rag.store import Index

    cache_dir = args.cache_dir or load_settings().cache_dir
    corpus = fetch(args.corpus, cache_dir)
    docs_dir = corpus.docs_dir
    if args.docs is not None:
        docs_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-docs-"))
        for path in sorted(p for p in corpus.docs_dir.iterdir() if p.is_file())[: args.docs]:
            shutil.copy(path, docs_dir / path.name)
    embedder = SentenceTransformerEmbedder(args.embedder, device=args.device)
    embedder.warm_up()
    model = embedder.model
    model.encode(["warm up the kernels"] * 64, show_progress_bar=False)
    load_before = os.getloadavg()

    cuda = bool(embedder.device and embedder.device.startswith("cuda"))
    ingest_times: list[float] = []
    encode_times: list[float] = []
    # Interleaved, so a change in the machine's load hits both sides alike.
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for run in range(args.repeat):
            index_dir = Path(tmp) / f"index-{run}"
            started = time.perf_counter()
            summary = ingest_paths([docs_dir], index_dir, embedder=embedder)
            ingest_times.append(time.perf_counter() - started)
            with Index.open(index_dir) as index:
                texts = [chunk.text for chunk in index.all_chunks()]
            started = time.perf_counter()
            model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
            if cuda:
                torch.cuda.synchronize()
            encode_times.append(time.perf_counter() - started)

    ingest_s, encode_s = min(ingest_times), min(encode_times)
    figures = {
        "corpus": args.corpus,
        "device": embedder.device,
        "torch_threads": torch.get_num_threads(),
        "documents": summary.added,
        "failed": len(summary.failed),
        "chunks": summary.chunks,
        "ingest_seconds": round(ingest_s, 2),
        "ingest_chunks_per_s": round(summary.chunks / ingest_s, 1),
        "encode_seconds": round(encode_s, 2),
        "encode_chunks_per_s": round(len(texts) / encode_s, 1),
        "ratio_ingest_to_encode": round(ingest_s / encode_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    if args.ray:
        figures["cold"] = cold_runs(docs_dir, args.embedder, args.device)
    if args.docs is not None:
        shutil.rmtree(docs_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        if key != "cold":
            print(f"{key:<24} {value}")
    for row in figures.get("cold", []):
        print(
            f"cold {row['where']:<16} {row['seconds']:>8.1f} s  {row['chunks_per_s']:>7.1f} "
            f"chunks/s  x{row['ratio_to_local']:.2f} of local"
        )


def cold_runs(docs: Path, embedder: str, device: str | None) -> list[dict[str, object]]:
    """Local and Ray (1 node, 2 nodes) ingestion from scratch, model loading included."""
    from ingest.pipeline import IngestOptions, ingest_paths
    from ingest.ray_ingest import ingest_on_ray
    from ingest.ray_local import LocalCluster

    options = IngestOptions(embedder_name=embedder, device=device)
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
