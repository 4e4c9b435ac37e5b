"""Does the int8 encoder hold retrieval quality? fp32 (torch) vs int8 (ONNX Runtime), paired.

    python bench/embed_quality.py [--corpus bank --corpus squad] [--squad-limit 300] [--json]
    python bench/embed_quality.py --docs DIR --qa FILE.jsonl      # any corpus and QA set

For each corpus: index it twice, once per encoder (kept under --work and reused), then search
every QA question with gold documents in every search mode with the evaluation's own
measurement (``eval.search_modes.measure_modes``: gold-document rank in the top 10, the
pipeline's relevance floor on) for four pairings of index and query encoder:

    fp32/fp32 (today), int8/int8 (the CPU default), fp32/int8 and int8/fp32 (shared indexes)

and prints recall@1/5/10 of each pairing with its paired bootstrap difference from fp32/fp32
(``eval.search_modes.summarize_modes``), plus how close the vectors themselves are: the cosine
between the int8 and the fp32 vector of each chunk and each question. Prints figures, never a
verdict. Timing plays no part, so the machine's load does not matter here. The tests run it on
``--docs tests/eval/fixtures/corpus --qa tests/eval/fixtures/qa.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

ENCODERS = ("torch-fp32", "onnx-int8")
SHORT = {"torch-fp32": "fp32", "onnx-int8": "int8"}
PAIRINGS = [(index, query) for index in ENCODERS for query in ENCODERS]
BASE = ("torch-fp32", "torch-fp32")
AT = (1, 5, 10)


def label(index_encoder: str, query_encoder: str) -> str:
    return f"{SHORT[index_encoder]}/{SHORT[query_encoder]}"


def build_index(docs: Path, index_dir: Path, embedder: Any) -> Path:
    from ingest.pipeline import IngestOptions, ingest_paths

    if not (index_dir / "CURRENT").is_file():
        ingest_paths([docs], index_dir, IngestOptions(progress=True), embedder=embedder)
    return index_dir


def stored_vectors(index: Any) -> tuple[list[int], Any]:
    """The index's chunk ids and vectors, read from its FAISS file."""
    from rag.store_layout import VECTORS
    from rag.vectors import load_vector_index

    manifest = index.manifest
    vectors = load_vector_index(
        index.path / index.generation / VECTORS, manifest.vector_index, manifest.dimension
    )
    ids = sorted(int(i) for i in vectors.ids())
    return ids, vectors.vectors(ids)


def cosine_summary(a: Any, b: Any) -> dict[str, float]:
    import numpy as np

    cosines = (a * b).sum(axis=1)
    return {
        "n": len(cosines),
        "mean": round(float(cosines.mean()), 4),
        "p1": round(float(np.percentile(cosines, 1)), 4),
        "min": round(float(cosines.min()), 4),
    }


