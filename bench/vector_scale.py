"""When to leave the flat FAISS index: flat vs flat-fp16 vs IVF vs HNSW at 100k and 1M vectors.

    python bench/vector_scale.py                       # 100k and 1M (needs ~5 GB free)
    python bench/vector_scale.py --sizes 100000 --queries 2000 --json
    python bench/vector_scale.py --tiny                # a smoke run (the test's)

The vectors are synthetic but shaped like sentence embeddings: points drawn around cluster
centres in a 64-d latent space, mapped to 384-d by a fixed random Gaussian projection, plus a
little noise, L2-normalized (MiniLM's width). Such data has a low intrinsic dimension, as real
embeddings do; uniform random 384-d vectors would not, and every approximate index looks bad on
them. Queries are perturbed copies of random data points, so each has true near neighbours and
recall@10 means something.

Each index is the product's own (`rag.vectors`: HNSW M=32, efConstruction=80, efSearch=64; IVF
with ~sqrt(n) cells, nprobe=16), built with `add()` as ingestion builds it, searched with
`search(query, k=10)` one query at a time as the server does. Printed per size and kind: build
seconds, index bytes (FAISS's serialized size, which is what it holds in memory), single-query
latency p50/p95 in ms, and recall@10 against flat's exact answers; the flat row is the baseline
of the same run, and the ratios to it are what carries over to other machines. One copy of 1M
vectors is 1.5 GB; the run holds the data, one index and the query results at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

# Run as `python bench/vector_scale.py`, this file's folder comes first on sys.path; keep it from
# shadowing the packages it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

DIMENSION = 384
LATENT = 64
#: Spread of the points around their cluster centre (the centres have unit variance).
SPREAD = 1.0
#: Norm of the perturbation that makes a query from a data point.
QUERY_NOISE = 0.8
K = 10
KINDS = ("flat", "flat-fp16", "ivf", "hnsw")


def make_vectors(n: int, seed: int, chunk: int = 100_000) -> Any:
    """``n`` unit vectors around ``n // 200`` clusters of a 64-d latent space, projected."""
    import numpy as np

    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((LATENT, DIMENSION)).astype(np.float32) / np.sqrt(LATENT)
    centres = rng.standard_normal((max(10, n // 200), LATENT)).astype(np.float32)
    out = np.empty((n, DIMENSION), dtype=np.float32)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        latent = centres[rng.integers(0, len(centres), size)]
        latent += SPREAD * rng.standard_normal((size, LATENT)).astype(np.float32)
        block = latent @ projection + 0.05 * rng.standard_normal((size, DIMENSION)).astype(
            np.float32
        )
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + size] = block
    return out


def make_queries(data: Any, count: int, seed: int) -> Any:
    """Perturbed copies of random data points (each has real neighbours), unit length."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    picked = data[rng.integers(0, len(data), count)]
    noise = rng.standard_normal(picked.shape).astype(np.float32) / np.sqrt(DIMENSION)
    queries = picked + QUERY_NOISE * noise
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def measure(kind: str, data: Any, queries: Any, truth: list[set[int]] | None) -> dict[str, Any]:
    import faiss
    import numpy as np

    from rag.vectors import new_vector_index

    index = new_vector_index(kind, DIMENSION)
    ids = np.arange(1, len(data) + 1, dtype=np.int64)
    started = time.perf_counter()
    index.add(ids, data)
    build_s = time.perf_counter() - started
    size = len(faiss.serialize_index(index.faiss_index))
    index.search(queries[0], K)  # first-call setup out of the timings
    latencies: list[float] = []
    found: list[set[int]] = []
    scores: list[list[float]] = []
    for query in queries:
        started = time.perf_counter()
        hits = index.search(query, K)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append({i for i, _ in hits})
        scores.append([s for _, s in hits])
    del index
    recall = (
        1.0
        if truth is None
        else float(np.mean([len(got & want) / K for got, want in zip(found, truth, strict=True)]))
    )
    return {
        "kind": kind,
        "vectors": len(data),
        "build_s": round(build_s, 2),
        "index_mb": round(size / 1e6, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p95_ms": round(float(np.percentile(latencies, 95)), 3),
        f"recall@{K}": round(recall, 4),
        # How near the neighbours are (mean cosine of the 1st and the k-th): real MiniLM
        # neighbours in a document corpus sit around 0.5-0.8.
        "cos_1st": round(float(np.mean([s[0] for s in scores])), 3),
        f"cos_{K}th": round(float(np.mean([s[-1] for s in scores])), 3),
        "found": found,
    }


def run(sizes: list[int], queries: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        data = make_vectors(n, seed)
        asked = make_queries(data, queries, seed)
        truth: list[set[int]] | None = None
        for kind in KINDS:
            row = measure(kind, data, asked, truth)
            if kind == "flat":
                truth = row["found"]
            del row["found"]
            rows.append(row)
            print(_line(row, rows), flush=True)
        del data
    return rows


def _line(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    flat = next(r for r in rows if r["kind"] == "flat" and r["vectors"] == row["vectors"])
    speedup = flat["p50_ms"] / row["p50_ms"] if row["p50_ms"] else float("nan")
    return (
        f"{row['vectors']:>9,} {row['kind']:<9} build {row['build_s']:>8.2f} s  "
        f"index {row['index_mb']:>8.1f} MB  p50 {row['p50_ms']:>8.3f} ms  "
        f"p95 {row['p95_ms']:>8.3f} ms  recall@{K} {row[f'recall@{K}']:.4f}  "
        f"x{speedup:.1f} vs flat p50  (cosine 1st {row['cos_1st']:.2f}, {K}th "
        f"{row[f'cos_{K}th']:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--sizes", default="100000,1000000", help="vector counts [100000,1000000]")
    parser.add_argument("--queries", type=int, default=1000, help="queries per size [1000]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="2,000 vectors, 50 queries (smoke)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "--threads", type=int, default=None, help="FAISS threads [its default: every core]"
    )
    args = parser.parse_args(argv)
    # As `rag` sets it: idle OpenMP threads sleep instead of spinning (see rag.cli).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sizes = [2000] if args.tiny else [int(s) for s in args.sizes.split(",")]
    queries = 50 if args.tiny else args.queries
    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    load_before = os.getloadavg()
    print(
        f"dimension {DIMENSION}, {queries} queries per size, k={K}, FAISS threads "
        f"{faiss.omp_get_max_threads()}, load average {load_before[0]:.2f}",
        flush=True,
    )
    rows = run(sizes, queries, args.seed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB, load average after {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps({"rows": rows, "peak_rss_mb": round(peak_mb), "queries": queries}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
