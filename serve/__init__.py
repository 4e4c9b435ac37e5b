"""The HTTP server: an OpenAI-compatible chat API, a native API, metrics and a chat page.

`settings` (RAG_* variables) -> `server` (build the state, run uvicorn) -> `app` (routes and
middleware around a `state.ServerState`); requests go through `answering` and the bounded
`gate` to the pipeline; `auth`, `limits`, `metrics` and `http_errors` guard every route.
"""
