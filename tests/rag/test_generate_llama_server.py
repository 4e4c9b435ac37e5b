"""`rag ask`, `rag eval` and `rag serve` generating on a real third-party OpenAI-compatible
server: llama.cpp's (llama-cpp-python[server]) on the smollm2 GGUF, started here.

That server does not report its context size, so the tests pass `--context-window` (it is
started with `--n_ctx`), and it counts text but does not render chat templates, so prompts are
counted by its `/extras/tokenize/count` plus a template allowance: never below the exact count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.errors import ConfigError, GenerationError
from rag.generate import GenerationConfig
from rag.generate.openai_backend import OpenAIGenerator
from rag.generate.remote import REMOTE_ADAPTER
from rag.generate.remote_tokens import TEMPLATE_TOKENS
from rag.types import Message
from tests.llama_cpp_server import llama_cpp_server
from tests.processes import stop, wait_until_ready
from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
N_CTX = 1024
MESSAGES = [Message("system", "Answer in one sentence."), Message("user", "Why is the sky blue?")]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with llama_cpp_server(n_ctx=N_CTX) as url:
        yield url


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest.pipeline import ingest_paths

    folder = tmp_path_factory.mktemp("remote") / "index"
    ingest_paths([ROOT / "corpora" / "sample" / "docs"], folder)
    return folder


def rag(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rag.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)


def remote_flags(url: str) -> list[str]:
    return ["--model", "smollm2", "--base-url", url, "--context-window", str(N_CTX)]


def test_prompts_are_counted_by_the_server_and_never_below_the_exact_count(server: str) -> None:
    from transformers import AutoTokenizer

    from rag.models import model_folder
    from rag.settings import load_settings

    generator = OpenAIGenerator("smollm2", base_url=server, context_window=N_CTX)
    counted = generator.count_prompt_tokens(MESSAGES)
    assert generator.tokens.method == "llama-cpp-python"
    tokenizer = AutoTokenizer.from_pretrained(
        str(model_folder("smollm2-135m", load_settings().cache_dir))
    )
    plain = [{"role": m.role, "content": m.content} for m in MESSAGES]
    ids: Any = tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=True)
    exact = len(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert exact <= counted <= exact + TEMPLATE_TOKENS * (len(MESSAGES) + 1)

    with pytest.raises(ConfigError, match="does not say how many tokens"):
        OpenAIGenerator("smollm2", base_url=server).warm_up()


def test_a_prompt_longer_than_the_server_holds_is_a_clear_error(server: str) -> None:
    lying = OpenAIGenerator("smollm2", base_url=server, context_window=8 * N_CTX)
    long = [Message("user", "Summarize: " + "the river runs to the sea. " * 400)]
    with pytest.raises(GenerationError, match=r"could not take the prompt.*--context-window"):
        lying.generate(long, GenerationConfig(max_new_tokens=8))


def test_rag_ask_answers_through_the_server(server: str, index: Path, tmp_path: Path) -> None:
    question = "How much does express delivery cost?"
    args = ["ask", question, "--index", str(index), *remote_flags(server)]
    result = rag(*args, "--max-new-tokens", "24", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["text"] and answer["hits"], answer
    assert 0 < answer["prompt_tokens"] <= N_CTX - 24

    streamed = rag(*args, "--max-new-tokens", "16", "--variant", "closed-book", cwd=tmp_path)
    assert streamed.returncode == 0, streamed.stderr
    assert "Sources:" in streamed.stdout


def test_the_lora_variants_say_why_they_do_not_run_remotely(
    server: str, index: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    asked = rag(
        "ask", "q", "--variant", "lora", "--adapter", str(adapter), *remote_flags(server),
        cwd=tmp_path,
    )  # fmt: skip
    assert asked.returncode == 1
    assert asked.stderr.strip() == f"error: {REMOTE_ADAPTER}"
    evaluated = rag(
        "eval", "--qa", str(ROOT / "corpora" / "sample" / "qa.jsonl"), "--index", str(index),
        "--out", str(tmp_path / "out"), "--adapter", str(adapter), *remote_flags(server),
        cwd=tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 1 and REMOTE_ADAPTER in evaluated.stderr


def test_rag_eval_runs_every_other_variant_against_the_server(
    server: str, index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    result = rag(
        "eval", "--qa", str(ROOT / "corpora" / "sample" / "qa.jsonl"), "--index", str(index),
        "--out", str(out), "--limit", "2", "--no-shots-sweep", "--max-new-tokens", "16",
        "--demos-from-qa", "0", "--quiet", *remote_flags(server),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    runs = {row["run"] for row in rows if "run" in row}
    assert {"closed-book", "few-shot", "rag", "rag-few-shot", "oracle"} <= runs, runs
    assert (out / "report.html").is_file()


def test_rag_serve_generates_through_the_server(server: str, index: Path, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "rag.cli", "serve", "--index", str(index)]
    command += [*remote_flags(server), "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/readyz", process, timeout_s=300, log=tmp_path / "serve.log")
        body = {
            "model": "rag",
            "messages": [{"role": "user", "content": "Who founded Lumen Kettle Works?"}],
            "max_tokens": 16,
        }
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        stop(process)
        log.close()
