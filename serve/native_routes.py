"""The native API: `/v1/ask`, `/v1/search`, and the documents behind the index.

`/v1/ask` returns what the OpenAI shape has no room for: citations with their chunk text, every
hit with its scores, timings and what the token budget dropped. Documents are uploaded into
`DIR/uploads/` and ingested through `ingest.pipeline` (the same crash-safe write path as
`rag ingest`); the server then reopens the index, so the next question already sees them.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.pipeline import AskOptions
from serve.answering import ClientGone, complete_answer
from serve.http_errors import ApiError
from serve.metrics import Metrics
from serve.openai_routes import CLIENT_CLOSED
from serve.schemas import AskRequest, Filters, SearchRequest, answer_json, hit_json
from serve.state import ServerState
from serve.uploads import inside, receive_upload, safe_filename, target_path, uploads_dir

router = APIRouter(prefix="/v1")


def _state(request: Request) -> tuple[ServerState, Metrics]:
    return request.app.state.server, request.app.state.metrics


def _retrieval(body: Filters) -> dict[str, Any]:
    return {
        "k": body.k,
        "source_glob": body.source_glob,
        "doc_ids": tuple(body.doc_ids),
        "min_score": body.min_score,
        "mmr": body.mmr,
        "mode": body.mode,
    }


@router.post("/ask", response_model=None)
async def ask(body: AskRequest, request: Request) -> dict[str, Any] | Response:
    state, metrics = _state(request)
    limits = state.config.limits
    limits.check_conversation([m.text() for m in body.history] + [body.question], "history")
    limits.check_max_tokens(body.max_tokens)
    if not body.question.strip():
        raise ApiError(400, "'question' is empty: ask something.", param="question")
    variant = state.variant(body.model)
    options = AskOptions(
        shots=body.shots,
        retrieval=variant.retrieval,
        temperature=body.temperature,
        **_retrieval(body),
        max_new_tokens=body.max_tokens or AskOptions().max_new_tokens,
    )
    history = [m.to_message() for m in body.history]
    try:
        final = await complete_answer(
            request, state, metrics, variant, body.question, history=history, options=options
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    return answer_json(final, variant=variant.name)


@router.post("/search")
async def search(body: SearchRequest, request: Request) -> dict[str, Any]:
    state, metrics = _state(request)
    state.require_ready()
    if not body.query.strip():
        raise ApiError(400, "'query' is empty: search for something.", param="query")
    options = AskOptions(**_retrieval(body))
    started = time.perf_counter()
    hits = await run_in_threadpool(lambda: state.pipeline().search(body.query, options))
    seconds = time.perf_counter() - started
    metrics.retrieval.observe(seconds)
    return {"query": body.query, "hits": [hit_json(h) for h in hits], "retrieve_ms": seconds * 1000}


# -- documents -------------------------------------------------------------------------------


def _index_dir(state: ServerState) -> Path:
    state.require_ready()
    if state.config.index_dir is None:
        raise ApiError(409, "This server has no index folder: start it with --index DIR.")
    return state.config.index_dir


@router.get("/documents")
async def list_documents(request: Request) -> dict[str, Any]:
    state, _ = _state(request)
    _index_dir(state)

    def read() -> dict[str, Any]:
        index = state.pipeline().index
        assert index is not None  # a server with an index folder has an open index
        docs = [asdict(d) for d in index.documents()]
        return {"object": "list", "data": docs, "generation": index.generation}

    return await run_in_threadpool(read)


@router.post("/documents", status_code=201)
async def upload_documents(request: Request, files: list[UploadFile] = File(...)) -> dict[str, Any]:
    """Store the files in `DIR/uploads/` and ingest them; the same name again replaces one."""
    state, _ = _state(request)
    index_dir = _index_dir(state)
    names = [safe_filename(f.filename) for f in files]  # refuse a bad name before writing any
    if len(set(names)) != len(names):
        raise ApiError(400, f"Two uploads share a name after sanitizing: {names}", param="files")
    folder = uploads_dir(index_dir)
    targets = [target_path(folder, name) for name in names]
    async with _write_lock(request):
        # Every file is received in full before any is put in place: a refused upload
        # (too large, empty) leaves the uploads folder as it was.
        received: list[Path] = []
        try:
            budget = state.config.limits.max_upload_bytes
            for upload in files:
                temp, size = await receive_upload(upload, folder, budget)
                received.append(temp)
                budget -= size
        except BaseException:
            for temp in received:
                temp.unlink(missing_ok=True)
            raise
        new = [not target.exists() for target in targets]
        for temp, target in zip(received, targets, strict=True):
            os.replace(temp, target)
        embedder = state.pipeline().embedder
        from ingest.pipeline import ingest_paths

        try:
            summary = await run_in_threadpool(
                lambda: ingest_paths(targets, index_dir, embedder=embedder, prune=False)
            )
        except BaseException:
            for target, is_new in zip(targets, new, strict=True):
                if is_new:
                    target.unlink(missing_ok=True)
            raise
        failed = {Path(path).name for path, _ in summary.failed}
        for target in targets:
            if target.name in failed:  # keep uploads/ holding only what the index holds
                target.unlink(missing_ok=True)
        await run_in_threadpool(state.refresh_index)
    return {
        "object": "ingest.summary",
        "files": [t.name for t in targets if t.name not in failed],
        "summary": summary.to_dict(),
    }


@router.delete("/documents/{doc_id:path}")
async def delete_document(doc_id: str, request: Request) -> dict[str, Any]:
    state, _ = _state(request)
    index_dir = _index_dir(state)
    async with _write_lock(request):
        index = await run_in_threadpool(lambda: state.pipeline().index)
        info = index.get_document(doc_id) if index is not None else None
        if info is None:
            raise ApiError(
                404,
                f"No document {doc_id!r} in the index (list them with GET /v1/documents).",
                param="doc_id",
                code="document_not_found",
            )
        from ingest.pipeline import remove_documents

        summary = await run_in_threadpool(lambda: remove_documents(index_dir, [doc_id]))
        stored = Path(info.source)
        folder = uploads_dir(index_dir)
        if stored.is_file() and inside(folder, stored):
            stored.unlink()
        await run_in_threadpool(state.refresh_index)
    return {"object": "document.deleted", "id": doc_id, "summary": summary.to_dict()}


def _write_lock(request: Request) -> asyncio.Lock:
    """Uploads and deletions take turns here rather than racing for the index's file lock."""
    lock: asyncio.Lock = request.app.state.write_lock
    return lock
