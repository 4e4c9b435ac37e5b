"""Running the server: settings -> loaded state -> app -> uvicorn.

The one place that turns `ServeSettings` into objects. The model loads in the background after
uvicorn starts (so the probes answer at once); if loading fails, the server stops and
`rag serve` exits with the reason rather than staying up unable to answer.
"""

from __future__ import annotations

import logging

from rag.errors import ConfigError
from rag.generate import engine_capacity
from serve.limits import Limits
from serve.settings import ServeSettings
from serve.state import Pipelines, ServerConfig, ServerState

log = logging.getLogger("serve")


def build_state(settings: ServeSettings) -> ServerState:
    """A state whose loader builds the pipelines `settings` describe (not loaded yet)."""
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
        ),
        concurrency=settings.concurrency
        or (
            1  # a remote backend: as before
            if settings.base_url
            else engine_capacity(settings.engine, settings.model, device=settings.device or None)
        ),
        queue_size=settings.queue_size,
    )

    def load() -> Pipelines:
        from rag.pipeline import Pipeline, build_pipeline

        device = settings.device or None
        base = build_pipeline(
            settings.index,
            settings.model,
            cache_dir=settings.cache_dir,
            device=device,
            examples_path=settings.examples,
            base_url=settings.base_url,
            api_key=settings.backend_api_key,
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
                base_url=settings.base_url,
                api_key=settings.backend_api_key,
                engine=settings.engine,
            )
            adapter = Pipeline(
                generator,
                index=base.index,
                embedder=base.embedder,
                examples=base.examples,
                refusal=base.refusal,
                min_score=base.min_score,
                condense=base.condense,
            )
        return Pipelines(base=base, adapter=adapter)

    return ServerState(load, config)


def run_server(settings: ServeSettings) -> None:
    """Serve until interrupted; raises ConfigError when the model cannot be loaded."""
    import uvicorn

    from rag.store import Index
    from serve.app import create_app

    Index.open(settings.index).close()  # fail now, with `rag ingest` in the message, if absent
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    if not settings.api_keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "no API key configured: anyone who can reach %s:%s can use this server "
            "(pass --api-key or set RAG_API_KEYS)",
            settings.host,
            settings.port,
        )
    state = build_state(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(state),
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
