"""Prometheus metrics: requests, latency, time to first token, tokens, retrieval, queue depth.

Each app gets its own registry, so several apps (tests) never collide. Request counts and
latencies are recorded by an outermost ASGI middleware, so refused requests (401, 413, 429) are
counted too; routes are labelled by their template (`/v1/documents/{doc_id}`), never by the raw
path, so a client cannot grow the label set.

With several workers (`rag serve --workers N`), each process writes its values to files in a
shared folder (prometheus_client's multiprocess mode, on when ``PROMETHEUS_MULTIPROC_DIR`` is set
before the worker starts) and `/metrics`, whichever worker answers it, reads them all: counters
and histograms add up, the queue gauges are summed over the live workers.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.types import Answer

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: How often a worker writes its queue gauges to the shared folder (multiprocess mode).
_SAMPLE_EVERY_S = 0.5


class Metrics:
    """The server's metrics; ``multiprocess_dir``: the shared folder of `--workers N`."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None:
            # A worker that stops cleanly leaves no queue gauges behind in the sum.
            atexit.register(
                prometheus_multiprocess.mark_process_dead, os.getpid(), str(multiprocess_dir)
            )
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rag_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "rag_time_to_first_token_seconds",
            "Time from request to the first generated text",
            ["variant"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "rag_generated_tokens", "Completion tokens generated", ["variant"], registry=r
        )
        self.retrieval = Histogram(
            "rag_retrieval_duration_seconds",
            "Time spent retrieving passages for one question",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "rag_queue_depth",
            "Requests waiting for a generation slot",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.running = Gauge(
            "rag_generations_running",
            "Generations in progress",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "rag_queue_rejected", "Requests refused with 429 because the queue was full", registry=r
        )
        self.cancelled = Counter(
            "rag_generations_cancelled", "Generations stopped because the client left", registry=r
        )

    def watch_queue(self, waiting: Callable[[], float], running: Callable[[], float]) -> None:
        if self.multiprocess_dir is None:
            self.queue_depth.set_function(waiting)
            self.running.set_function(running)
            return

        # Another worker renders /metrics from the files, so the values are written there.
        def sample() -> None:
            while True:
                self.queue_depth.set(waiting())
                self.running.set(running())
                time.sleep(_SAMPLE_EVERY_S)

        threading.Thread(target=sample, name="rag-metrics", daemon=True).start()

    def observe_answer(self, variant: str, answer: Answer, first_token_s: float | None) -> None:
        self.tokens.labels(variant).inc(answer.completion_tokens)
        if first_token_s is not None:
            self.first_token.labels(variant).observe(first_token_s)
        if answer.timings.retrieve_ms:
            self.retrieval.observe(answer.timings.retrieve_ms / 1000)

    def render(self) -> tuple[bytes, str]:
        """The exposition text: this process's metrics, or every worker's added up."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        every_worker = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(every_worker, str(self.multiprocess_dir))
        return generate_latest(every_worker), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP request by route template, method and status, and times it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = self._route(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:  # refused before routing (401, 413): find the route it was meant for
            for candidate in self.routes:
                match, _ = candidate.matches(scope)
                if match != Match.NONE:
                    route = candidate
                    break
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else "unmatched"
