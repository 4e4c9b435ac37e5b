"""`rag search`, `rag ask` and `rag chat`: retrieval alone, one answer, a conversation.

Each command reads settings, builds the pipeline (or retriever) once, calls it and prints. The
answering defaults (k, shots, mode) come from ``--settings FILE``, else the index folder's
``settings.json`` (what `rag eval --apply-settings` stored), else the built-in ones; an option
given on the command line wins.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.generate import ENGINES
from rag.variants import DEFAULT_VARIANT, VARIANTS

if TYPE_CHECKING:
    from rag.pipeline import AskOptions, Pipeline
    from rag.settings import AnswerDefaults
    from rag.types import Answer, Chunk, Hit, Message
    from rag.variants import VariantConfig

INDEX_HELP = "Index folder (default: RAG_INDEX or ./index)."
MODE_HELP = "Retrieval: hybrid (dense + keyword, fused), dense or keyword."
VARIANT_HELP = (
    f"How to answer, named as in the server and the report: "
    f"{', '.join(n for n, v in VARIANTS.items() if not v.oracle)} "
    f"(default: {DEFAULT_VARIANT}; lora-rag with --adapter)."
)
SHOTS_HELP = (
    "Demonstrations in the prompt, for the variants that show them (default: the settings "
    f"file's, else {DEFAULT_SHOTS})."
)
BASE_URL_HELP = (
    "Generate with this OpenAI-compatible server (vLLM, llama.cpp, TGI), e.g. "
    "http://gpu-box:8000/v1; --model names its model (default: RAG_BASE_URL)."
)
CONTEXT_WINDOW_HELP = (
    "The served model's context window in tokens, when the server does not report it "
    "(vLLM and llama-server do)."
)
TOKENIZER_HELP = (
    "A registry model whose tokenizer counts prompts for a server without a tokenize endpoint."
)
K_HELP = f"Passages to retrieve (default: the settings file's, else {DEFAULT_K})."
SETTINGS_HELP = (
    "Answering defaults (k, shots, mode) from this settings.json, as `rag eval` writes it "
    "(default: the index folder's settings.json, when there is one)."
)
ENGINE_HELP = (
    f"Engine: {', '.join(ENGINES[:-1])} or {ENGINES[-1]} (default: RAG_ENGINE or auto; on the "
    "CPU auto takes the first of openvino, ctranslate2 and llama.cpp that can run the model)."
)


def _source_line(marker: int, chunk: Chunk) -> str:
    from rag.prompt import chunk_label

    return f"[{marker}] {chunk_label(chunk)} — {chunk.source or chunk.doc_id}"


def _hit_line(rank: int, hit: Hit) -> str:
    scores = " ".join(f"{name}={value:.3f}" for name, value in hit.scores.items())
    ranks = " ".join(f"{name}#{value}" for name, value in hit.ranks.items())
    snippet = " ".join(hit.chunk.text.split())[:160]
    details = f"score={hit.score:.4f} {scores} {ranks}"
    return f"{_source_line(rank, hit.chunk)}\n    {details}\n    {snippet}"


def _print_sources(answer: Answer) -> None:
    for warning in answer.warnings:
        typer.echo(f"Warning: {warning}. Answer: {answer.text}")
    if answer.refused or not answer.citations:
        typer.echo("Sources: none cited." if not answer.refused else "Sources: none.")
    else:
        inferred = all(c.inferred for c in answer.citations)
        typer.echo("Sources (quoted, not cited by the model):" if inferred else "Sources:")
        for citation in answer.citations:
            typer.echo("  " + _source_line(citation.marker, citation.chunk))
    if answer.invalid_markers:
        typer.echo(f"  (markers pointing at no passage: {answer.invalid_markers})")
    if answer.dropped:
        typer.echo(f"  (left out to fit the context window: {'; '.join(answer.dropped)})")


def _configure(
    variant: str | None,
    adapter: Path | None,
    settings_file: Path | None,
    index_dir: Path,
    k: int | None,
    shots: int | None,
) -> tuple[AnswerDefaults, VariantConfig]:
    """The answering defaults (``--settings``, the index's settings.json, built-in) and the
    variant's configuration, an option given on the command line winning over them."""
    from rag.settings import answer_defaults
    from rag.variants import for_answering

    defaults = answer_defaults(settings_file, index_dir)
    config = for_answering(variant, adapter=adapter is not None).configure(
        shots=defaults.shots if shots is None else shots, k=defaults.k if k is None else k
    )
    return defaults, config


def _stream(
    pipeline: Pipeline, question: str, history: list[Message], options: AskOptions
) -> Answer:
    from rag.types import Answer

    answer: Answer | None = None
    for item in pipeline.stream(question, history=history, options=options):
        if isinstance(item, Answer):
            answer = item
        else:
            sys.stdout.write(item)
            sys.stdout.flush()
    typer.echo("")
    assert answer is not None  # the stream ends with the Answer
    return answer


def register(app: typer.Typer) -> None:
    """Add `search`, `ask` and `chat` to the `rag` app."""

    @app.command()
    def search(
        query: str = typer.Argument(..., help="What to look for."),
        index: Path | None = typer.Option(None, "--index", help=INDEX_HELP),
        k: int = typer.Option(5, "--k", help="Hits to return."),
        mode: str = typer.Option("hybrid", "--mode", help=MODE_HELP),
        source: str | None = typer.Option(
            None, "--source", help="Only sources matching this glob."
        ),
        min_score: float | None = typer.Option(
            None, "--min-score", help="Drop hits whose dense cosine is below this."
        ),
        mmr: bool = typer.Option(
            False, "--mmr", help="Diversify the hits (maximal marginal relevance)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
    ) -> None:
        """Show what retrieval returns for QUERY (no generation): for debugging retrieval."""
        from rag.retrieve import open_retriever, parse_mode
        from rag.settings import load_settings

        settings = load_settings()
        retriever = open_retriever(
            index or settings.index, device=settings.device or None, cache_dir=settings.cache_dir
        )
        hits = retriever.search(
            query, k=k, mode=parse_mode(mode), source_glob=source, min_score=min_score, mmr=mmr
        )
        if as_json:
            typer.echo(json.dumps([asdict(h) for h in hits], indent=2, ensure_ascii=False))
            return
        if not hits:
            typer.echo("No hits.")
        for rank, hit in enumerate(hits, 1):
            typer.echo(_hit_line(rank, hit))

    @app.command()
    def ask(
        question: str = typer.Argument(..., help="The question."),
        index: Path | None = typer.Option(None, "--index", help=INDEX_HELP),
        model: str | None = typer.Option(
            None, "--model", help="Generator: registry name or folder."
        ),
        variant: str | None = typer.Option(None, "--variant", help=VARIANT_HELP),
        k: int | None = typer.Option(None, "--k", help=K_HELP),
        shots: int | None = typer.Option(None, "--shots", help=SHOTS_HELP),
        mode: str | None = typer.Option(
            None, "--mode", help=MODE_HELP + " (Default: the settings file's, else hybrid.)"
        ),
        settings_file: Path | None = typer.Option(None, "--settings", help=SETTINGS_HELP),
        min_score: float | None = typer.Option(
            None, "--min-score", help="Relevance floor on the dense cosine (default: calibrated)."
        ),
        adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder."),
        examples: Path | None = typer.Option(
            None, "--examples", help="Your own example bank (JSONL)."
        ),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Answer length limit."),
        base_url: str | None = typer.Option(None, "--base-url", help=BASE_URL_HELP),
        context_window: int | None = typer.Option(
            None, "--context-window", help=CONTEXT_WINDOW_HELP
        ),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
        engine: str | None = typer.Option(None, "--engine", help=ENGINE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the whole Answer as JSON."),
    ) -> None:
        """Answer QUESTION from the indexed documents, streaming, then list the cited sources."""
        from rag.pipeline import build_pipeline
        from rag.retrieve import parse_mode
        from rag.settings import load_settings

        settings = load_settings()
        index_dir = index or settings.index
        defaults, config = _configure(variant, adapter, settings_file, index_dir, k, shots)
        options = config.options(
            mode=parse_mode(mode or defaults.mode),
            min_score=min_score,
            max_new_tokens=max_new_tokens,
        )
        pipeline = build_pipeline(
            index_dir if config.retrieval else None,
            model or settings.model,
            cache_dir=settings.cache_dir,
            device=settings.device or None,
            adapter=adapter,
            examples_path=examples,
            remote=settings.remote(base_url, context_window, tokenizer),
            engine=engine or settings.engine,
        )
        if as_json:
            answer = pipeline.ask(question, options=options)
            typer.echo(json.dumps(asdict(answer), indent=2, ensure_ascii=False))
            return
        answer = _stream(pipeline, question, [], options)
        _print_sources(answer)

    @app.command()
    def chat(
        index: Path | None = typer.Option(None, "--index", help=INDEX_HELP),
        model: str | None = typer.Option(
            None, "--model", help="Generator: registry name or folder."
        ),
        variant: str | None = typer.Option(None, "--variant", help=VARIANT_HELP),
        k: int | None = typer.Option(None, "--k", help=K_HELP),
        shots: int | None = typer.Option(None, "--shots", help=SHOTS_HELP),
        settings_file: Path | None = typer.Option(None, "--settings", help=SETTINGS_HELP),
        adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder."),
        base_url: str | None = typer.Option(None, "--base-url", help=BASE_URL_HELP),
        context_window: int | None = typer.Option(
            None, "--context-window", help=CONTEXT_WINDOW_HELP
        ),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
        engine: str | None = typer.Option(None, "--engine", help=ENGINE_HELP),
    ) -> None:
        """Chat over the indexed documents; follow-ups keep the context. /sources /reset /quit."""
        from rag.pipeline import build_pipeline
        from rag.retrieve import parse_mode
        from rag.settings import load_settings
        from rag.types import Message

        settings = load_settings()
        index_dir = index or settings.index
        defaults, config = _configure(variant, adapter, settings_file, index_dir, k, shots)
        pipeline = build_pipeline(
            index_dir if config.retrieval else None,
            model or settings.model,
            cache_dir=settings.cache_dir,
            device=settings.device or None,
            adapter=adapter,
            remote=settings.remote(base_url, context_window, tokenizer),
            engine=engine or settings.engine,
        )
        options = config.options(mode=parse_mode(defaults.mode))
        history: list[Message] = []
        last: Answer | None = None
        typer.echo("Ask a question. Commands: /sources, /reset, /quit.")
        while True:
            typer.echo("> ", nl=False)
            line = sys.stdin.readline()
            if not line:
                typer.echo("")
                break
            text = line.strip()
            if not text:
                continue
            if text == "/quit":
                break
            if text == "/reset":
                history, last = [], None
                typer.echo("(history cleared)")
            elif text == "/sources":
                if last is None:
                    typer.echo("No answer yet.")
                else:
                    _print_sources(last)
            elif text.startswith("/"):
                typer.echo(f"Unknown command {text}: use /sources, /reset or /quit.")
            else:
                last = _stream(pipeline, text, history, options)
                history += [Message("user", text), Message("assistant", last.text)]
