"""The generation gate: worker threads, batching, failures, cancellation, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from serve.gate import GenerationGate, QueueFull


def test_items_arrive_in_order_and_the_run_ends() -> None:
    async def main() -> list[int]:
        gate = GenerationGate(concurrency=2, queue_size=0)
        run = await gate.start(lambda: iter(range(50)))
        seen: list[int] = []
        while batch := await run.batch():
            seen.extend(batch)
        assert await run.batch() == [] and run.ended
        await asyncio.sleep(0.01)
        assert gate.running == 0
        gate.shutdown()
        return seen

    assert asyncio.run(main()) == list(range(50))


def test_a_failure_comes_after_the_items_before_it() -> None:
    def failing() -> Iterator[str]:
        yield "a"
        yield "b"
        raise ValueError("broken model")

    async def main() -> list[str]:
        gate = GenerationGate(concurrency=1, queue_size=0)
        run = await gate.start(failing)
        seen: list[str] = []
        with pytest.raises(ValueError, match="broken model"):
            while batch := await run.batch():
                seen.extend(batch)
        gate.shutdown()
        return seen

    assert asyncio.run(main()) == ["a", "b"]


def test_cancel_closes_the_iterator_between_items() -> None:
    closed = threading.Event()
    step = threading.Event()

    def endless() -> Iterator[int]:
        n = 0
        try:
            while True:
                step.wait(0.01)
                yield n
                n += 1
        except GeneratorExit:
            closed.set()
            raise

    async def main() -> None:
        gate = GenerationGate(concurrency=1, queue_size=0)
        run = await gate.start(endless)
        assert await run.batch()
        run.cancel()
        while await run.batch():
            pass
        assert closed.wait(2)
        gate.shutdown()

    asyncio.run(main())


def test_the_queue_is_bounded() -> None:
    release = threading.Event()

    def held() -> Iterator[str]:
        release.wait(5)
        yield "done"

    async def main() -> None:
        gate = GenerationGate(concurrency=1, queue_size=1)
        first = await gate.start(held)
        queued = asyncio.ensure_future(gate.start(held))
        await asyncio.sleep(0.01)
        assert gate.running == 1 and gate.waiting == 1
        with pytest.raises(QueueFull) as full:
            await gate.start(held)
        assert full.value.retry_after >= 1
        release.set()
        assert await first.batch() == ["done"]
        second = await queued
        assert await second.batch() == ["done"]
        gate.shutdown()

    asyncio.run(main())


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        GenerationGate(concurrency=0, queue_size=1)
    with pytest.raises(ValueError, match="queue_size"):
        GenerationGate(concurrency=1, queue_size=-1)
