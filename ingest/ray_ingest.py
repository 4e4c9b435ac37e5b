"""`rag ingest --ray`: loading, chunking and embedding on a Ray cluster; this process commits.

`ingest_on_ray` connects to a cluster and hands `ingest_paths` a `RayWorkers`, so everything
that makes an index safe stays in one place and one process: the writer lock, the embedder
guard, the plan by content hash, the single atomic commit. The cluster only does the work:

1. loading: Ray tasks read and parse batches of files. They know the stored content hashes, so
   an unchanged document comes back without its text and is never chunked or embedded;
2. chunking and embedding: one actor per GPU when the cluster has GPUs, else one per node using
   that node's CPUs, each loading the embedder once. Batches go to whichever actor is free.

A worker (or a whole node) that dies takes its batch back to the queue for the others; when none
is left the run fails and the index stays as it was. Finished batches are spooled in the index
folder (`ingest.ray_spool`), so a rerun after a killed driver embeds only what was left. The
files must be readable at the same paths on every node (shared storage), and every node needs
the same `rag-icl[ray]` installed, with the embedder's weights.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.chunker import ChunkerConfig
from ingest.loaders import SourceFile
from ingest.pipeline import (
    EmbedderFacts,
    IngestOptions,
    IngestSummary,
    LoadOutcome,
    chunk_and_embed,
    ingest_paths,
    load_outcomes,
)
from ingest.ray_spool import Spool
from rag.errors import ClusterError, ConfigError, IndexLocked, RagError
from rag.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("ingest.ray")

#: Files per loading task.
LOAD_BATCH_FILES = 16
#: Characters of document text per embedding batch (about 64 chunks of 256 tokens).
EMBED_BATCH_CHARS = 64_000
#: Batches queued on one actor, so it never waits for the driver between two.
IN_FLIGHT_PER_ACTOR = 2
#: Seconds to wait for the head's port to accept a connection.
_CONNECT_S = 10.0

Result = tuple[list[Chunk], "np.ndarray"]


def ingest_on_ray(
    paths: Sequence[Path], index_dir: Path, options: IngestOptions, *, address: str
) -> IngestSummary:
    """`ingest_paths` with the work on the Ray cluster at ``address`` (``auto``: the one this
    machine belongs to, or ``RAY_ADDRESS``)."""
    ray = _connect(address)
    spool = Spool(index_dir)
    workers = RayWorkers(ray, spool)
    try:
        summary = ingest_paths(paths, index_dir, options, workers=workers)
    finally:
        workers.close()
        ray.shutdown()
    _clear_committed(spool, Path(index_dir))
    summary.resumed = workers.resumed
    summary.embedded -= workers.resumed
    return summary


def _connect(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray: install it with `pip install 'rag-icl[ray]'` (on every node)"
        ) from None
    advice = (
        "Start one with `ray start --head` (then --ray auto), or pass the head's address as "
        "--ray HOST:PORT"
    )
    host, colon, port = address.rpartition(":")
    if colon and port.isdigit():
        # Ray itself retries an address where nothing listens for minutes.
        try:
            socket.create_connection((host, int(port)), timeout=_CONNECT_S).close()
        except OSError as error:
            raise ClusterError(f"no Ray cluster answers at {address}: {error}. {advice}") from None
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ClusterError(
            f"cannot join the Ray cluster at {address!r}: {error}. {advice}"
        ) from None
    return ray


def _clear_committed(spool: Spool, root: Path) -> None:
    """Drop the spool once its work is in the index, under the lock (a new run may be spooling
    already; then its own commit clears it)."""
    from rag.store_write import WriterLock

    try:
        lock = WriterLock(root)
    except IndexLocked:
        return
    try:
        spool.clear()
    finally:
        lock.release()


class RayWorkers:
    """`ingest.pipeline.IngestWorkers` on a Ray cluster (see the module docstring)."""

    def __init__(self, ray: Any, spool: Spool) -> None:
        self.ray = ray
        self.spool = spool
        self.actors: list[Any] = []
        self.embedder = ""
        #: Chunks taken from the spool instead of embedded.
        self.resumed = 0
        #: Actors lost during the run (their batches went to the others).
        self.lost = 0

    # -- loading ---------------------------------------------------------------------------------

    def load(
        self, files: Sequence[SourceFile], options: IngestOptions, stored: Mapping[str, str]
    ) -> list[LoadOutcome]:
        task = self.ray.remote(num_cpus=1)(_load_batch)
        hashes = self.ray.put(dict(stored))
        shipped = replace(options, stop=None)  # an Event stays in this process (not picklable)
        refs = [
            task.remote(files[start : start + LOAD_BATCH_FILES], shipped, hashes)
            for start in range(0, len(files), LOAD_BATCH_FILES)
        ]
        return [outcome for batch in self._get(refs) for outcome in batch]

    # -- the embedding actors --------------------------------------------------------------------

    def prepare(self, name: str, options: IngestOptions) -> EmbedderFacts:
        self.embedder = name
        actor = self.ray.remote(max_restarts=0, max_task_retries=0)(EmbedActor)
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        if gpus and options.device in (None, "cuda"):
            self.actors = [
                actor.options(num_cpus=1, num_gpus=1).remote(name, "cuda") for _ in range(gpus)
            ]
        else:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            self.actors = [
                actor.options(
                    num_cpus=int(node["Resources"]["CPU"]),
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(name, "cpu")
                for node in self.ray.nodes()
                if node["Alive"] and node["Resources"].get("CPU", 0) >= 1
            ]
        if not self.actors:
            raise ConfigError("the Ray cluster has no node with a CPU or GPU to embed on")
        facts = self._each_actor("facts")
        dimension, max_tokens, _ = facts[0]
        # A GPU actor runs torch, a CPU actor int8: the manifest records every encoder used.
        encoders = "+".join(sorted({encoder for _, _, encoder in facts}))
        return EmbedderFacts(dimension, max_tokens, encoders)

    def _each_actor(self, method: str) -> list[Any]:
        """Call ``method`` on every actor; dead ones are dropped (at least one must answer)."""
        answers = []
        for actor, ref in [(a, getattr(a, method).remote()) for a in self.actors]:
            try:
                answers.append(self._get(ref))
            except self.ray.exceptions.RayActorError as error:
                self._lose(actor, error)
        return answers

    def embed(
        self, documents: Sequence[Document], config: ChunkerConfig, progress: bool
    ) -> list[Result]:
        from tqdm import tqdm

        keys = [Spool.key(d, self.embedder, config) for d in documents]
        results: list[Result | None] = [self.spool.get(k) for k in keys]
        self.resumed = sum(len(r[0]) for r in results if r is not None)
        queue = deque(_batches([i for i, r in enumerate(results) if r is None], documents))
        with tqdm(
            total=len(queue), unit="batch", desc="embedding on ray", disable=not progress
        ) as bar:
            for batch, answer in self._run(queue, documents, config):
                self.spool.put([keys[i] for i in batch], answer)
                for i, result in zip(batch, answer, strict=True):
                    results[i] = result
                bar.update(1)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _run(
        self, queue: deque[list[int]], documents: Sequence[Document], config: ChunkerConfig
    ) -> Iterator[tuple[list[int], list[Result]]]:
        """Each batch's results as they finish; a lost actor's batches go back to the queue."""
        ray = self.ray
        in_flight: dict[Any, tuple[Any, list[int]]] = {}
        while queue or in_flight:
            for actor in list(self.actors):
                busy = sum(1 for a, _ in in_flight.values() if a is actor)
                for _ in range(IN_FLIGHT_PER_ACTOR - busy):
                    if queue:
                        batch = queue.popleft()
                        ref = actor.embed.remote([documents[i] for i in batch], config)
                        in_flight[ref] = (actor, batch)
            if not in_flight:
                raise ClusterError(
                    f"every Ray embedding worker died ({self.lost} lost); the index is "
                    "unchanged and the finished batches are kept: run the command again"
                )
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            actor, batch = in_flight.pop(ref)
            try:
                answer = self._get(ref)
            except ray.exceptions.RayActorError as error:
                self._lose(actor, error)
                queue.appendleft(batch)
                continue
            yield batch, answer

    def _lose(self, actor: Any, error: Exception) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
            self.lost += 1
            log.warning("a Ray embedding worker died (%s); its work goes to the others", error)

    def _get(self, refs: Any) -> Any:
        """``ray.get``, re-raising our own errors from a task as themselves (one line, the
        right exit code) rather than wrapped in Ray's."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, RagError):
                raise error.cause from None
            raise

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def _batches(indices: Sequence[int], documents: Sequence[Document]) -> Iterator[list[int]]:
    batch: list[int] = []
    size = 0
    for i in indices:
        if batch and size + len(documents[i].text) > EMBED_BATCH_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(i)
        size += len(documents[i].text)
    if batch:
        yield batch


def _load_batch(
    files: Sequence[SourceFile], options: IngestOptions, stored: Mapping[str, str]
) -> list[LoadOutcome]:
    """A Ray task: load files (through the same bounded reader as local ingestion); unchanged
    documents come back without their text."""
    outcomes = load_outcomes(files, options)
    return [
        o
        if isinstance(o, str)
        else [replace(d, text="") if stored.get(d.id) == d.content_hash else d for d in o]
        for o in outcomes
    ]


class EmbedActor:
    """A Ray actor holding one loaded embedder (on its node's CPUs or its GPU)."""

    def __init__(self, name: str, device: str) -> None:
        from rag.embed import load_embedder

        self.embedder = load_embedder(name, device=device)

    def facts(self) -> tuple[int, int, str]:
        self.embedder.warm_up()
        return self.embedder.dimension, self.embedder.max_tokens, self.embedder.encoder

    def embed(self, documents: Sequence[Document], config: ChunkerConfig) -> list[Result]:
        return chunk_and_embed(self.embedder, documents, config, progress=False)
