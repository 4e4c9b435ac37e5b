"""Running the server: settings -> loaded state -> app -> uvicorn.

The one place that turns `ServeSettings` into objects. The model loads in the background after
uvicorn starts (so the probes answer at once); if loading fails, the server stops and
`rag serve` exits with the reason rather than staying up unable to answer. With ``workers > 1``
each worker process builds its own state from the same settings (`serve.replicas`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import ConfigError
from rag.generate import engine_capacity
from rag.settings import answer_defaults
from serve.limits import Limits
from serve.settings import ServeSettings
from serve.state import Pipelines, ServerConfig, ServerState

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("serve")


#: The settings a worker process builds its app from (JSON, set by the parent).
SETTINGS_ENV = "RAG_SERVE_SETTINGS"
_LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"


def build_state(settings: ServeSettings, metrics_dir: Path | None = None) -> ServerState:
    """A state whose loader builds the pipelines `settings` describe (not loaded yet)."""
    from ingest.file_limits import FileLimits

    config = ServerConfig(
        index_dir=settings.index,
        model_name=settings.model,
        api_keys=settings.api_keys,
        limits=Limits(
            max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            max_messages=settings.max_messages,
            max_message_chars=settings.max_message_chars,
            max_new_tokens=settings.max_new_tokens,
            max_prompt_tokens=settings.max_prompt_tokens,
        ),
        file_limits=FileLimits.from_settings(settings),
        concurrency=settings.concurrency
        or (
            1  # a remote backend: as before
            if settings.base_url
            else engine_capacity(settings.engine, settings.model, device=settings.device or None)
        ),
        queue_size=settings.queue_size,
        metrics_dir=metrics_dir,
        answering=answer_defaults(settings.settings_file, settings.index),
    )

    def load() -> Pipelines:
        from rag.pipeline import build_pipeline
        from rag.store import Index

        device = settings.device or None
        index = Index.open(settings.index)
        index.warm_up()
        base = build_pipeline(
            index,
            settings.model,
            cache_dir=settings.cache_dir,
            device=device,
            examples_path=settings.examples,
            remote=settings.remote(),
            engine=settings.engine,
        )
        adapter = None
        if settings.adapter is not None:
            from rag.generate import load_generator

            # The adapter's own generator over the same index, embedder and demonstrations.
            generator = load_generator(
                settings.model,
                cache_dir=settings.cache_dir,
                device=device,
                adapter=settings.adapter,
                remote=settings.remote(),
                engine=settings.engine,
            )
            adapter = base.using(generator=generator)
        return Pipelines(base=base, adapter=adapter, index=index)

    return ServerState(load, config)


def run_server(settings: ServeSettings) -> None:
    """Serve until interrupted; raises ConfigError when the model cannot be loaded."""
    import uvicorn

    from rag.store import Index
    from serve.app import create_app
    from serve.protocol import HeaderTimeoutConfig

    Index.open(settings.index).close()  # fail now, with `rag ingest` in the message, if absent
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    if not settings.api_keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "no API key configured: anyone who can reach %s:%s can use this server "
            "(pass --api-key or set RAG_API_KEYS)",
            settings.host,
            settings.port,
        )
    if settings.workers > 1:
        _run_workers(settings)
        return
    state = build_state(settings)
    server = uvicorn.Server(
        HeaderTimeoutConfig(
            create_app(state),
            header_timeout=settings.header_timeout,
            host=settings.host,
            port=settings.port,
            log_level="info",
            timeout_graceful_shutdown=10,
        )
    )
    failures: list[str] = []

    def stop(reason: str) -> None:
        failures.append(reason)
        server.should_exit = True

    state.on_load_failed = stop
    log.info("loading %s over %s (readiness: GET /readyz)", settings.model, settings.index)
    server.run()
    if failures:
        raise ConfigError(f"the server stopped: the model failed to load: {failures[0]}")


def _run_workers(settings: ServeSettings) -> None:
    from serve.replicas import run_workers

    log.info("starting %d workers over %s", settings.workers, settings.index)
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    try:
        failure = run_workers(
            "serve.server:worker_app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            header_timeout=settings.header_timeout,
        )
    finally:
        os.environ.pop(SETTINGS_ENV, None)
    if failure is not None:
        raise ConfigError(f"the server stopped: the model failed to load: {failure}")


def worker_app() -> FastAPI:
    """The app of one worker of `rag serve --workers N` (uvicorn calls this in each process)."""
    from serve.app import create_app
    from serve.replicas import metrics_dir, stop_all

    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    settings = ServeSettings.model_validate_json(os.environ[SETTINGS_ENV])
    state = build_state(settings, metrics_dir=metrics_dir())
    state.on_load_failed = stop_all
    return create_app(state)
