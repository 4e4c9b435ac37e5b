"""What the app holds between requests: the loaded pipelines, the open index, the variants.

The model loads once, in the background at start-up (so `/healthz` answers while it loads and
`/readyz` says when it is done). When another process (or an upload) writes the index, the index
folder's `CURRENT` changes; the next request notices (`Index.is_stale()`) and reopens it, so
answers always come from the live generation without restarting the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import RagError, UnknownModel
from rag.settings import AnswerDefaults
from rag.variants import DEFAULT_VARIANT, Variant, available
from serve.gate import GenerationGate
from serve.http_errors import ApiError
from serve.limits import Limits

if TYPE_CHECKING:
    from ingest.file_limits import FileLimits
    from rag.generate.base import Generator
    from rag.pipeline import Pipeline
    from rag.store import Index

log = logging.getLogger("serve")


@dataclass
class Pipelines:
    """The base model's pipeline, the adapter's when one is configured, and the open index they
    both search (None without an index folder)."""

    base: Pipeline
    adapter: Pipeline | None = None
    index: Index | None = None

    def over(self, index: Index) -> Pipelines:
        """The same pipelines over another generation of the index."""
        adapter = None if self.adapter is None else self.adapter.using(index=index)
        return Pipelines(self.base.using(index=index), adapter, index)


@dataclass
class ServerConfig:
    """Everything the app needs to know besides the pipelines (from `ServeSettings`)."""

    index_dir: Path | None
    model_name: str
    api_keys: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    concurrency: int = 1
    queue_size: int = 32
    #: The metrics folder shared by the workers of `rag serve --workers N` (None: one process).
    metrics_dir: Path | None = None
    #: What one uploaded file may cost to read (bytes, text, seconds); None: the defaults.
    file_limits: FileLimits | None = None
    #: k, shots and mode for requests that do not say (`--settings`, the index's settings.json).
    answering: AnswerDefaults = field(default_factory=AnswerDefaults)


class ServerState:
    """The loaded pipelines (via ``load``), the config, and the generation gate."""

    def __init__(self, load: Callable[[], Pipelines], config: ServerConfig) -> None:
        self._load = load
        self.config = config
        self.pipelines: Pipelines | None = None
        self.load_error: str | None = None
        self.loaded_at: float | None = None
        self.gate: GenerationGate | None = None
        #: Called with the error message when loading fails (the CLI stops the server).
        self.on_load_failed: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    # -- start-up ----------------------------------------------------------------------------

    def load(self) -> None:
        """Build the pipelines and load their weights; record a failure instead of raising."""
        started = time.perf_counter()
        try:
            pipelines = self._load()
            for pipeline in (pipelines.base, pipelines.adapter):
                if pipeline is not None:
                    pipeline.generator.warm_up()
                    if pipeline.embedder is not None:
                        pipeline.embedder.warm_up()
        except Exception as error:
            if isinstance(error, RagError):  # the user's to fix: the message says how
                self.load_error = str(error)
                log.error("loading the model failed: %s", error)
            else:
                self.load_error = repr(error)
                log.exception("loading the model failed")
            if self.on_load_failed is not None:
                self.on_load_failed(self.load_error)
            return
        self.pipelines = pipelines
        self.loaded_at = time.time()
        log.info("model %s loaded in %.1f s", self.config.model_name, time.perf_counter() - started)

    @property
    def ready(self) -> bool:
        return self.pipelines is not None

    # -- variants ----------------------------------------------------------------------------

    def variants(self) -> list[Variant]:
        """What clients may ask for: every variant but the oracle; the LoRA ones with an adapter."""
        has_adapter = self.pipelines is not None and self.pipelines.adapter is not None
        return available(adapter=has_adapter, oracle=False)

    def variant(self, name: str | None) -> Variant:
        """The variant a request's ``model`` field names (the default when none); 404 (OpenAI's
        code) for others."""
        wanted = name or DEFAULT_VARIANT
        for variant in self.variants():
            if variant.name == wanted:
                return variant
        known = ", ".join(v.name for v in self.variants())
        raise UnknownModel(f"Unknown model: {wanted} (this server serves: {known})")

    # -- the pipeline, with a fresh index ------------------------------------------------------

    def pipeline(self, variant: Variant | None = None) -> Pipeline:
        """The pipeline for ``variant``, reopened first if the index changed on disk.

        Blocking (it may open the index): call it from a worker thread.
        """
        self.refresh_index()
        pipelines = self.require_ready()
        if variant is not None and variant.adapter:
            assert pipelines.adapter is not None  # variant() only offers it when loaded
            return pipelines.adapter
        return pipelines.base

    def generator(self, variant: Variant) -> Generator:
        """The generator that answers for ``variant`` (503 before the model is loaded)."""
        pipelines = self.require_ready()
        if variant.adapter and pipelines.adapter is not None:
            return pipelines.adapter.generator
        return pipelines.base.generator

    def index(self) -> Index | None:
        """The open index, reopened first if it changed on disk (blocking, like ``pipeline``)."""
        self.refresh_index()
        return self.require_ready().index

    def refresh_index(self) -> bool:
        """Reopen the index if its live generation changed; True when it did."""
        index = self.require_ready().index
        if index is None or self.config.index_dir is None or not index.is_stale():
            return False
        with self._lock:
            current = self.require_ready()
            if current.index is not index:  # another thread already reopened it
                return True
            from rag.store import Index

            fresh = Index.open(self.config.index_dir)
            fresh.warm_up()
            self.pipelines = current.over(fresh)
        log.info("index reopened at generation %s", fresh.generation)
        # The old index stays open for requests still using it; it closes when they drop it.
        return True

    def require_ready(self) -> Pipelines:
        """The pipelines, or a 503 (with Retry-After while loading) before they are loaded."""
        if self.pipelines is None:
            if self.load_error is not None:
                raise ApiError(
                    503, f"The model failed to load: {self.load_error}", code="not_ready"
                )
            raise ApiError(
                503,
                "The model is still loading; retry shortly.",
                code="not_ready",
                headers={"Retry-After": "5"},
            )
        return self.pipelines
