"""`rag qa`: generate a QA set from an index, list it, and review it before trusting it.

Each command parses, calls one function and prints; heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rag.cli_answer import BASE_URL_HELP, CONTEXT_WINDOW_HELP, ENGINE_HELP, TOKENIZER_HELP

qa_app = typer.Typer(
    name="qa",
    help="QA sets from your own documents: generate, show, review (then `rag eval --qa FILE`).",
    no_args_is_help=True,
)


@qa_app.command("generate")
def generate_command(
    out: Path = typer.Option(..., "--out", help="The QA set to write (.jsonl)."),
    index: Path | None = typer.Option(None, "--index", help="Index folder (default: RAG_INDEX)."),
    n: int = typer.Option(200, "--n", help="Questions wanted (answerable and unanswerable)."),
    model: str | None = typer.Option(
        None, "--model", help="Generator that writes the questions (default: RAG_MODEL)."
    ),
    base_url: str | None = typer.Option(None, "--base-url", help=BASE_URL_HELP),
    context_window: int | None = typer.Option(None, "--context-window", help=CONTEXT_WINDOW_HELP),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    engine: str | None = typer.Option(None, "--engine", help=ENGINE_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the passage draw."),
    unanswerable: float = typer.Option(
        0.1, "--unanswerable", help="Share of the questions about what the documents do not say."
    ),
    max_tries: float = typer.Option(
        3.0, "--max-tries", help="Candidates tried, at most, per question wanted."
    ),
    min_passage_words: int = typer.Option(
        25, "--min-passage-words", help="Shorter passages (headings, fragments) are not drawn."
    ),
    doc_ids: str | None = typer.Option(
        None, "--doc-ids", help="Only these documents (comma-separated ids)."
    ),
    k: int = typer.Option(5, "--k", help="Retrieval recorded on each row: top k."),
    mode: str = typer.Option(
        "hybrid", "--mode", help="Retrieval recorded: hybrid, dense, keyword."
    ),
    round_trip_f1: float = typer.Option(
        0.5, "--round-trip-f1", help="F1 the answer from the passage alone must reach."
    ),
    max_unanswerable_score: float = typer.Option(
        0.6,
        "--max-unanswerable-score",
        help="An unanswerable question this close (dense cosine) to a passage is dropped.",
    ),
    demos: Path | None = typer.Option(
        None, "--demos", help="Demonstrations JSONL (default: the bundled ones)."
    ),
    batch_size: int = typer.Option(4, "--batch-size", help="Passages per generate_batch."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write a QA set from the index's passages, kept only where a reviewer's checks pass.

    Prints how many candidates each check removed; every candidate and its outcome is kept in
    OUT's .candidates.jsonl, and a rerun resumes from it."""
    from eval.qa_filters import FilterSettings
    from eval.qa_generate import GenerateRequest, build_qa_pipeline, generate_qa
    from eval.qa_prompts import DEFAULT_DEMOS
    from rag.settings import load_settings

    settings = load_settings()
    request = GenerateRequest(
        index=index or settings.index,
        out=out,
        model=model or settings.model,
        n=n,
        remote=settings.remote(base_url, context_window, tokenizer),
        engine=engine or settings.engine,
        seed=seed,
        unanswerable=unanswerable,
        max_tries=max_tries,
        min_passage_words=min_passage_words,
        doc_ids=tuple(d.strip() for d in (doc_ids or "").split(",") if d.strip()),
        k=k,
        mode=mode,
        batch_size=batch_size,
        demos=demos or DEFAULT_DEMOS,
        filters=FilterSettings(
            round_trip_f1=round_trip_f1, max_unanswerable_score=max_unanswerable_score
        ),
    )
    pipeline = build_qa_pipeline(
        request, cache_dir=settings.cache_dir, device=settings.device or None
    )
    summary = generate_qa(
        request, pipeline, progress=not quiet, log=lambda line: typer.echo(line, err=True)
    )
    for line in summary.lines():
        typer.echo(line)
    typer.echo(f"Review it: rag qa show {out}; rag qa review {out} --out REVIEWED.jsonl")


@qa_app.command("show")
def show_command(
    qa: Path = typer.Argument(..., help="A QA set (.jsonl)."),
    passages: bool = typer.Option(
        True, "--passages/--no-passages", help="Show the start of each question's passage."
    ),
) -> None:
    """List a QA set: questions, answers, review state, and where each came from."""
    from eval.qa import read_qa_jsonl
    from eval.qa_review import listing

    typer.echo(listing(read_qa_jsonl(qa), passages=passages))


@qa_app.command("review")
def review_command(
    qa: Path = typer.Argument(..., help="The QA set to review (.jsonl)."),
    out: Path = typer.Option(
        ..., "--out", help="The reviewed set, written after every decision (rerun to resume)."
    ),
) -> None:
    """Accept, reject or edit each question in the terminal; then `rag eval --reviewed-only`.

    Keys: a accepts, r rejects, e edits the question and answers, s skips, q quits. OUT is
    written after every decision; rerun with the same OUT to continue."""
    from eval.qa import read_qa_jsonl
    from eval.qa_review import check_review_paths, review

    check_review_paths(qa, out)

    def ask(prompt: str, default: str) -> str:
        try:
            return str(typer.prompt(prompt, default=default, show_default=bool(default)))
        except typer.Abort:  # the end of input (or Ctrl-C) at the prompt
            raise EOFError from None

    review(read_qa_jsonl(qa), out, ask=ask, echo=typer.echo)
