"""`rag eval`, `rag finetune` and `rag qa`: parse, read settings, call one function, print.

Heavy imports stay inside the commands so `rag --help` starts fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rag.cli_answer import BASE_URL_HELP, CONTEXT_WINDOW_HELP, ENGINE_HELP, TOKENIZER_HELP
from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.variants import VARIANTS

VARIANTS_HELP = (
    f"Comma-separated variants: {', '.join(VARIANTS)} "
    "(default: all; the lora ones only with --adapter)."
)


def register(app: typer.Typer) -> None:
    """Add `eval`, `finetune` and the `qa` group to the `rag` app."""
    from eval.qa_cli import qa_app

    app.add_typer(qa_app)

    @app.command("eval")
    def eval_command(
        qa: str = typer.Option(
            ...,
            "--qa",
            help="QA set: a .jsonl or SQuAD .json file, or squad, bank, counterfactual.",
        ),
        out: Path = typer.Option(..., "--out", help="Folder for results.jsonl and the report."),
        index: Path | None = typer.Option(
            None, "--index", help="Index folder (default: RAG_INDEX)."
        ),
        model: str | None = typer.Option(None, "--model", help="Generator (default: RAG_MODEL)."),
        adapter: Path | None = typer.Option(
            None,
            "--adapter",
            help="LoRA adapter folder from `rag finetune` (enables lora variants).",
        ),
        variants: str | None = typer.Option(None, "--variants", help=VARIANTS_HELP),
        limit: int | None = typer.Option(None, "--limit", help="Sample this many questions."),
        seed: int = typer.Option(
            0, "--seed", help="Seed of the question sample and of the tests' random draws."
        ),
        k: int = typer.Option(DEFAULT_K, "--k", help="Passages retrieved per question."),
        mode: str = typer.Option(
            "hybrid",
            "--mode",
            help="Retrieval for the runs: hybrid, dense or keyword (the report compares all "
            "three on the gold documents either way).",
        ),
        shots: int = typer.Option(
            DEFAULT_SHOTS, "--shots", help="Demonstrations for the few-shot variants."
        ),
        shots_sweep: bool = typer.Option(
            True, "--shots-sweep/--no-shots-sweep", help="Also run retrieval with 0/1/3/5 demos."
        ),
        k_sweep: bool = typer.Option(
            True, "--k-sweep/--no-k-sweep", help="Also run retrieval with k = 1/2/3/5 passages."
        ),
        reviewed_only: bool = typer.Option(
            False,
            "--reviewed-only",
            help="Only the questions a person accepted or edited (`rag qa review`); rejected ones "
            "are left out either way.",
        ),
        apply_settings: bool = typer.Option(
            False,
            "--apply-settings",
            help="Store the recommended settings (OUT/settings.json) in the index folder, where "
            "`rag ask/chat/serve` take them as defaults.",
        ),
        target: float | None = typer.Option(
            None, "--target", help="Target F1 (0..1): the report says what would reach it."
        ),
        min_gain: float = typer.Option(
            0.05,
            "--min-gain",
            help="Smallest F1 gain (0..1; 0.05 = 5 F1 points) worth fine-tuning for: a smaller "
            "one is 'not worth it' even when significant. Rerun with another value to rebuild "
            "the report from the rows.",
        ),
        batch_size: int = typer.Option(4, "--batch-size", help="Questions per generate_batch."),
        max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Answer length cap."),
        examples: Path | None = typer.Option(
            None, "--examples", help="Demonstrations JSONL (default: the bundled bank)."
        ),
        demos_from_qa: int = typer.Option(
            32,
            "--demos-from-qa",
            help="Draw demonstrations from this many unevaluated questions of the QA set "
            "(written to OUT/demos.jsonl); 0, or none left over: --examples or the bundled bank.",
        ),
        gpu_usd_per_hour: float = typer.Option(2.5, help="GPU price for the cost estimate."),
        gpu_tflops: float = typer.Option(989.0, help="GPU peak TFLOP/s (H100 bf16: 989)."),
        gpu_mfu: float = typer.Option(0.4, help="Share of the peak a training run sustains."),
        smoke: bool = typer.Option(False, "--smoke", help="Label the report a smoke run."),
        engine: str | None = typer.Option(
            None,
            "--engine",
            help=ENGINE_HELP,
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
        base_url: str | None = typer.Option(None, "--base-url", help=BASE_URL_HELP),
        context_window: int | None = typer.Option(
            None, "--context-window", help=CONTEXT_WINDOW_HELP
        ),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    ) -> None:
        """Compare closed-book, few-shot, RAG, oracle and LoRA answers; write a report."""
        from eval.costs import Hardware
        from eval.evaluate import K_SWEEP, SWEEP, EvalRequest, evaluate, parse_variants
        from rag.settings import load_settings

        settings = load_settings()
        request = EvalRequest(
            qa=qa,
            index=index or settings.index,
            model=model or settings.model,
            out=out,
            adapter=adapter,
            variants=parse_variants(variants),
            limit=limit,
            seed=seed,
            k=k,
            mode=mode,
            shots=shots,
            sweep=SWEEP if shots_sweep else (),
            k_sweep=K_SWEEP if k_sweep else (),
            target=target,
            min_gain=min_gain,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            examples=examples,
            demos_from_qa=demos_from_qa,
            smoke=smoke,
            reviewed_only=reviewed_only,
            engine=engine or settings.engine,
        )
        hardware = Hardware(
            peak_flops=gpu_tflops * 1e12, utilization=gpu_mfu, usd_per_hour=gpu_usd_per_hour
        )
        summary = evaluate(
            request,
            cache_dir=settings.cache_dir,
            device=settings.device or None,
            hardware=hardware,
            progress=not quiet,
            remote=settings.remote(base_url, context_window, tokenizer),
        )
        for line in summary.recommendation:
            typer.echo(line)
        if summary.settings is not None:
            for line in summary.settings.lines():
                typer.echo(line)
        typer.echo(f"Report: {out / 'report.html'} (also report.md, report.json, results.jsonl)")
        if apply_settings:
            from eval.tuning import apply_settings as store

            stored = store(out, request.index)
            typer.echo(f"Applied: {stored} (rag ask/chat/serve --index {request.index} use it)")

    @app.command()
    def finetune(
        out: Path = typer.Option(..., "--out", help="Folder for the adapter and its metadata."),
        on: str = typer.Option(
            ..., "--on", help="corpus (continued pre-training on the index) or qa (Q -> A pairs)."
        ),
        model: str | None = typer.Option(None, "--model", help="Base model (default: RAG_MODEL)."),
        index: Path | None = typer.Option(None, "--index", help="Index folder (corpus, context)."),
        train: str | None = typer.Option(None, "--train", help="Training QA set (for --on qa)."),
        test: str | None = typer.Option(
            None, "--test", help="Held-out QA set: training stops if any of it leaks in."
        ),
        test_fraction: float | None = typer.Option(
            None, "--test-fraction", help="Split --train, writing OUT/train.jsonl and test.jsonl."
        ),
        limit: int | None = typer.Option(None, "--limit", help="Sample this many QA pairs."),
        seed: int = typer.Option(0, "--seed"),
        with_context: bool = typer.Option(
            False, "--with-context", help="Train on retrieval prompts with distractors (RAFT)."
        ),
        k: int = typer.Option(
            DEFAULT_K, "--k", help="Passages per training prompt (--with-context)."
        ),
        shots: int = typer.Option(
            DEFAULT_SHOTS, "--shots", help="Demonstrations per prompt (--with-context)."
        ),
        steps: int | None = typer.Option(
            None, "--steps", help="Optimizer steps (overrides epochs)."
        ),
        epochs: float = typer.Option(1.0, "--epochs"),
        lr: float = typer.Option(2e-4, "--lr", help="Learning rate."),
        rank: int = typer.Option(16, "--rank", help="LoRA rank."),
        alpha: int = typer.Option(32, "--alpha", help="LoRA alpha."),
        batch_size: int = typer.Option(4, "--batch-size"),
        max_tokens: int = typer.Option(1024, "--max-tokens", help="Longest training sequence."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Train a LoRA adapter; evaluate it with `rag eval --adapter OUT`."""
        from eval.finetune import FinetuneRequest
        from eval.finetune import finetune as run_finetune
        from eval.lora import TrainConfig
        from rag.settings import load_settings

        settings = load_settings()
        request = FinetuneRequest(
            model=model or settings.model,
            out=out,
            on=on,  # type: ignore[arg-type]  # validated by FinetuneRequest
            index=index,
            train=train,
            test=test,
            test_fraction=test_fraction,
            limit=limit,
            seed=seed,
            with_context=with_context,
            k=k,
            shots=shots,
            train_config=TrainConfig(
                rank=rank,
                alpha=alpha,
                learning_rate=lr,
                epochs=epochs,
                max_steps=steps,
                batch_size=batch_size,
                max_tokens=max_tokens,
                seed=seed,
            ),
        )
        result = run_finetune(
            request,
            cache_dir=settings.cache_dir,
            device=settings.device or None,
            progress=not quiet,
        )
        meta = result.meta
        typer.echo(
            f"Adapter: {result.out} ({meta['examples']} examples, {meta['steps']} steps, "
            f"final loss {meta['final_loss']}, {meta['seconds']} s on {meta['device']})"
        )
        typer.echo(f"Evaluate it: rag eval --adapter {result.out} --model {request.model} ...")
