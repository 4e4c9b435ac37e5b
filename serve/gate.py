"""Generation off the event loop: bounded concurrency, a bounded queue, cancellation.

A generation is a blocking iterator (the pipeline's ``stream``). The gate runs at most
``concurrency`` of them at once, each in a worker thread, lets at most ``queue_size`` more wait
for a slot, and refuses the next one with `QueueFull` (the server's 429) instead of queueing
without bound. Items cross back to the event loop through an asyncio queue, so the loop stays free
to serve other requests while a model decodes.

A client that goes away calls `Run.cancel()`: the worker stops pulling the iterator and closes
it, which raises ``GeneratorExit`` inside the pipeline's generator; that is the signal a
generator uses to stop decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """Every slot is busy and the queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the generation queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_END = object()


class Run(Generic[T]):
    """One generation running in a worker thread; read its items on the event loop.

    Items pile up in a deque; the worker wakes the loop only when the pile goes from empty to
    not-empty, and the reader takes the whole pile at once (`batch`). A fast generator thus
    costs a few wake-ups and socket writes per answer, not one per token.
    """

    def __init__(
        self,
        produce: Callable[[], Iterator[T]],
        loop: asyncio.AbstractEventLoop,
        on_finish: Callable[[float], None],
    ) -> None:
        self._produce = produce
        self._loop = loop
        self._on_finish = on_finish
        self._items: deque[object] = deque()
        self._lock = threading.Lock()
        self._wake_scheduled = False
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def ended(self) -> bool:
        """The reader has seen the end (or the failure) of the run."""
        return self._ended

    def cancel(self) -> None:
        """Ask the worker to stop; it closes the iterator before its next item is delivered."""
        self._cancelled.set()

    # -- the worker thread -------------------------------------------------------------------------

    def work(self) -> None:
        """The worker thread's body: pull the iterator, hand each item to the loop."""
        started = time.perf_counter()
        try:
            if self._cancelled.is_set():
                return
            iterator = self._produce()
            try:
                for item in iterator:
                    if self._cancelled.is_set():
                        break
                    self._post(item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except Exception as error:
            self._post(_Failure(error))
        finally:
            self._post(_END)
            self._call_soon(self._on_finish, time.perf_counter() - started)

    def _post(self, item: object) -> None:
        with self._lock:
            self._items.append(item)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        self._call_soon(self._wake, None)

    def _call_soon(self, function: Callable[[Any], object], argument: object) -> None:
        # RuntimeError: the loop has closed (server shutdown), nobody is listening.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(function, argument)

    # -- the event loop ---------------------------------------------------------------------------

    def _wake(self, _: object) -> None:
        with self._lock:
            self._wake_scheduled = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def batch(self) -> list[T]:
        """Every item produced since the last call (waiting for one); [] once the run ended.

        A failure in the worker is raised after the items produced before it.
        """
        while not self._ended:
            with self._lock:
                pending = list(self._items)
                self._items.clear()
            if pending:
                return self._split(pending)
            self._waiter = self._loop.create_future()
            await self._waiter
        return []

    def _split(self, pending: list[object]) -> list[T]:
        items: list[T] = []
        for position, item in enumerate(pending):
            if item is _END or isinstance(item, _Failure):
                self._ended = True
                if isinstance(item, _Failure):
                    if items:  # deliver what came first; raise on the next call
                        with self._lock:
                            self._items.extendleft(reversed(pending[position:]))
                        self._ended = False
                        return items
                    raise item.error
                return items
            items.append(item)  # type: ignore[arg-type]
        return items


class GenerationGate:
    """At most ``concurrency`` runs at once, at most ``queue_size`` waiting; then `QueueFull`.

    Create it on the event loop that will use it (the app's lifespan does).
    """

    def __init__(self, concurrency: int, queue_size: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.waiting = 0
        self.running = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="rag-generate")
        self._runs: set[Run[object]] = set()
        self._mean_seconds = 1.0

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead times the mean run time."""
        ahead = (self.waiting + 1) / self.concurrency
        return max(1, min(600, math.ceil(ahead * self._mean_seconds)))

    async def start(self, produce: Callable[[], Iterator[T]]) -> Run[T]:
        """Wait for a slot (or raise `QueueFull`) and start ``produce()`` in a worker thread."""
        if self.running + self.waiting >= self.concurrency + self.queue_size:
            raise QueueFull(self.retry_after())
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        loop = asyncio.get_running_loop()
        run: Run[T] = Run(produce, loop, lambda seconds: self._finished(run, seconds))
        self.running += 1
        self._runs.add(run)  # type: ignore[arg-type]
        try:
            self._executor.submit(run.work)
        except RuntimeError:
            self._finished(run, 0.0)
            raise
        return run

    def _finished(self, run: Run[T], seconds: float) -> None:
        self._runs.discard(run)
        self.running -= 1
        self._slots.release()
        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds

    def shutdown(self) -> None:
        """Cancel every run and stop the workers (server shutdown)."""
        for run in list(self._runs):
            run.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
