"""Retrieval latency per search mode, at the corpus's index and at a scaled one, split by stage.

    python bench/retrieve.py [--corpus bank | --docs DIR] [--scale 100000] [--queries 99]
                             [--repeat 3] [--k 5] [--encoder torch-fp32|onnx-int8]
                             [--vector-index flat --vector-index hnsw] [--sequential] [--json]

Indexes kept under --work and reused: the corpus's own, and a scaled copy padded to --scale
chunks with synthetic ones (texts re-mixed from the corpus's sentences, so FTS5 sees a real
vocabulary; vectors near the corpus's, so FAISS sees realistic ones), one per --vector-index
kind (flat, the default, unless named; an HNSW copy takes about a minute to build). The
re-mixed texts are a worst case for keyword search: each chunk strings 8 of the corpus's
sentences, so its words are in far more chunks than in a real corpus. Each query runs
through ``Retriever.search`` as ``Pipeline.search`` calls it (k, the MiniLM relevance floor) and,
back to back, through the same steps called one by one on the primitives the retriever uses,
each timed:

    encode   the query vector (skipped in keyword mode only when there is no floor)
    dense    FAISS search for k * pool candidates (k outside hybrid)
    keyword  bm25 search for as many (the index's keyword postings; FTS5 for an index without)
    floor    the cosines of keyword-only hits, which the relevance floor needs (dot products
             with their stored vectors)
    fusion   reciprocal rank fusion, the floor, the cut to k
    fetch    the chunk rows from SQLite

In hybrid mode the retriever runs the keyword search on a second thread while it encodes and
searches the vectors (``--sequential``: one after the other, as before), so the parts overlap:
``path`` is the critical path, per query ``max(encode + dense, keyword) + floor + fusion +
fetch`` from the parts timed one by one (their sum outside hybrid or with ``--sequential``).
``other`` is the end-to-end mean less the path's mean (Hit building, Python glue, the thread
hand-off). Prints p50 and p95 in milliseconds, never a verdict; run it on an otherwise idle
machine (the load average is printed). Indexes written before the keyword postings get them
first (a commit with no change). ``--docs tests/eval/fixtures/corpus --scale 300`` is the tiny
run the tests use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag.vectors import VECTOR_INDEXES

PARTS = ("encode", "dense", "keyword", "floor", "fusion", "fetch")
#: Chunks per synthetic document in the scaled index.
PER_DOC = 10


@contextlib.contextmanager
def clock(times: dict[str, float], part: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    times[part] = times.get(part, 0.0) + (time.perf_counter() - started) * 1000


def split_search(retriever: Any, query: str, k: int, mode: str, floor: float | None) -> dict:
    """``Retriever.search``'s steps for a plain query (no filters, no MMR), each timed in ms."""
    from rag.retrieve import Fused, reciprocal_rank_fusion

    index, times = retriever.index, {part: 0.0 for part in PARTS}
    wide = k * retriever.pool if mode == "hybrid" else k
    vector = None
    if mode != "keyword" or floor is not None:
        with clock(times, "encode"):
            vector = retriever.embedder.embed([query])[0]
    dense: list[tuple[int, float]] = []
    keyword: list[tuple[int, float]] = []
    if mode != "keyword":
        with clock(times, "dense"):
            dense = index.dense_search(vector, wide)
    if mode != "dense":
        with clock(times, "keyword"):
            keyword = index.keyword_search(query, wide)
    with clock(times, "floor"):
        cosines = dict(dense)
        missing = [i for i, _ in keyword if i not in cosines]
        if vector is not None and floor is not None and missing:
            cosines.update(index.similarities(vector, missing))
    with clock(times, "fusion"):
        if mode == "hybrid":
            rankings = {"dense": [i for i, _ in dense], "keyword": [i for i, _ in keyword]}
            fused = reciprocal_rank_fusion(rankings, retriever.rrf_k)
        else:
            ranked = dense if mode == "dense" else keyword
            fused = [Fused(i, score, {mode: r}) for r, (i, score) in enumerate(ranked, 1)]
        if floor is not None:
            fused = [f for f in fused if cosines.get(f.chunk_id, float("-inf")) >= floor]
        fused = fused[:k]
    with clock(times, "fetch"):
        index.get_chunks([f.chunk_id for f in fused])
    return times