def measure(
    name: str, docs: Path, qa: str | Path, limit: int | None, work: Path, args: argparse.Namespace
) -> dict:
    from eval.qa import load_qa, sample
    from eval.search_modes import measure_modes, read_modes, summarize_modes
    from rag.embed import load_embedder
    from rag.generate import load_generator
    from rag.models import relevance_floor
    from rag.pipeline import Pipeline
    from rag.retrieve import SEARCH_MODES
    from rag.store import Index

    cache_dir = args.cache_dir
    items = [item for item in sample(load_qa(qa, cache_dir=cache_dir), limit) if item.doc_ids]
    embedders = {
        encoder: load_embedder("minilm", device="cpu", encoder=encoder, cache_dir=cache_dir)
        for encoder in ENCODERS
    }
    indexes = {
        encoder: Index.open(build_index(docs, work / name / encoder, embedder))
        for encoder, embedder in embedders.items()
    }
    floor = relevance_floor("minilm")
    # Never asked to answer: measure_modes only searches, but a Pipeline holds a generator.
    generator = load_generator(args.model, cache_dir=cache_dir)
    rows: list[dict[str, Any]] = []
    for index_encoder, query_encoder in PAIRINGS:
        pipeline = Pipeline(
            generator,
            index=indexes[index_encoder],
            embedder=embedders[query_encoder],
            min_score=floor,
        )
        out = work / name / f"modes-{SHORT[index_encoder]}-{SHORT[query_encoder]}"
        out.mkdir(parents=True, exist_ok=True)
        measure_modes(pipeline, items, out)
        pairing = label(index_encoder, query_encoder)
        rows += [{**row, "mode": f"{row['mode']} {pairing}"} for row in read_modes(out)]

    table = []
    for mode in SEARCH_MODES:
        mine = [row for row in rows if row["mode"].startswith(f"{mode} ")]
        used = f"{mode} {label(*BASE)}"
        by_k = {k: summarize_modes(mine, used=used, k=k) for k in AT}
        for position, summary in enumerate(by_k[AT[0]]):
            recall = dict(summary.recall)
            diffs = {k: by_k[k][position].diff for k in AT}
            table.append(
                {
                    "mode": mode,
                    "pairing": summary.mode.split(" ", 1)[1],
                    "recall": {k: recall[k].to_dict() for k in AT},
                    "diff": {k: d.to_dict() if d is not None else None for k, d in diffs.items()},
                }
            )

    ids, fp32 = stored_vectors(indexes["torch-fp32"])
    int8_ids, int8 = stored_vectors(indexes["onnx-int8"])
    same_chunks = ids == int8_ids and [c.text for c in indexes["torch-fp32"].get_chunks(ids)] == [
        c.text for c in indexes["onnx-int8"].get_chunks(ids)
    ]
    questions = [item.question for item in items]
    return {
        "corpus": name,
        "questions": len(items),
        "chunks": len(ids),
        "same_chunks": same_chunks,
        "chunk_cosine": cosine_summary(fp32, int8) if same_chunks else None,
        "question_cosine": cosine_summary(
            embedders["torch-fp32"].embed(questions), embedders["onnx-int8"].embed(questions)
        ),
        "min_score": floor,
        "table": table,
    }


def print_report(result: dict) -> None:
    print(
        f"\n## {result['corpus']}: {result['questions']} questions, {result['chunks']} chunks, "
        f"floor {result['min_score']}"
    )
    print(f"cosine(int8, fp32) per chunk:    {result['chunk_cosine']}")
    print(f"cosine(int8, fp32) per question: {result['question_cosine']}")
    print("\n| mode | index/query | R@1 | R@5 | R@10 | d@1 vs fp32/fp32 | d@5 | d@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in result["table"]:
        recall = " | ".join(f"{row['recall'][k]['value']:.3f}" for k in AT)
        diffs = " | ".join(
            "-"
            if (d := row["diff"][k]) is None
            else f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
            for k in AT
        )
        print(f"| {row['mode']} | {row['pairing']} | {recall} | {diffs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", action="append", help="bank, squad (default: both)")
    parser.add_argument("--docs", type=Path, help="A folder of documents (with --qa).")
    parser.add_argument(
        "--qa", type=Path, help="A QA set (.jsonl) with gold doc_ids (with --docs)."
    )
    parser.add_argument("--squad-limit", type=int, default=300, help="SQuAD questions sampled.")
    parser.add_argument("--limit", type=int, default=None, help="Questions per other corpus.")
    parser.add_argument("--work", type=Path, default=None, help="Where the indexes are kept.")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--model", default="smollm2-135m", help="Held, never run.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    from ingest.corpora import fetch
    from rag.settings import load_settings

    if (args.docs is None) != (args.qa is None):
        parser.error("--docs and --qa go together")
    args.cache_dir = args.cache_dir or load_settings().cache_dir
    work = args.work or Path(tempfile.gettempdir()) / "rag-embed-quality"
    results = []
    if args.docs is not None:
        results.append(measure(args.docs.name, args.docs, args.qa, args.limit, work, args))
    for corpus in args.corpus or ([] if args.docs else ["bank", "squad"]):
        limit = args.squad_limit if corpus == "squad" else args.limit
        docs = fetch(corpus, args.cache_dir).docs_dir
        results.append(measure(corpus, docs, corpus, limit, work, args))
    if args.json:
        print(json.dumps(results))
        return
    for result in results:
        print_report(result)


if __name__ == "__main__":
    main()
