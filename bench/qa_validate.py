"""Do generated questions lead to the decision human questions do? SQuAD and the bank FAQ.

For each corpus: the index, the human QA sample, the LoRA adapter and the decision report on the
human sample exactly as `bench/eval_squad.py` makes them (same --work folder, so they are shared:
run the bench first and nothing is evaluated twice); then `rag qa generate` over the same index,
restricted to the documents the human sample asks about (as many questions as the sample plus
the demonstrations drawn from unevaluated ones, no unanswerable ones: the human sets have none);
generated questions that near-duplicate the adapter's training questions (the leakage check
would refuse them) or a human question (the bank's FAQ documents hold their own questions: a
copy would make the sets agree by construction) are left out; then the decision
report on both sets with the same settings, and the comparison (`eval/qa_agreement.py`):
per-variant F1 on each, Kendall tau of the variants' orderings, the fine-tune verdicts, the
recommended settings, and whether generated questions are easier or harder, paired by variant.

Every step is resumable (index, adapter, the generation's candidates file, the evaluations'
results.jsonl): rerun the same command after an interruption. Prints figures, never pass/fail.

    PYTHONPATH=. python bench/qa_validate.py                          # full (hours)
    PYTHONPATH=. python bench/qa_validate.py --limit 6 --smoke --model smollm2-135m \\
        --generator qwen2.5-0.5b --finetune-steps 2 --train-size 8 --no-sweep \\
        --demos-from-qa 4                                             # smoke (an hour)

smollm2-135m answers (as a plumbing reader) but cannot write questions: on the bank it kept 0
of 30 candidates, so the smoke writes them with qwen2.5-0.5b.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from bench.eval_squad import (
    LIMITS,
    arguments,
    eval_request,
    parse,
    prepare_index,
    report_dir,
    train_adapter,
)
from eval.evaluate import evaluate
from eval.finetune import train_questions
from eval.qa import QAItem, load_qa, read_qa_jsonl, sample, write_qa_jsonl
from eval.qa_agreement import Agreement, compare_reports
from eval.qa_generate import GenerateRequest, build_qa_pipeline, generate_qa
from eval.results import ResultsFile
from eval.split import find_leaks
from rag.settings import load_settings


def main() -> None:
    parser = arguments((__doc__ or "").split("\n")[0])
    parser.add_argument("--generator", default=None, help="model that writes the questions")
    parser.add_argument("--max-tries", type=float, default=3.0, help="generation candidates")
    args = parse(parser)
    settings = load_settings()
    print(f"load average before: {os.getloadavg()}")
    started = time.perf_counter()
    results = {}
    lines: list[str] = []
    for name in [n.strip() for n in args.sets.split(",") if n.strip()]:
        agreement, timings = validate(name, args, settings.cache_dir)
        results[name] = {**agreement.to_dict(), "seconds": timings}
        took = ", ".join(f"{step} {s:.0f}" for step, s in timings.items())
        lines += [*agreement.lines(name), f"Seconds: {took}", ""]
    out = args.work / f"qa-validate-{args.model}{'-smoke' if args.smoke else ''}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines))
    print(f"Written: {out}")
    print(f"load average after: {os.getloadavg()}; total {time.perf_counter() - started:.0f} s")


def validate(
    name: str, args: argparse.Namespace, cache_dir: Path
) -> tuple[Agreement, dict[str, float]]:
    """Index, adapter, generated set, both evaluations, and their comparison for one corpus."""
    timings: dict[str, float] = {}
    limit = args.limit or LIMITS.get(name, 200)
    clock = time.perf_counter()
    index = prepare_index(name, args.work, cache_dir)
    timings["index"] = time.perf_counter() - clock
    clock = time.perf_counter()
    adapter = train_adapter(name, limit, args, args.work, cache_dir, index)
    timings["adapter"] = time.perf_counter() - clock
    human = sample(load_qa(name, cache_dir=cache_dir), limit, args.seed)
    clock = time.perf_counter()
    docs = sorted({d for item in human for d in item.doc_ids})
    generated = generate_set(name, args, limit, index, docs, cache_dir)
    timings["generate"] = time.perf_counter() - clock
    # A generated question that copies a human one (the bank's FAQ documents hold their own
    # questions) would make the sets agree by construction; one that copies an adapter training
    # question would leak. Both are left out.
    known = [*human, *(train_questions(adapter) if adapter is not None else [])]
    generated = without_copies(generated, known)
    kept = len(read_qa_jsonl(generated))
    if kept < 2:
        raise SystemExit(
            f"[{name}] fewer than 2 generated questions passed the checks ({generated}): raise "
            "--max-tries or write them with a stronger --generator"
        )
    work = args.work / name / f"validate-{args.model}-{limit}{'-smoke' if args.smoke else ''}"
    reports = {}
    # The human side is the decision bench's own report: run bench/eval_squad.py first with the
    # same settings and it is not evaluated twice.
    # Short of questions, the generated side keeps some for its demonstrations as the human side
    # does (demonstrations from the bundled bank instead would compare two prompts, not two sets).
    evaluated = min(limit, kept - min(args.demos_from_qa, kept // 3))
    runs = {
        "human": (name, report_dir(args, name, limit), limit),
        "generated": (str(generated), work / f"{generated.stem}-{evaluated}", evaluated),
    }
    for label, (qa, out, n) in runs.items():
        clock = time.perf_counter()
        request = eval_request(args, qa, index, out, adapter, n)
        evaluate(request, cache_dir=cache_dir, progress=True)
        timings[f"evaluate {label}"] = time.perf_counter() - clock
        reports[label] = request.out
    return compare(reports), timings


def generate_set(
    name: str,
    args: argparse.Namespace,
    limit: int,
    index: Path,
    doc_ids: list[str],
    cache_dir: Path,
) -> Path:
    """The generated set over the human sample's documents (resumes from its candidates)."""
    writer = args.generator or args.model
    request = GenerateRequest(
        index=index,
        out=args.work / name / f"generated-{writer}-{limit}-{args.seed}.jsonl",
        model=writer,
        n=limit + args.demos_from_qa,
        seed=args.seed,
        unanswerable=0.0,
        max_tries=args.max_tries,
        doc_ids=tuple(doc_ids),
        k=args.k,
        batch_size=args.batch_size,
    )
    pipeline = build_qa_pipeline(request, cache_dir=cache_dir)
    summary = generate_qa(request, pipeline, log=print)
    print(f"[{name}] " + "\n".join(summary.lines()))
    return request.out


def without_copies(path: Path, known: Sequence[QAItem]) -> Path:
    """``path`` without the questions that near-duplicate one of ``known`` (the leakage check's
    Jaccard), written beside it; ``path`` itself when none does."""

    items = read_qa_jsonl(path)
    copies = {leak.test_id for leak in find_leaks(known, items)}
    print(f"{len(copies)} generated questions near-duplicate a human or adapter-training question")
    if not copies:
        return path
    kept = path.with_name(path.stem + "-no-copies.jsonl")
    write_qa_jsonl([item for item in items if item.id not in copies], kept)
    return kept


def compare(reports: dict[str, Path]) -> Agreement:

    payloads = {
        label: json.loads((out / "report.json").read_text(encoding="utf-8"))
        for label, out in reports.items()
    }
    per_question: dict[str, dict[str, list[float]]] = {}
    for label, out in reports.items():
        by_run: dict[str, list[float]] = {}
        for row in ResultsFile(out).rows():
            by_run.setdefault(row.run, []).append(row.f1)
        per_question[label] = by_run
    return compare_reports(payloads["human"], payloads["generated"], per_question)


if __name__ == "__main__":
    main()
