"""The native API: `/v1/ask`, `/v1/search`, and the documents behind the index.

`/v1/ask` returns what the OpenAI shape has no room for: citations with their chunk text, every
hit with its scores, timings and what the token budget dropped. Documents are uploaded into
`DIR/uploads/` and ingested through `ingest.pipeline` (the same crash-safe write path as
`rag ingest`); the server then reopens the index, so the next question already sees them.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.errors import Cancelled
from serve.answering import ClientGone, complete_answer
from serve.deps import AppMetrics, IndexDir, State, WriteLock
from serve.http_errors import ApiError
from serve.openai_routes import CLIENT_CLOSED
from serve.openapi import (
    AskAnswer,
    DeletedDocument,
    DocumentList,
    SearchResults,
    UploadSummary,
    answers,
    errors,
)
from serve.schemas import AskRequest, SearchRequest, answer_json, hit_json
from serve.uploads import LOCK_WAIT_S, ingest_uploads, remove_upload_file

if TYPE_CHECKING:
    from ingest.pipeline import IngestSummary

router = APIRouter(prefix="/v1")


@router.post("/ask", response_model=None, responses=answers(AskAnswer, 404, 429))
async def ask(
    body: AskRequest, request: Request, state: State, metrics: AppMetrics
) -> dict[str, Any] | Response:
    limits = state.config.limits
    limits.check_conversation([m.text() for m in body.history] + [body.question], "history")
    limits.check_max_tokens(body.max_tokens)
    if not body.question.strip():
        raise ApiError(400, "'question' is empty: ask something.", param="question")
    variant = state.variant(body.model)
    config, options = body.options(
        variant, max_tokens=body.max_tokens, answering=state.config.answering
    )
    history = [m.to_message() for m in body.history]
    try:
        final = await complete_answer(
            request, state, metrics, variant, body.question, history=history, options=options
        )
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    return answer_json(final, variant=config)


@router.post("/search", responses=answers(SearchResults))
async def search(body: SearchRequest, state: State, metrics: AppMetrics) -> dict[str, Any]:
    state.require_ready()
    if not body.query.strip():
        raise ApiError(400, "'query' is empty: search for something.", param="query")
    options = body.search_options(state.config.answering)
    started = time.perf_counter()
    hits = await run_in_threadpool(lambda: state.pipeline().search(body.query, options))
    seconds = time.perf_counter() - started
    metrics.retrieval.observe(seconds)
    return {"query": body.query, "hits": [hit_json(h) for h in hits], "retrieve_ms": seconds * 1000}


# -- documents -------------------------------------------------------------------------------


@router.get("/documents", responses=answers(DocumentList, 409))
async def list_documents(state: State, _: IndexDir) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        index = state.index()
        assert index is not None  # a server with an index folder has an open index
        docs = [asdict(d) for d in index.documents()]
        return {"object": "list", "data": docs, "generation": index.generation}

    return await run_in_threadpool(read)


@router.post(
    "/documents",
    status_code=201,
    response_model=None,
    responses={201: {"model": UploadSummary}, **errors(409)},
)
async def upload_documents(
    request: Request,
    state: State,
    index_dir: IndexDir,
    lock: WriteLock,
    files: list[UploadFile] = File(...),
) -> Response | dict[str, Any]:
    """Store the files in `DIR/uploads/` and ingest them, one at a time; the same name again
    replaces that upload. 201 when any file was ingested (each file's result is listed); 400 when
    none could be."""
    try:
        batch = await ingest_uploads(
            request,
            files,
            index_dir,
            write_lock=lock,
            budget=state.config.limits.max_upload_bytes,
            limits=state.config.file_limits,
            embedder=state.pipeline().embedder,
        )
    except Cancelled:
        return Response(status_code=CLIENT_CLOSED)
    finally:
        await run_in_threadpool(state.refresh_index)
    if batch.all_failed:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in batch.files)
        raise ApiError(
            400, f"No file could be ingested: {reasons}", param="files", code="unreadable_file"
        )
    return batch.to_dict()


@router.delete("/documents/{doc_id:path}", responses=answers(DeletedDocument, 404, 409))
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

        def remove() -> IngestSummary:
            summary = remove_documents(index_dir, [doc_id], lock_wait_s=LOCK_WAIT_S)
            remove_upload_file(index_dir, info.source)
            return summary

        summary = await run_in_threadpool(remove)
        await run_in_threadpool(state.refresh_index)
    totals = {k: v for k, v in summary.to_dict().items() if k != "index"}  # no server paths
    return {"object": "document.deleted", "id": doc_id, "summary": totals}
