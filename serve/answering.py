"""One answer being generated, as the routes see it: admitted, streamed, measured, cancellable.

Both the OpenAI route and `/v1/ask` go through here, so every generation waits in the same
bounded queue, is measured the same way (time to first token, tokens, retrieval), and stops when
its client leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Iterator, Sequence
from typing import TypeVar

from fastapi import Request

from rag.pipeline import AskOptions
from rag.types import Answer, Message
from rag.variants import Variant
from serve.gate import QueueFull, Run
from serve.http_errors import ApiError
from serve.metrics import Metrics
from serve.state import ServerState

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected while its answer was being prepared."""


class AnswerStream:
    """Text deltas, then the final `Answer`; ``close()`` stops the generation if unfinished."""

    def __init__(self, run: Run[str | Answer], metrics: Metrics, variant: str, started: float):
        self._run = run
        self._metrics = metrics
        self.variant = variant
        self.started = started
        self.answer: Answer | None = None
        self.first_token_s: float | None = None
        self._buffer: deque[str | Answer] = deque()

    async def next(self) -> str | Answer | None:
        """The next item, or None when the generation has ended."""
        if not self._buffer:
            self._buffer.extend(await self.batch())
            if not self._buffer:
                return None
        return self._buffer.popleft()

    async def batch(self) -> list[str | Answer]:
        """Every item ready now (at least one, waiting for it); [] when the generation ended."""
        if self._buffer:
            items = list(self._buffer)
            self._buffer.clear()
            return items
        items = await self._run.batch()
        for item in items:
            if isinstance(item, Answer):
                self.answer = item
                self._metrics.observe_answer(self.variant, item, self.first_token_s)
            elif item and self.first_token_s is None:
                self.first_token_s = time.perf_counter() - self.started
        return items

    async def collect(self) -> Answer:
        """Wait for the final `Answer` (the text deltas are in it)."""
        while await self.batch():
            pass
        if self.answer is None:
            raise RuntimeError("the pipeline's stream ended without an Answer")
        return self.answer

    def close(self) -> None:
        """Stop the generation (a no-op once it has finished)."""
        if self.answer is None and not self._run.cancelled and not self._run.ended:
            self._run.cancel()
            self._metrics.cancelled.inc()


async def start_answer(
    state: ServerState,
    metrics: Metrics,
    variant: Variant,
    question: str,
    *,
    history: Sequence[Message],
    options: AskOptions,
) -> AnswerStream:
    """Queue the generation (429 when the queue is full) and start it in a worker thread."""
    started = time.perf_counter()
    state.require_ready()
    assert state.gate is not None  # created by the app's lifespan
    history = tuple(history)

    def produce() -> Iterator[str | Answer]:
        return state.pipeline(variant).stream(question, history=history, options=options)

    try:
        run = await state.gate.start(produce)
    except QueueFull as full:
        metrics.rejected.inc()
        raise ApiError(
            429,
            f"The server is busy: all {state.gate.concurrency} generation slots and "
            f"{state.gate.queue_size} queue places are taken. Retry after {full.retry_after} s.",
            code="queue_full",
            headers={"Retry-After": str(full.retry_after)},
        ) from None
    return AnswerStream(run, metrics, variant.name, started)


async def open_answer(
    request: Request,
    state: ServerState,
    metrics: Metrics,
    variant: Variant,
    question: str,
    *,
    history: Sequence[Message],
    options: AskOptions,
) -> tuple[AnswerStream, str | Answer | None]:
    """Queue and start a generation and wait for its first item (after retrieval and prompt
    building, so errors there are still proper HTTP errors); `ClientGone` if the client leaves
    meanwhile, in the queue or while the prompt is processed.
    """

    async def begin() -> tuple[AnswerStream, str | Answer | None]:
        answer = await start_answer(
            state, metrics, variant, question, history=history, options=options
        )
        try:
            return answer, await answer.next()
        except BaseException:
            answer.close()
            raise

    return await unless_disconnected(request, begin())


async def complete_answer(
    request: Request,
    state: ServerState,
    metrics: Metrics,
    variant: Variant,
    question: str,
    *,
    history: Sequence[Message],
    options: AskOptions,
) -> Answer:
    """The whole answer at once; `ClientGone` (the generation stopped) if the client leaves."""

    async def whole() -> Answer:
        answer = await start_answer(
            state, metrics, variant, question, history=history, options=options
        )
        try:
            return await answer.collect()
        finally:
            answer.close()

    return await unless_disconnected(request, whole())


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, or raise `ClientGone` (cancelling it) if the client disconnects first.

    Only after the body has been read: the watcher consumes the connection's remaining messages.
    """
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if job in done:
        return job.result()
    job.cancel()
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
