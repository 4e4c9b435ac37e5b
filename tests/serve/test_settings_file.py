"""The server answers with the evaluation's recommended settings when a request does not say."""

from __future__ import annotations

import json
from pathlib import Path

from rag.settings import AnswerDefaults
from serve.server import build_state
from serve.settings import ServeSettings
from tests.serve.conftest import make_state, serving

QUESTION = "What does the Premium plan cost per month?"


def test_requests_default_to_the_settings_and_may_override_them(index_dir: Path) -> None:
    state = make_state(index_dir)
    state.config.answering = AnswerDefaults(k=1, shots=0, mode="keyword")
    with serving(state) as client:
        answered = client.post("/v1/ask", json={"question": QUESTION}).json()
        assert (answered["variant"]["k"], answered["variant"]["shots"]) == (1, 0)
        assert len(answered["hits"]) == 1 and set(answered["hits"][0]["ranks"]) == {"keyword"}
        chat = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": QUESTION}], "k": 2, "shots": 1},
        ).json()
        assert (chat["variant"]["k"], chat["variant"]["shots"]) == (2, 1)
        hits = client.post("/v1/search", json={"query": QUESTION}).json()["hits"]
        assert len(hits) == 1


def test_serve_reads_the_settings_file_or_the_index_folders(
    index_dir: Path, tmp_path: Path
) -> None:
    assert build_state(ServeSettings(index=index_dir)).config.answering == AnswerDefaults()
    (index_dir / "settings.json").write_text(json.dumps({"k": 3, "shots": 1, "mode": "dense"}))
    answering = build_state(ServeSettings(index=index_dir)).config.answering
    assert (answering.k, answering.shots, answering.mode) == (3, 1, "dense")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"k": 2}))
    answering = build_state(ServeSettings(index=index_dir, settings_file=other)).config.answering
    assert (answering.k, answering.shots, answering.mode) == (2, 2, "hybrid")
