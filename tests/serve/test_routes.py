"""The routes over a real index with a fake embedder and a scripted generator."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from rag.store_write import IndexWriter
from rag.types import Chunk, Document
from serve.state import ServerState
from tests.fakes import FakeEmbedder, ScriptedGenerator
from tests.serve.conftest import cite_first, make_state, serving

QUESTION = {"role": "user", "content": "How many days of paid annual leave do staff get?"}


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n\n") if line.startswith("data: ")]


def test_probes_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["index"]["documents"] == 3 and ready["index"]["chunks"] == 3
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["closed-book", "few-shot", "rag", "rag-few-shot"]


def test_chat_completion_answers_with_sources(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"messages": [QUESTION]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "rag-few-shot"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("According to Leave")
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    [source] = body["sources"]
    assert source["marker"] == 1 and source["doc_id"] == "leave.md"
    assert "25 days" in source["text"] and source["title"] == "Leave"


def test_streaming_follows_openai_chunk_format(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [QUESTION], "stream": True, "stream_options": {"include_usage": True}},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("According to Leave") and text.endswith("passage [1].")
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["sources"][0]["doc_id"] == "leave.md"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0


def test_closed_book_variant_retrieves_nothing(index_dir: Path) -> None:
    generator = ScriptedGenerator(script=cite_first)
    with serving(make_state(index_dir, generator)) as client:
        body = client.post(
            "/v1/chat/completions", json={"model": "closed-book", "messages": [QUESTION]}
        ).json()
    assert body["model"] == "closed-book"
    assert body["choices"][0]["message"]["content"] == "I don't know."
    assert body["sources"] == []
    assert "[1]" not in generator.prompts[0][-1].content


def test_max_tokens_temperature_and_stop_reach_the_generator(client: TestClient) -> None:
    body = client.post(
        "/v1/chat/completions",
        json={"messages": [QUESTION], "max_tokens": 3, "stop": ["[1]"], "temperature": 0.5},
    ).json()
    assert body["choices"][0]["message"]["content"] == "According to Leave,"
    assert body["choices"][0]["finish_reason"] == "length"


def test_history_and_a_system_message_are_accepted(client: TestClient) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Tell me about leave."}]},
        {"role": "assistant", "content": "Staff get leave [1]."},
        QUESTION,
    ]
    response = client.post("/v1/chat/completions", json={"messages": messages})
    assert response.status_code == 200, response.text


def test_ask_returns_citations_with_chunk_text_and_timings(client: TestClient) -> None:
    body = client.post("/v1/ask", json={"question": QUESTION["content"], "k": 2}).json()
    assert body["answer"].startswith("According to Leave")
    assert body["citations"][0]["text"].startswith("Full-time staff get 25 days")
    assert len(body["hits"]) == 2 and body["hits"][0]["doc_id"] == "leave.md"
    assert body["timings"]["total_ms"] > 0 and body["refused"] is False


def test_ask_filters_by_document(client: TestClient) -> None:
    body = client.post(
        "/v1/ask", json={"question": QUESTION["content"], "doc_ids": ["pricing.md"]}
    ).json()
    assert [h["doc_id"] for h in body["hits"]] == ["pricing.md"]


def test_search_returns_ranked_hits(client: TestClient) -> None:
    body = client.post("/v1/search", json={"query": "stolen laptop help desk", "k": 2}).json()
    assert body["hits"][0]["doc_id"] == "devices.md"
    assert body["hits"][0]["score"] > 0 and body["retrieve_ms"] >= 0


def test_chat_page_is_served_without_a_build_step(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/chat.js" in page.text and "/static/chat.css" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert client.get("/static/chat.js").status_code == 200
    assert client.get("/static/chat.css").status_code == 200


def test_metrics_count_requests_tokens_and_first_token(client: TestClient) -> None:
    client.post("/v1/chat/completions", json={"messages": [QUESTION]})
    client.post("/v1/chat/completions", json={"messages": []})
    text = client.get("/metrics").text
    assert (
        'rag_http_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0'
        in text
    )
    assert (
        'rag_http_requests_total{method="POST",route="/v1/chat/completions",status="400"} 1.0'
        in text
    )
    assert 'rag_generated_tokens_total{variant="rag-few-shot"}' in text
    assert 'rag_time_to_first_token_seconds_count{variant="rag-few-shot"} 1.0' in text
    assert "rag_retrieval_duration_seconds_count 1.0" in text
    assert "rag_queue_depth 0.0" in text
    assert (
        'rag_http_request_duration_seconds_bucket{le="0.05",route="/v1/chat/completions"}' in text
    )


def test_index_written_elsewhere_is_reopened(client: TestClient, index_dir: Path) -> None:
    before = client.get("/readyz").json()["index"]["generation"]
    text = "Parking permits are issued by the facilities team on floor two."
    with IndexWriter(index_dir) as writer:
        from rag.store import Manifest

        writer.begin(Manifest(embedder="fake", dimension=64, chunk_tokens=256, chunk_overlap=32))
        document = Document(id="parking.md", source="parking.md", title="Parking", text=text)
        chunk = Chunk(id=0, doc_id="parking.md", text=text, end=len(text), title="Parking")
        writer.add_document(document, [chunk], FakeEmbedder().embed_batch([text]))
        writer.commit()
    hits = client.post("/v1/search", json={"query": "parking permits facilities"}).json()["hits"]
    assert hits[0]["doc_id"] == "parking.md"
    after = client.get("/readyz").json()["index"]
    assert after["generation"] != before and after["documents"] == 4


def test_requests_before_the_model_loads_get_503(index_dir: Path) -> None:
    state: ServerState = make_state(index_dir)
    state.pipelines = None
    from serve.app import create_app

    app = create_app(state)
    state.load = lambda: None  # type: ignore[method-assign]  # never finishes loading
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "loading"
        response = client.post("/v1/chat/completions", json={"messages": [QUESTION]})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"]["code"] == "not_ready"


def test_an_adapter_adds_the_lora_variants(index_dir: Path) -> None:
    base = ScriptedGenerator(script=cite_first)
    tuned = ScriptedGenerator(script=lambda messages: "Tuned answer [1].")
    with serving(make_state(index_dir, base, adapter_generator=tuned)) as client:
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert models == ["closed-book", "few-shot", "rag", "rag-few-shot", "lora", "lora-rag"]
        lora = client.post("/v1/chat/completions", json={"model": "lora", "messages": [QUESTION]})
        assert lora.json()["choices"][0]["message"]["content"] == "Tuned answer [1]."
        assert lora.json()["sources"] == []  # no retrieval: [1] points at nothing
        both = client.post("/v1/ask", json={"model": "lora-rag", "question": QUESTION["content"]})
        assert both.json()["citations"][0]["doc_id"] == "leave.md"
    assert len(tuned.prompts) == 2 and base.prompts == []
    assert "[1] Leave" not in tuned.prompts[0][-1].content
    assert "[1] Leave" in tuned.prompts[1][-1].content


def test_an_answer_copied_from_a_demonstration_is_withdrawn_with_a_warning(
    index_dir: Path,
) -> None:
    from rag.examples import Example, Passage

    copied = "Ring the facilities team on extension 7100 before noon on weekdays [1]."
    demo = Example(
        "Who fixes a broken office chair?",
        (Passage(title="Facilities", text="Ring the facilities team on extension 7100."),),
        answer=copied,
    )
    state = make_state(index_dir, ScriptedGenerator(script=lambda _: copied), examples=[demo])
    with serving(state) as client:
        body = client.post("/v1/chat/completions", json={"messages": [QUESTION]}).json()
        assert body["choices"][0]["message"]["content"] == "I don't know."
        assert body["refused"] is True and body["sources"] == []
        assert len(body["warnings"]) == 1 and "7100" in body["warnings"][0]

        stream = client.post(
            "/v1/chat/completions", json={"messages": [QUESTION], "stream": True}
        ).text
        finals = [json.loads(e) for e in sse_events(stream) if e != "[DONE]"]
        assert "7100" in finals[-1]["warnings"][0]


def test_chat_completions_honour_the_retrieval_extensions(client: TestClient) -> None:
    """Filters, mode, floor and MMR reach retrieval on both answering routes alike."""
    question = {"role": "user", "content": "What does the Premium plan cost per month?"}
    for extensions in (
        {"source_glob": "leave*"},
        {"doc_ids": ["leave.md"], "mode": "keyword"},
        {"min_score": 0.99},
    ):
        chat = client.post("/v1/chat/completions", json={"messages": [question], **extensions})
        ask = client.post("/v1/ask", json={"question": question["content"], **extensions})
        assert chat.status_code == ask.status_code == 200, (chat.text, ask.text)
        sources = [s["doc_id"] for s in chat.json()["sources"]]
        assert sources == [c["doc_id"] for c in ask.json()["citations"]]
        assert "pricing.md" not in sources, extensions
    refused = client.post(
        "/v1/chat/completions", json={"messages": [question], "min_score": 0.99}
    ).json()
    assert refused["refused"] is True and refused["choices"][0]["message"]["content"] == (
        "I don't know."
    )
    mmr = client.post("/v1/chat/completions", json={"messages": [question], "mmr": True})
    assert mmr.json()["sources"][0]["doc_id"] == "pricing.md"
    bad = client.post("/v1/chat/completions", json={"messages": [question], "mode": "fuzzy"})
    assert bad.status_code == 400
