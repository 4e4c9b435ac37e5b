"""Per-question answering timings on this machine: retrieval, time to first token, tokens/s.

Runs the full pipeline (hybrid retrieval, few-shot prompt, streamed generation) over questions
from a QA JSONL file, by default the bank corpus's. Needs the corpus fetched and indexed:

    rag corpora fetch bank
    rag ingest ~/.cache/rag/corpora/bank/docs --index /tmp/rag-bank-index
    python bench/answer.py --index /tmp/rag-bank-index --n 10

Prints figures, never pass/fail. The machine's load average is printed before and after: on
shared CPUs torch's threads stall when another process is busy, so compare runs only at
similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from rag.pipeline import AskOptions, build_pipeline
from rag.settings import load_settings


def load_questions(path: Path, n: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    step = max(1, len(rows) // n)  # spread over the file rather than the first few documents
    return rows[::step][:n]


def main() -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=settings.index)
    parser.add_argument("--qa", type=Path, default=settings.cache_dir / "corpora/bank/qa.jsonl")
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument("--n", type=int, default=10, help="questions to ask")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--engine", default=settings.engine, help="auto, ctranslate2, llama.cpp or transformers"
    )
    args = parser.parse_args()

    pipeline = build_pipeline(
        args.index, args.model, cache_dir=settings.cache_dir, engine=args.engine
    )
    started = time.perf_counter()
    pipeline.generator.warm_up()
    pipeline.ask("warm-up question", options=AskOptions(retrieval=False, shots=0, max_new_tokens=2))
    loaded_s = time.perf_counter() - started
    print(f"model {args.model} on {pipeline.generator.engine}: ready in {loaded_s:.1f} s")
    print(f"load average before: {os.getloadavg()}")
    options = AskOptions(k=args.k, shots=args.shots, max_new_tokens=args.max_new_tokens)

    columns = f"{'retr ms':>8} {'ttft ms':>8} {'tok/s':>6} {'prompt':>6} {'new':>4}"
    print(f"{columns} gold@k cited refused  question")
    retrieve, ttft, rates, found, cited, refused = [], [], [], 0, 0, 0
    for row in load_questions(args.qa, args.n):
        question = str(row["question"])
        gold = {str(d) for d in row.get("doc_ids") or []}
        answer = pipeline.ask(question, options=options)
        t = answer.timings
        decode_s = (t.total_ms - (t.first_token_ms or t.total_ms)) / 1000
        rate = (answer.completion_tokens - 1) / decode_s if decode_s > 0 else float("nan")
        hit = any(h.chunk.doc_id in gold for h in answer.hits)
        good_cite = any(c.chunk.doc_id in gold for c in answer.citations)
        retrieve.append(t.retrieve_ms)
        if t.first_token_ms is not None:
            ttft.append(t.first_token_ms)
            rates.append(rate)
        found += hit
        cited += good_cite
        refused += answer.refused
        print(
            f"{t.retrieve_ms:8.1f} {t.first_token_ms or 0:8.0f} {rate:6.1f} "
            f"{answer.prompt_tokens:6d} {answer.completion_tokens:4d} {hit!s:>6} {good_cite!s:>5} "
            f"{answer.refused!s:>7}  {question[:60]}"
        )
    n = len(retrieve)
    print(f"load average after: {os.getloadavg()}")
    print(
        f"median retrieve {statistics.median(retrieve):.1f} ms, "
        f"median first token {statistics.median(ttft) if ttft else float('nan'):.0f} ms, "
        f"median decode {statistics.median(rates) if rates else float('nan'):.1f} tok/s; "
        f"gold document retrieved {found}/{n}, cited {cited}/{n}, refused {refused}/{n}"
    )


if __name__ == "__main__":
    main()
