"""The FastAPI application: routes, middleware, probes, metrics and the chat page.

`create_app(state)` is a factory so tests build an app around a pipeline of fakes and the CLI
builds one around real models; nothing here reads settings. The lifespan creates the generation
gate on the server's event loop and starts loading the model in the background: `/healthz`
answers at once, `/readyz` turns 200 when the model and index are loaded.

Middleware, outermost first: metrics (so refused requests are counted), API keys, body limit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from serve import native_routes, openai_routes
from serve.auth import ApiKeyMiddleware
from serve.gate import GenerationGate
from serve.http_errors import install_error_handlers
from serve.limits import BodyLimitMiddleware
from serve.metrics import Metrics, MetricsMiddleware
from serve.state import ServerState

STATIC = Path(__file__).parent / "static"
UPLOAD_ROUTE = "/v1/documents"


def create_app(state: ServerState) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gate = GenerationGate(state.config.concurrency, state.config.queue_size)
        state.gate = gate
        app.state.write_lock = asyncio.Lock()
        metrics.watch_queue(lambda: gate.waiting, lambda: gate.running)
        if not state.ready:
            threading.Thread(target=state.load, name="rag-load", daemon=True).start()
        try:
            yield
        finally:
            gate.shutdown()

    app = FastAPI(
        title="rag",
        summary="Retrieval-augmented answers over your documents, OpenAI-compatible.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = state
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(openai_routes.router)
    app.include_router(native_routes.router)
    _add_probes(app, state, metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyLimitMiddleware, limits=state.config.limits, upload_prefix=UPLOAD_ROUTE)
    app.add_middleware(ApiKeyMiddleware, keys=state.config.api_keys)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app


def _add_probes(app: FastAPI, state: ServerState, metrics: Metrics) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Alive: the process answers (the model may still be loading)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Ready: the model is loaded and the index can be read."""
        if state.load_error is not None:
            return _not_ready("failed", f"the model failed to load: {state.load_error}")
        if not state.ready:
            return _not_ready("loading", "the model is loading")
        body: dict[str, Any] = {
            "status": "ready",
            "model": state.config.model_name,
            "variants": [v.name for v in state.variants()],
        }
        try:
            index = state.index()
            if index is not None:
                body["index"] = {
                    "path": str(index.path),
                    "generation": index.generation,
                    "documents": index.document_count(),
                    "chunks": index.chunk_count(),
                }
        except Exception as error:
            return _not_ready("index_unreadable", f"the index cannot be read: {error}")
        return JSONResponse(body)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/", include_in_schema=False)
    def chat_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")


def _not_ready(status: str, detail: str) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail}, status_code=503)
