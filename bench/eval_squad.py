"""The full decision report on a SQuAD sample and on the bank FAQ, with qwen2.5-0.5b on the CPU.

For each QA set: fetch the corpus, index it (once, kept under --work), train a LoRA adapter on
questions outside the test sample (closed-book question -> answer pairs for a few steps; the
leakage check runs first), then run every variant on --limit questions with `eval.evaluate`
and print the headline table and the recommendation. The full run (200 SQuAD questions and 60
of the 99 bank FAQ questions, whose other 39 supply the demonstrations and the adapter's
training questions; 10 runs each) takes hours on 2 CPU cores; it is resumable, so a killed run
continues where it stopped. A smoke run previews it in minutes:

    PYTHONPATH=. python bench/eval_squad.py                         # full (hours)
    PYTHONPATH=. python bench/eval_squad.py --limit 10 --smoke      # smoke (minutes)

Prints figures, never pass/fail. The load average is printed before and after: on shared CPUs
torch's threads stall when another process is busy, so compare latencies only at similar load.
For orientation, an outside measurement on 40 SQuAD dev questions with qwen2.5-0.5b gave F1 3.7
closed-book, 36.0 with top-3 retrieval, 42.9 with retrieval and 2 demonstrations, 50.7 oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from eval.evaluate import K_SWEEP, SWEEP, EvalRequest, evaluate, parse_variants
from eval.finetune import FinetuneRequest, finetune
from eval.lora import TrainConfig
from eval.qa import load_qa, sample, write_qa_jsonl
from eval.split import find_leaks
from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.settings import load_settings

#: Questions evaluated per set: the bank FAQ has 99, and the rest must supply demonstrations
#: (--demos-from-qa) and the adapter's training questions.
LIMITS = {"squad": 200, "bank": 60}


def prepare_index(name: str, work: Path, cache_dir: Path) -> Path:
    from ingest.corpora import fetch
    from ingest.pipeline import IngestOptions, ingest_paths

    index = work / name / "index"
    if not (index / "CURRENT").is_file():
        started = time.perf_counter()
        summary = ingest_paths(
            [fetch(name, cache_dir).docs_dir], index, IngestOptions(progress=True)
        )
        print(f"[{name}] indexed {summary.chunks} chunks in {time.perf_counter() - started:.0f} s")
    return index


def train_adapter(
    name: str, limit: int, args: argparse.Namespace, work: Path, cache_dir: Path, index: Path
) -> Path | None:
    """A closed-book Q -> A adapter on questions outside the test sample (None: skipped)."""
    if args.finetune_steps <= 0:
        return None
    adapter = work / name / f"adapter-{limit}-{args.seed}-{args.finetune_steps}"
    if (adapter / "adapter_meta.json").is_file():
        return adapter
    pool = load_qa(name, cache_dir=cache_dir)
    test = sample(pool, limit, args.seed)
    tested = {item.id for item in test}
    rest = [item for item in pool if item.id not in tested]
    leaking = {leak.train_id for leak in find_leaks(rest, test)}
    train = sample([item for item in rest if item.id not in leaking], args.train_size, args.seed)
    if not train:
        print(f"[{name}] no questions left outside the test sample: no adapter")
        return None
    write_qa_jsonl(train, work / name / "train.jsonl")
    write_qa_jsonl(test, work / name / "test.jsonl")
    request = FinetuneRequest(
        model=args.model,
        out=adapter,
        on="qa",
        index=index,
        train=str(work / name / "train.jsonl"),
        test=str(work / name / "test.jsonl"),
        with_context=args.with_context,
        k=args.k,
        shots=args.shots,
        train_config=TrainConfig(max_steps=args.finetune_steps, batch_size=4, max_tokens=1024),
    )
    meta = finetune(request, cache_dir=cache_dir).meta
    print(
        f"[{name}] adapter: {meta['examples']} examples, {meta['steps']} steps, "
        f"loss {meta['final_loss']}, {meta['seconds']} s"
    )
    return adapter


def headline(name: str, out: Path) -> None:
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    print(f"\n== {name}: {out / 'report.html'}")
    print(
        f"{'variant':<14}{'n':>5}  {'F1 [95% CI]':<22}{'EM':>6}  {'ΔF1 vs rag-few-shot':<24}"
        f"{'prompt tok':>10}{'p50 ms':>9}  correct/retr./read./refused"
    )

    def fmt(e: dict[str, Any] | None) -> str:
        if not e or e["value"] is None:
            return "-"
        return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"

    for run in report["runs"]:
        a = run["attribution"]
        print(
            f"{run['run']:<14}{run['n']:>5}  {fmt(run['f1']):<22}{run['em']['value']:>6.3f}  "
            f"{fmt(run['diff_f1']):<24}{run['cost']['prompt_tokens'] or 0:>10.0f}"
            f"{run['cost']['latency_p50_ms'] or 0:>9.0f}  {a['correct']}/{a['retrieval miss']}/"
            f"{a['reading miss']}/{a['refused']}"
        )
    for k in report["recall_curve"]:
        print(f"recall@{k['k']} (gold document) {k['recall']:.3f} (n={k['n']})", end="; ")
    print()
    for line in report["recommendation"]:
        print(line)


def compare_models(name: str, out: Path, other: Path, label: str, other_label: str) -> None:
    """Per run, this model's F1 minus the other's on the same questions: the report's paired
    statistics (bound-padded t-interval, exact sign-flip p)."""
    from eval.results import ResultsFile
    from eval.stats import mean_interval, sign_flip_p

    if not (other / "results.jsonl").is_file():
        print(f"[{name}] no results of {other_label} in {other}: run it first to compare")
        return
    mine = {(r.run, r.qid): r.f1 for r in ResultsFile(out).rows()}
    theirs = {(r.run, r.qid): r.f1 for r in ResultsFile(other).rows()}
    print(f"\n== {name}: F1 of {label} minus {other_label}, same questions [95% CI], sign-flip p")
    for run in dict.fromkeys(run for run, _ in mine):
        diffs = [f1 - theirs[key] for key, f1 in mine.items() if key[0] == run and key in theirs]
        if diffs:
            estimate = mean_interval(diffs, bounds=(-1.0, 1.0))
            print(f"{run:<14}{estimate.format(signed=True)}  p {sign_flip_p(diffs):.3f}")


def arguments(description: str) -> argparse.ArgumentParser:
    """The options of a decision-report benchmark (this one's, and bench/qa_validate.py's)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sets", default="squad,bank", help="comma-separated: squad, bank")
    parser.add_argument("--model", default="qwen2.5-0.5b")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="questions per set (default: "
        + ", ".join(f"{name} {n}" for name, n in LIMITS.items())
        + ")",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--shots", type=int, default=DEFAULT_SHOTS)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--finetune-steps", type=int, default=60, help="0: no adapter")
    parser.add_argument("--train-size", type=int, default=400)
    parser.add_argument("--with-context", action="store_true", help="RAFT-style adapter")
    parser.add_argument("--no-sweep", action="store_true", help="no demonstrations or k sweep")
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset (default: all the report's)"
    )
    parser.add_argument(
        "--demos-from-qa", type=int, default=32, help="demonstrations from unevaluated questions"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--smoke", action="store_true", help="label the reports a smoke run")
    parser.add_argument("--work", type=Path, default=Path(".data/eval-bench"))
    parser.add_argument(
        "--engine", default="auto", help="auto, openvino, ctranslate2, llama.cpp or transformers"
    )
    parser.add_argument(
        "--against", default=None, help="a model evaluated before in --work: paired F1 diff"
    )
    return parser


def eval_request(
    args: argparse.Namespace, qa: str, index: Path, out: Path, adapter: Path | None, limit: int
) -> EvalRequest:
    """The decision report's request for the QA set ``qa``, with the benchmark's settings."""
    return EvalRequest(
        qa=qa,
        index=index,
        model=args.model,
        out=out,
        adapter=adapter,
        limit=limit,
        seed=args.seed,
        k=args.k,
        shots=args.shots,
        variants=parse_variants(args.variants),
        sweep=() if args.no_sweep else SWEEP,
        k_sweep=() if args.no_sweep else K_SWEEP,
        target=args.target,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        demos_from_qa=args.demos_from_qa,
        smoke=args.smoke,
        engine=args.engine,
    )


def report_dir(args: argparse.Namespace, name: str, limit: int) -> Path:
    """Where the decision report of QA set ``name`` goes (``args.engine`` resolved); the
    validation of generated sets (bench/qa_validate.py) reuses it as its human side."""
    smoke = "-smoke" if args.smoke else ""
    return args.work / name / f"report-{args.model}-{args.engine}-{limit}{smoke}"


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, with torch's threads set and ``engine`` resolved (``auto`` -> the engine
    that runs here, as the report folders are named)."""
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from rag.generate import choose_engine

    args.engine = choose_engine(args.engine, args.model)[0]
    return args


def main() -> None:
    settings = load_settings()
    args = parse(arguments(__doc__.split("\n")[0]))
    print(f"load average before: {os.getloadavg()}")
    started = time.perf_counter()
    for name in [n.strip() for n in args.sets.split(",") if n.strip()]:
        limit = args.limit or LIMITS.get(name, 200)
        index = prepare_index(name, args.work, settings.cache_dir)
        adapter = train_adapter(name, limit, args, args.work, settings.cache_dir, index)
        out = report_dir(args, name, limit)
        set_started = time.perf_counter()
        evaluate(eval_request(args, name, index, out, adapter, limit), cache_dir=settings.cache_dir)
        print(f"[{name}] evaluated in {time.perf_counter() - set_started:.0f} s")
        headline(name, out)
        if args.against:
            mine, theirs = f"report-{args.model}-", f"report-{args.against}-"
            other = out.parent / out.name.replace(mine, theirs)
            compare_models(name, out, other, args.model, args.against)
    print(f"\nload average after: {os.getloadavg()}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
