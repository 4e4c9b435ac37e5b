"""The engine's worker: requests wait, take a free slot, decode in groups, and free the slot.

One thread owns the device. Each loop it admits waiting requests into free slots (one padded
prefill per group that fits ``prefill_tokens``), then runs up to ``sync_every`` decode steps for
every occupied slot and reads the new tokens back once, to hand each request its share. A
request leaves its slot at EOS, at its token budget, or when its caller stops reading; the slot
is taken by the next waiting request at the following loop. The thread starts on the first
request and exits when nothing is left, so an idle engine holds no thread.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.generate.engine_runner import DecodeRunner, fit


@dataclass(eq=False)
class Request:
    """One prompt's decoding; its caller reads ``out`` (token lists, then None or an error)."""

    prompt: list[int]
    max_new_tokens: int
    eos: frozenset[int]
    temperature: float
    top_p: float
    seed: int
    out: queue.SimpleQueue[list[int] | BaseException | None] = field(
        default_factory=queue.SimpleQueue
    )
    produced: int = 0
    position: int = 0  # where the slot's next input token sits (host mirror of the device)
    cancelled: bool = False  # set by the caller's thread when it stops reading
    done: bool = False

    def emit(self, tokens: Sequence[int]) -> None:
        """Forward the tokens this request still wants; mark it done at EOS or its budget."""
        kept = []
        for token in tokens:
            if self.done:
                break
            kept.append(token)
            self.produced += 1
            self.done = token in self.eos or self.produced >= self.max_new_tokens
        if kept:
            self.out.put(kept)
        if self.done:
            self.out.put(None)


class Scheduler:
    def __init__(
        self,
        make_runner: Callable[[], DecodeRunner],
        *,
        device: Any,
        slots: int,
        sync_every: int,
        prefill_tokens: int,
    ) -> None:
        self._make_runner = make_runner
        self.device = device
        self.slots = slots
        self.sync_every = sync_every
        self.prefill_tokens = prefill_tokens
        self._lock = threading.Lock()
        self._pending: deque[Request] = deque()
        self._active: dict[int, Request] = {}  # slot -> request
        self._admitting: list[Request] = []  # out of the queue, not yet in a slot
        self._worker: threading.Thread | None = None
        self._runner: DecodeRunner | None = None

    @property
    def runner(self) -> DecodeRunner:
        """The device state, built on the worker thread at first use (and after a failure)."""
        if self._runner is None:
            self._runner = self._make_runner()
        return self._runner

    def submit(self, request: Request) -> None:
        with self._lock:
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="decode-engine", daemon=True
                )
                self._worker.start()

    def _work(self) -> None:
        import contextlib

        import torch

        # CUDA graphs capture and replay on the current device, which is per thread.
        on_device: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if self.device.type == "cuda":
            on_device = torch.cuda.device(self.device)
        try:
            with torch.inference_mode(), on_device:
                while True:
                    with self._lock:
                        if not self._pending and not self._active:
                            self._worker = None
                            return
                    self._admit()
                    self._decode_group()
        except BaseException as error:
            self._fail(error)

    def _admit(self) -> None:
        """Prefill waiting requests into free slots, in groups of at most ``prefill_tokens``."""
        free = [slot for slot in range(self.slots) if slot not in self._active]
        admitted: list[tuple[int, Request]] = []
        with self._lock:
            while free and self._pending:
                request = self._pending.popleft()
                if not request.cancelled:
                    admitted.append((free.pop(0), request))
                    self._admitting.append(request)
        while admitted:
            group = [admitted.pop(0)]
            width = len(group[0][1].prompt)
            while admitted:
                wider = max(width, len(admitted[0][1].prompt))
                if wider * (len(group) + 1) > self.prefill_tokens:
                    break
                width = wider
                group.append(admitted.pop(0))
            requests = [request for _, request in group]
            first = self.runner.prefill(
                [slot for slot, _ in group],
                [r.prompt for r in requests],
                [r.temperature for r in requests],
                [r.top_p for r in requests],
                [r.seed for r in requests],
            )
            for (slot, request), token in zip(group, first, strict=True):
                request.position = len(request.prompt)
                request.emit([token])
                if not request.done:
                    self._active[slot] = request
                self._admitting.remove(request)

    def _decode_group(self) -> None:
        """Up to ``sync_every`` steps on the device, then one read-back to stream the tokens."""
        import torch

        for slot in [slot for slot, request in self._active.items() if request.cancelled]:
            del self._active[slot]
        live = self._active
        if not live:
            return
        runner = self.runner
        steps = min(self.sync_every, max(r.max_new_tokens - r.produced for r in live.values()))
        rows = fit(max(live) + 1, runner.batch_sizes)
        sampling = any(r.temperature > 0 for r in live.values())
        outputs = []
        for step in range(steps):
            # Slots past their budget still run (the shape is fixed) but need no view.
            needed = [
                r.position + step for r in live.values() if r.produced + step < r.max_new_tokens
            ]
            runner.step(rows, fit(max(needed) + 1, runner.view_lens), sampling)
            outputs.append(runner.tokens[:rows, 0].clone())
        tokens = torch.stack(outputs, dim=1).tolist()
        for slot, request in list(live.items()):
            request.position += steps
            request.emit(tokens[slot])
            if request.done or request.cancelled:
                del self._active[slot]

    def _fail(self, error: BaseException) -> None:
        """Hand the error to every waiting caller and start afresh on the next request."""
        with self._lock:
            victims = [*self._active.values(), *self._admitting, *self._pending]
            self._active.clear()
            self._admitting.clear()
            self._pending.clear()
            self._runner = None
            self._worker = None
        for request in victims:
            request.out.put(error)
