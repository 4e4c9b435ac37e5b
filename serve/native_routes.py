"""The native API: `/v1/ask`, `/v1/search`, and the documents behind the index.

`/v1/ask` returns what the OpenAI shape has no room for: citations with their chunk text, every
hit with its scores, timings and what the token budget dropped. Documents are uploaded into
`DIR/uploads/` and ingested through `ingest.pipeline` (the same crash-safe write path as
`rag ingest`); the server then reopens the index, so the next question already sees them.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from serve.answering import ClientGone, complete_answer
from serve.deps import AppMetrics, IndexDir, State, WriteLock
from serve.http_errors import ApiError
from serve.openai_routes import CLIENT_CLOSED
from serve.schemas import AskRequest, SearchRequest, answer_json, hit_json
from serve.uploads import ingest_uploads, inside, uploads_dir

router = APIRouter(prefix="/v1")


@router.post("/ask", response_model=None)
async def ask(
    body: AskRequest, request: Request, state: State, metrics: AppMetrics
) -> dict[str, Any] | Response:
    limits = state.config.limits
    limits.check_conversation([m.text() for m in body.history] + [body.question], "history")
    limits.check_max_tokens(body.max_tokens)
    if not body.question.strip():
        raise ApiError(400, "'question' is empty: ask something.", param="question")
    variant = state.variant(body.model)
    config, options = body.options(variant, max_tokens=body.max_tokens)
    history = [m.to_message() for m in body.history]
    try:
        final = await complete_answer(
            request, state, metrics, variant, body.question, history=history, options=options
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    return answer_json(final, variant=config)


@router.post("/search")
async def search(body: SearchRequest, state: State, metrics: AppMetrics) -> dict[str, Any]:
    state.require_ready()
    if not body.query.strip():
        raise ApiError(400, "'query' is empty: search for something.", param="query")
    options = body.search_options()
    started = time.perf_counter()
    hits = await run_in_threadpool(lambda: state.pipeline().search(body.query, options))
    seconds = time.perf_counter() - started
    metrics.retrieval.observe(seconds)
    return {"query": body.query, "hits": [hit_json(h) for h in hits], "retrieve_ms": seconds * 1000}


# -- documents -------------------------------------------------------------------------------


@router.get("/documents")
async def list_documents(state: State, _: IndexDir) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        index = state.index()
        assert index is not None  # a server with an index folder has an open index
        docs = [asdict(d) for d in index.documents()]
        return {"object": "list", "data": docs, "generation": index.generation}

    return await run_in_threadpool(read)


@router.post("/documents", status_code=201)
async def upload_documents(
    state: State, index_dir: IndexDir, lock: WriteLock, files: list[UploadFile] = File(...)
) -> dict[str, Any]:
    """Store the files in `DIR/uploads/` and ingest them; the same name again replaces one."""
    async with lock:
        embedder = state.pipeline().embedder
        stored, summary = await ingest_uploads(
            files, index_dir, budget=state.config.limits.max_upload_bytes, embedder=embedder
        )
        await run_in_threadpool(state.refresh_index)
    return {"object": "ingest.summary", "files": stored, "summary": summary.to_dict()}


@router.delete("/documents/{doc_id:path}")
async def delete_document(
    doc_id: str, state: State, index_dir: IndexDir, lock: WriteLock
) -> dict[str, Any]:
    async with lock:
        index = await run_in_threadpool(state.index)
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
