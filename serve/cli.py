"""`rag serve`: the HTTP server (OpenAI-compatible chat, native API, chat page).

Options override `RAG_*` settings and `.env`, read once here. FastAPI and uvicorn are imported
inside the command so `rag --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rag.cli_answer import BASE_URL_HELP, CONTEXT_WINDOW_HELP, ENGINE_HELP, TOKENIZER_HELP


def register(app: typer.Typer) -> None:
    """Add `serve` to the `rag` app."""

    @app.command()
    def serve(
        index: Path | None = typer.Option(
            None, "--index", help="Index folder (default: RAG_INDEX or ./index)."
        ),
        model: str | None = typer.Option(
            None,
            "--model",
            help="Generator: a registry name or a local folder (default: RAG_MODEL).",
        ),
        host: str | None = typer.Option(None, "--host", help="Address to listen on [127.0.0.1]."),
        port: int | None = typer.Option(None, "--port", help="Port to listen on [8000]."),
        api_key: list[str] = typer.Option(
            [],
            "--api-key",
            help="Accept this bearer key (repeatable; or RAG_API_KEYS=k1,k2). "
            "Without one, no key is asked for.",
        ),
        adapter: Path | None = typer.Option(
            None, "--adapter", help="LoRA adapter folder: adds the lora and lora-rag models."
        ),
        base_url: str | None = typer.Option(None, "--base-url", help=BASE_URL_HELP),
        context_window: int | None = typer.Option(
            None, "--context-window", help=CONTEXT_WINDOW_HELP
        ),
        tokenizer: str | None = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
        examples: Path | None = typer.Option(
            None, "--examples", help="JSONL example bank for the demonstrations."
        ),
        settings_file: Path | None = typer.Option(
            None,
            "--settings",
            help="Answering defaults (k, shots, mode) from a `rag eval` settings.json "
            "(default: the index folder's, when it has one).",
        ),
        concurrency: int | None = typer.Option(
            None,
            "--concurrency",
            help="Generations at once (default: what the engine runs together: 4 for "
            "OpenVINO and llama.cpp, 2 for CTranslate2, 1 for transformers).",
        ),
        queue_size: int | None = typer.Option(
            None, "--queue-size", help="Requests that may wait for a slot before 429 [32]."
        ),
        device: str | None = typer.Option(None, "--device", help="cuda or cpu (default: auto)."),
        workers: int | None = typer.Option(
            None,
            "--workers",
            help="Worker processes [1], each with its own model, over the one index folder.",
        ),
        engine: str | None = typer.Option(
            None,
            "--engine",
            help=ENGINE_HELP,
        ),
    ) -> None:
        """Serve the chat API (OpenAI-compatible), the native API and the chat page at /."""
        from serve.server import run_server
        from serve.settings import load_serve_settings

        settings = load_serve_settings(
            index=index,
            model=model,
            host=host,
            port=port,
            api_keys=api_key,
            adapter=adapter,
            base_url=base_url,
            context_window=context_window,
            tokenizer=tokenizer,
            examples=examples,
            settings_file=settings_file,
            concurrency=concurrency,
            queue_size=queue_size,
            device=device,
            workers=workers,
            engine=engine,
        )
        run_server(settings)
