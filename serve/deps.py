"""What the routes need from the app, as FastAPI dependencies: declare ``state: State`` and it is
there (the FastAPI template's `api/deps.py`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from serve.http_errors import ApiError
from serve.metrics import Metrics
from serve.state import ServerState


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _write_lock(request: Request) -> asyncio.Lock:
    """Uploads and deletions take turns here rather than racing for the index's file lock."""
    lock: asyncio.Lock = request.app.state.write_lock
    return lock


State = Annotated[ServerState, Depends(_state)]
AppMetrics = Annotated[Metrics, Depends(_metrics)]
WriteLock = Annotated[asyncio.Lock, Depends(_write_lock)]


def _index_dir(state: State) -> Path:
    state.require_ready()
    if state.config.index_dir is None:
        raise ApiError(409, "This server has no index folder: start it with --index DIR.")
    return state.config.index_dir


#: The index folder, for the routes that change or list its documents (409 without one).
IndexDir = Annotated[Path, Depends(_index_dir)]
