"""The `rag` console script: one typer app whose subcommands live beside the code they drive.

Each package contributes a ``register(app)`` whose commands parse arguments, call one typed
function and print. Heavy imports (torch, faiss, transformers) stay inside the command bodies,
so ``rag --help`` starts fast. A ``RagError`` becomes a one-line message and a non-zero exit.
"""

from __future__ import annotations

import os
import sys

import typer

from rag.errors import RagError


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="rag",
        help="Retrieval-augmented Q&A over your documents, and the evaluation that says whether "
        "few-shot prompting is enough or fine-tuning would pay.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    # The one place where rag/ reaches into the other packages: wiring their commands in.
    from eval.cli import register as register_eval
    from ingest.cli import register as register_ingest
    from rag.cli_answer import register as register_answer
    from rag.cli_models import register as register_models
    from serve.cli import register as register_serve

    register_ingest(app)
    register_answer(app)
    register_serve(app)
    register_eval(app)
    register_models(app)
    return app


def main() -> None:
    # torch's worker threads spin while waiting; on a 2-core machine shared with anything else
    # that stalls decoding 5-20x. Passive waiting costs nothing measurable when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        build_app()()
    except RagError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
