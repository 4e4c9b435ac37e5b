"""`rag serve` lets as many generations run at once as its engine decodes together."""

from __future__ import annotations

from pathlib import Path

from serve.server import build_state
from serve.settings import load_serve_settings


def test_generations_at_once_follow_the_engine(tmp_path: Path) -> None:
    def concurrency(**options: object) -> int:
        model = {"model": "smollm2-135m", "device": "cpu"}
        settings = load_serve_settings(index=tmp_path, **model, **options)
        return build_state(settings).config.concurrency

    assert concurrency() == 4  # OpenVINO: four sequences per step
    assert concurrency(engine="ctranslate2") == 2  # two replicas
    assert concurrency(engine="llama.cpp") == 4  # four sequences per llama.cpp batch
    assert concurrency(engine="transformers") == 1
    assert concurrency(concurrency=3) == 3  # --concurrency wins
    assert concurrency(base_url="http://127.0.0.1:9/v1") == 1  # a remote server, as before