def critical_path(times: dict[str, float], mode: str, parallel: bool) -> float:
    """The parts' time on the critical path: the keyword search beside encode + dense in a
    parallel hybrid search, every part one after the other otherwise."""
    if not (parallel and mode == "hybrid"):
        return sum(times.values())
    rest = sum(ms for part, ms in times.items() if part not in ("encode", "dense", "keyword"))
    return max(times["encode"] + times["dense"], times["keyword"]) + rest


def build_index(docs: Path, index_dir: Path, embedder: Any) -> Path:
    from ingest.pipeline import ingest_paths

    if not (index_dir / "CURRENT").is_file():
        ingest_paths([docs], index_dir, embedder=embedder)
    return with_postings(index_dir)


def with_postings(index_dir: Path) -> Path:
    """An index written before the keyword postings, given them by a commit with no change."""
    from rag.store_layout import POSTINGS, read_current
    from rag.store_write import IndexWriter

    live = read_current(index_dir)
    if live is not None and not (index_dir / live / POSTINGS).is_file():
        with IndexWriter(index_dir) as writer:
            assert writer.manifest is not None
            writer.begin(replace(writer.manifest))
            writer.commit()
    return index_dir


def build_scaled(source: Path, target: Path, scale: int, kind: str, seed: int = 0) -> Path:
    """A copy of ``source`` padded with synthetic chunks up to ``scale`` chunks in all, its
    vectors in a ``kind`` index."""
    import numpy as np

    from rag.store import Index
    from rag.store_layout import VECTORS
    from rag.store_write import IndexWriter
    from rag.types import Chunk, Document
    from rag.vectors import load_vector_index

    if (target / "CURRENT").is_file():
        return with_postings(target)
    with Index.open(source) as index:
        manifest = index.manifest
        chunks = list(index.all_chunks())
        stored = load_vector_index(
            index.path / index.generation / VECTORS, manifest.vector_index, manifest.dimension
        )
    base = stored.vectors(np.asarray([c.id for c in chunks], dtype=np.int64))
    sentences = [s.strip() for c in chunks for s in c.text.replace("\n", " ").split(". ")]
    sentences = [s for s in sentences if len(s) > 20]
    rng, draw = np.random.default_rng(seed), random.Random(seed)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    extra = max(0, scale - len(chunks))
    with IndexWriter(partial) as writer:
        writer.begin(replace(manifest, vector_index=kind))
        for number in range(0, extra, PER_DOC):
            count = min(PER_DOC, extra - number)
            texts = [". ".join(draw.sample(sentences, 8)) + "." for _ in range(count)]
            doc = Document(
                id=f"synthetic-{number // PER_DOC:06d}",
                source=f"synthetic/{number // PER_DOC:06d}.md",
                title=f"Synthetic {number // PER_DOC}",
                text="\n\n".join(texts),
            )
            near = base[rng.integers(0, len(base), size=count)]
            vectors = near + rng.normal(0, 0.02, size=near.shape).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            pieces = [Chunk(id=0, doc_id=doc.id, text=text) for text in texts]
            writer.add_document(doc, pieces, vectors.astype(np.float32))
        writer.commit()
    os.replace(partial, target)
    return target


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": round(at(0.5), 2),
        "p95": round(at(0.95), 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def measure(
    retriever: Any, queries: list[str], args: argparse.Namespace, floor: float | None
) -> dict:
    from rag.retrieve import SEARCH_MODES, parse_mode

    for query in queries[:5]:  # warm caches and the encoder's arena
        for mode in SEARCH_MODES:
            retriever.search(query, k=args.k, mode=parse_mode(mode), min_score=floor)
    results = {}
    for mode in SEARCH_MODES:
        total: list[float] = []
        path: list[float] = []
        parts: dict[str, list[float]] = {part: [] for part in PARTS}
        for _ in range(args.repeat):
            for query in queries:
                started = time.perf_counter()
                retriever.search(query, k=args.k, mode=parse_mode(mode), min_score=floor)
                total.append((time.perf_counter() - started) * 1000)
                times = split_search(retriever, query, args.k, mode, floor)
                path.append(critical_path(times, mode, retriever.parallel))
                for part, ms in times.items():
                    parts[part].append(ms)
        summary = {part: percentiles(values) for part, values in parts.items()}
        end_to_end, on_path = percentiles(total), percentiles(path)
        results[mode] = {
            "search": end_to_end,
            **summary,
            "path": on_path,
            "other_mean": round(end_to_end["mean"] - on_path["mean"], 2),
        }
    return results


def load_queries(args: argparse.Namespace, cache_dir: Path, index_dir: Path) -> list[str]:
    from rag.store import Index

    if args.docs is None:
        from eval.qa import load_qa

        questions = [item.question for item in load_qa(args.corpus, cache_dir=cache_dir)]
    else:
        with Index.open(index_dir) as index:
            questions = [" ".join(c.text.split()[:8]) for c in index.all_chunks()]
    return questions[: args.queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", default="bank", help="A corpus with a QA set (its questions).")
    source.add_argument("--docs", type=Path, help="A folder of documents (chunk openings).")
    parser.add_argument("--scale", type=int, default=100_000, help="Chunks in the scaled index.")
    parser.add_argument("--queries", type=int, default=99)
    parser.add_argument("--repeat", type=int, default=3, help="Passes over the queries per mode.")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--encoder", choices=("torch-fp32", "onnx-int8"), default=None)
    parser.add_argument(
        "--vector-index",
        action="append",
        choices=tuple(VECTOR_INDEXES),
        help="The scaled index's vector index; repeat to compare (default flat).",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="Hybrid: the keyword search after the encode, not beside it (to compare).",
    )
    parser.add_argument("--work", type=Path, default=None, help="Where the indexes are kept.")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    from rag.embed import load_embedder
    from rag.models import relevance_floor
    from rag.retrieve import Retriever
    from rag.settings import load_settings
    from rag.store import Index

    cache_dir = args.cache_dir or load_settings().cache_dir
    floor = relevance_floor("minilm")
    name = args.docs.name if args.docs else args.corpus
    docs = args.docs
    if docs is None:
        from ingest.corpora import fetch

        docs = fetch(args.corpus, cache_dir).docs_dir
    embedder = load_embedder("minilm", args.device, encoder=args.encoder, cache_dir=cache_dir)
    embedder.warm_up()
    work = args.work or Path(tempfile.gettempdir()) / "rag-bench-retrieve"
    own = build_index(docs, work / f"{name}-{embedder.encoder}", embedder)
    scaled = {
        kind: build_scaled(
            own,
            work / f"{name}-{embedder.encoder}-{args.scale}{'' if kind == 'flat' else '-' + kind}",
            args.scale,
            kind,
        )
        for kind in args.vector_index or ["flat"]
    }
    queries = load_queries(args, cache_dir, own)

    load_before = os.getloadavg()
    figures: dict[str, Any] = {
        "encoder": embedder.encoder,
        "k": args.k,
        "floor": floor,
        "queries": len(queries),
        "repeat": args.repeat,
        "parallel": not args.sequential,
        "indexes": {},
    }
    folders = [("corpus", own)]
    folders += [("scaled" if kind == "flat" else f"scaled-{kind}", f) for kind, f in scaled.items()]
    for label, folder in folders:
        with Index.open(folder) as index:
            index.warm_up()
            retriever = Retriever(index, embedder, parallel=not args.sequential)
            figures["indexes"][label] = {
                "chunks": index.chunk_count(),
                "vector_index": index.manifest.vector_index,
                "modes": measure(retriever, queries, args, floor),
            }
    figures["load_average_before"] = [round(x, 2) for x in load_before]
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(figures))
        return
    print(f"encoder {figures['encoder']}, k={args.k}, floor {floor}, ", end="")
    print(f"{len(queries)} queries x {args.repeat}; ms, p50 / p95; ", end="")
    print("hybrid's keyword search " + ("after" if args.sequential else "beside") + " the encode")
    for label, result in figures["indexes"].items():
        print(f"\n## {label}: {result['chunks']} chunks, {result['vector_index']}")
        print("| mode | search | " + " | ".join(PARTS) + " | path | other (mean) |")
        print("|---" * (len(PARTS) + 4) + "|")
        for mode, row in result["modes"].items():
            columns = ("search", *PARTS, "path")
            cells = [f"{row[p]['p50']:.2f} / {row[p]['p95']:.2f}" for p in columns]
            print(f"| {mode} | " + " | ".join(cells) + f" | {row['other_mean']:.2f} |")
    print(f"\nload average before {figures['load_average_before']}, after ", end="")
    print(figures["load_average_after"])


if __name__ == "__main__":
    main()
