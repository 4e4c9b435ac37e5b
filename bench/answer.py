"""Per-question answering timings on this machine: retrieval, time to first token, tokens/s.

Runs the full pipeline (hybrid retrieval, few-shot prompt, streamed generation) over questions
from a QA JSONL file, by default the bank corpus's. Needs the corpus fetched and indexed:

    rag corpora fetch bank
    rag ingest ~/.cache/rag/corpora/bank/docs --index /tmp/rag-bank-index
    python bench/answer.py --index /tmp/rag-bank-index --n 10

``--bare`` also sends each question's exact prompt (the messages ``ask`` built) straight to the
generator, the engine call a user without rag would make: the difference from ``ask``, less
retrieval, is rag's own overhead (template, token budget, citations, streaming). It is not
timed on OpenVINO and llama.cpp, whose prefix caches would hand the second call the prompt the
first read (`bench/cpu_generate.py` compares them with their bare calls on distinct prompts).
``--engines`` runs the same questions on several engines, and ``--k`` with several passage counts,
one after the other, in one run (``--engines ctranslate2,transformers --k 3,5``).
``--whole-prompt`` has CTranslate2 read every prompt from its start instead of keeping the state
after the system turn: a run with it and one without measure what that reuse saves.

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

from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.generate.ct2_backend import CT2Generator
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
    parser.add_argument(
        "--k", default=str(DEFAULT_K), help="passages per prompt; comma-separated to compare"
    )
    parser.add_argument("--shots", type=int, default=DEFAULT_SHOTS)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--engines",
        "--engine",
        default=settings.engine,
        help="comma-separated: auto, openvino, ctranslate2, llama.cpp, transformers",
    )
    parser.add_argument("--bare", action="store_true", help="also time the bare engine call")
    parser.add_argument(
        "--whole-prompt",
        action="store_true",
        help="CTranslate2 reads every prompt from the start (no kept system turn)",
    )
    args = parser.parse_args()
    engines = [engine.strip() for engine in args.engines.split(",") if engine.strip()]
    ks = [int(k) for k in args.k.split(",") if k.strip()]
    summaries = [run(args, engine, k, settings.cache_dir) for engine in engines for k in ks]
    print("\n".join(["", *summaries]))


def run(args: argparse.Namespace, engine: str, k: int, cache_dir: Path) -> str:
    """Ask every question with ``engine`` and ``k`` passages; print a row per question; return
    the summary line."""
    pipeline = build_pipeline(args.index, args.model, cache_dir=cache_dir, engine=engine)
    if args.whole_prompt and isinstance(pipeline.generator, CT2Generator):
        pipeline.generator.reuse_system_turn = False
    started = time.perf_counter()
    pipeline.generator.warm_up()
    pipeline.ask("warm-up question", options=AskOptions(retrieval=False, shots=0, max_new_tokens=2))
    loaded_s = time.perf_counter() - started
    print(f"model {args.model} on {pipeline.generator.engine}: ready in {loaded_s:.1f} s")
    print(f"load average before: {os.getloadavg()}")
    options = AskOptions(k=k, shots=args.shots, max_new_tokens=args.max_new_tokens)

    columns = f"{'retr ms':>8} {'ttft ms':>8} {'tok/s':>6} {'prompt':>6} {'new':>4}"
    bare_timed = args.bare and pipeline.generator.engine not in ("openvino", "llama.cpp")
    columns += f" {'ask ms':>7} {'bare ms':>7}" if bare_timed else ""
    print(f"{columns} gold@k cited refused  question")
    retrieve, ttft, rates, prompts, found, cited, refused = [], [], [], [], 0, 0, 0
    asked, overheads = [], []
    for row in load_questions(args.qa, args.n):
        question = str(row["question"])
        gold = {str(d) for d in row.get("doc_ids") or []}
        t0 = time.perf_counter()
        answer = pipeline.ask(question, options=options)
        ask_ms = (time.perf_counter() - t0) * 1000
        asked.append(ask_ms)
        bare = ""
        if bare_timed:
            messages = pipeline.build_messages(question, options=options).messages
            t0 = time.perf_counter()
            pipeline.generator.generate(messages, options.generation())
            bare_ms = (time.perf_counter() - t0) * 1000
            overheads.append((ask_ms - answer.timings.retrieve_ms - bare_ms) / bare_ms)
            bare = f" {ask_ms:7.0f} {bare_ms:7.0f}"
        t = answer.timings
        decode_s = (t.total_ms - (t.first_token_ms or t.total_ms)) / 1000
        rate = (answer.completion_tokens - 1) / decode_s if decode_s > 0 else float("nan")
        hit = any(h.chunk.doc_id in gold for h in answer.hits)
        good_cite = any(c.chunk.doc_id in gold for c in answer.citations)
        retrieve.append(t.retrieve_ms)
        if answer.prompt_tokens:
            prompts.append(answer.prompt_tokens)
        if t.first_token_ms is not None:
            ttft.append(t.first_token_ms)
            rates.append(rate)
        found += hit
        cited += good_cite
        refused += answer.refused
        print(
            f"{t.retrieve_ms:8.1f} {t.first_token_ms or 0:8.0f} {rate:6.1f} "
            f"{answer.prompt_tokens:6d} {answer.completion_tokens:4d}{bare} {hit!s:>6} "
            f"{good_cite!s:>5} {answer.refused!s:>7}  {question[:60]}"
        )
    n = len(retrieve)
    print(f"load average after: {os.getloadavg()}")
    whole = " (whole prompt)" if args.whole_prompt else ""
    summary = (
        f"{pipeline.generator.engine}{whole}, k={k}: "
        f"median answer {statistics.median(asked):.0f} ms, "
        f"prompt {statistics.median(prompts) if prompts else 0:.0f} tokens, "
        f"retrieve {statistics.median(retrieve):.1f} ms, "
        f"first token {statistics.median(ttft) if ttft else float('nan'):.0f} ms, "
        f"decode {statistics.median(rates) if rates else float('nan'):.1f} tok/s"
    )
    if overheads:
        summary += f", overhead over the bare call {statistics.median(overheads):+.1%}"
    summary += f"; gold document retrieved {found}/{n}, cited {cited}/{n}, refused {refused}/{n}"
    print(summary)
    return summary


if __name__ == "__main__":
    main()
