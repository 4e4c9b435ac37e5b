"""N stateless workers of one app over one index folder (`rag serve --workers N`).

uvicorn starts the workers (separate processes sharing the listening socket; the kernel spreads
connections over them) and restarts one that dies. Nothing is shared in memory: each worker
builds its own state from the settings the parent hands over (so API keys, body limits and the
generation queue hold per worker), reopens the index when another process publishes a
generation (``Index.is_stale``), and writes through the index's lock like any other writer.
What they do share is a run folder: the Prometheus files `/metrics` adds up, and the reason a
worker could not load its model, which stops them all (as one server would stop).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.protocol import DEFAULT_HEADER_TIMEOUT

#: Where the parent puts the folder it shares with its workers.
RUN_DIR_ENV = "RAG_SERVE_RUN_DIR"
#: prometheus_client's switch to multiprocess mode (read when a worker imports it).
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The response header naming the worker process that answered.
WORKER_HEADER = "X-Rag-Worker"
_FAILURE = "load-failure.txt"


def run_workers(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> str | None:
    """Serve ``factory`` (``module:function`` returning an ASGI app) with ``workers`` processes
    until interrupted. Returns why a worker stopped them all, or None.

    The metrics folder is new and empty for each run (values from an earlier run would be
    added in otherwise) and is removed at the end.
    """
    from uvicorn.supervisors import Multiprocess

    from serve.protocol import HeaderTimeoutConfig

    run_dir = Path(tempfile.mkdtemp(prefix="rag-serve-"))
    (run_dir / "metrics").mkdir()
    saved = {name: os.environ.get(name) for name in (RUN_DIR_ENV, METRICS_ENV)}
    os.environ[RUN_DIR_ENV] = str(run_dir)
    os.environ[METRICS_ENV] = str(run_dir / "metrics")
    try:
        # What `uvicorn.run(..., workers=N)` does, with the header-timeout protocol in each worker.
        config = HeaderTimeoutConfig(
            factory,
            factory=True,
            header_timeout=header_timeout,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        failure = run_dir / _FAILURE
        return failure.read_text(encoding="utf-8") if failure.exists() else None
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def metrics_dir() -> Path | None:
    """In a worker: the shared metrics folder (None when not run by `run_workers`)."""
    value = os.environ.get(METRICS_ENV)
    return Path(value) if value and RUN_DIR_ENV in os.environ else None


def stop_all(reason: str) -> None:
    """In a worker: record ``reason`` and ask the parent to stop every worker."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir is not None:
        (Path(run_dir) / _FAILURE).write_text(reason, encoding="utf-8")
    os.kill(os.getppid(), signal.SIGTERM)


class WorkerHeaderMiddleware:
    """Names the answering process in every response (``X-Rag-Worker: PID``): which replica
    served a request, for logs behind a load balancer and for the replica tests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (WORKER_HEADER.lower().encode(), str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, named_send)
