"""The contract of `rag.generate.base.Generator`, run against every implementation.

Streams end with exactly one finishing delta; ``generate`` is the joined stream;
``generate_batch`` keeps the input order and gives what greedy ``generate`` gives one by one;
stop strings never reach the output; token counts are reported.

Adding an implementation is one entry in ``GENERATORS``: a name and a context manager that
yields a ready generator (greedy decoding must be deterministic) and cleans up after it, e.g.

    @contextmanager
    def my_backend() -> Iterator[Generator]:
        generator = MyGenerator("smollm2-135m", ...)
        generator.warm_up()
        yield generator

    GENERATORS = {..., "my-backend": my_backend}

Every local engine runs here on the real smollm2 (``local_smollm2``), as do the OpenAI client
against our own server and against llama.cpp's.

A backend that needs a device this machine lacks calls ``pytest.skip`` in its context manager.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import pytest

from rag.generate.base import GenerationConfig, GenerationResult, Generator
from rag.types import Message
from tests.fakes import ScriptedGenerator

PROMPTS: list[list[Message]] = [
    [Message("user", "Name three rivers that flow through France.")],
    [Message("system", "Answer in one sentence."), Message("user", "Why is the sky blue?")],
    [Message("user", "Write a short greeting for a new colleague.")],
]
MAX_NEW_TOKENS = 12
GREEDY = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS)


def _echo(messages: Sequence[Message]) -> str:
    """A deterministic reply that differs per question and is long enough to cut."""
    question = messages[-1].content.splitlines()[-1]
    return f"You asked: {question} Here is a plain answer in a few more words than needed."


@contextmanager
def scripted() -> Iterator[Generator]:
    yield ScriptedGenerator(script=_echo)


@contextmanager
def local_smollm2(engine: str) -> Iterator[Generator]:
    """smollm2-135m on a local engine (transformers float32, OpenVINO 8-bit, CTranslate2 int8,
    llama.cpp)."""
    import torch

    from rag.generate import load_generator
    from rag.settings import load_settings

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second busy process stalls torch's spinning threads
    try:
        generator = load_generator(
            "smollm2-135m", cache_dir=load_settings().cache_dir, device="cpu", engine=engine
        )
        assert generator.engine == engine
        generator.warm_up()
        yield generator
    finally:
        torch.set_num_threads(threads)


@contextmanager
def openai_against_rag_serve() -> Iterator[Generator]:
    """The HTTP client against our own server (real uvicorn on a loopback port), whose
    closed-book variant answers with the scripted model."""
    from rag.generate.openai_backend import OpenAIGenerator
    from tests.serve.conftest import live_server, make_state

    with live_server(make_state(None, ScriptedGenerator(script=_echo))) as url:
        generator = OpenAIGenerator("closed-book", base_url=f"{url}/v1")
        try:
            yield generator
        finally:
            generator.close()


@contextmanager
def openai_against_llama_cpp_server() -> Iterator[Generator]:
    """The HTTP client against a third party: llama.cpp's OpenAI-compatible server (from
    llama-cpp-python) on the smollm2 GGUF."""
    from rag.generate.openai_backend import OpenAIGenerator
    from tests.llama_cpp_server import llama_cpp_server

    with llama_cpp_server(n_ctx=2048) as url:
        generator = OpenAIGenerator("smollm2", base_url=url, context_window=2048)
        try:
            yield generator
        finally:
            generator.close()


GENERATORS: dict[str, Callable[[], AbstractContextManager[Generator]]] = {
    "scripted": scripted,
    "transformers-smollm2": lambda: local_smollm2("transformers"),
    "openvino-smollm2": lambda: local_smollm2("openvino"),
    "ctranslate2-smollm2": lambda: local_smollm2("ctranslate2"),
    "llama.cpp-smollm2": lambda: local_smollm2("llama.cpp"),
    "openai-rag-serve": openai_against_rag_serve,
    "openai-llama-cpp-server": openai_against_llama_cpp_server,
}


@pytest.fixture(scope="module", params=list(GENERATORS))
def generator(request: pytest.FixtureRequest) -> Iterator[Generator]:
    with GENERATORS[request.param]() as ready:
        yield ready


def outcome(result: GenerationResult) -> tuple[str, str, int, int]:
    return (result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens)


def test_a_stream_ends_with_exactly_one_finishing_delta(generator: Generator) -> None:
    for messages in PROMPTS:
        deltas = list(generator.stream(messages, GREEDY))
        finishing = [d for d in deltas if d.finish_reason is not None]
        assert finishing == [deltas[-1]], deltas
        assert deltas[-1].finish_reason in ("stop", "length")
        assert all(d.text for d in deltas[:-1]), "a delta before the last one carries no text"
        assert "".join(d.text for d in deltas).strip()


def test_generate_is_the_joined_stream(generator: Generator) -> None:
    for messages in PROMPTS:
        deltas = list(generator.stream(messages, GREEDY))
        last = deltas[-1]
        assert outcome(generator.generate(messages, GREEDY)) == (
            "".join(d.text for d in deltas),
            last.finish_reason,
            last.prompt_tokens,
            last.completion_tokens,
        )


def test_a_batch_keeps_its_order_and_equals_greedy_one_by_one(generator: Generator) -> None:
    singles = [outcome(generator.generate(messages, GREEDY)) for messages in PROMPTS]
    assert len({text for text, *_ in singles}) == len(PROMPTS), "answers must differ to show order"
    batch = generator.generate_batch(PROMPTS, GREEDY)
    backwards = generator.generate_batch(PROMPTS[::-1], GREEDY)
    if getattr(generator, "engine", None) == "openvino":
        # OpenVINO reads a batch's prompts together, its products in bfloat16, which round
        # differently from one prompt read alone: a near-tie can flip (here 2 of 3 answers
        # change after a few tokens; in float32 none does, but prompts read 1.7x slower).
        # The prompts' lengths differ, so the order shows in the token counts.
        assert len({tokens for _, _, tokens, _ in singles}) == len(PROMPTS)
        assert [r.prompt_tokens for r in batch] == [tokens for _, _, tokens, _ in singles]
        assert [r.prompt_tokens for r in backwards] == [r.prompt_tokens for r in batch][::-1]
        assert all(r.text.strip() and r.finish_reason in ("stop", "length") for r in batch)
        return
    assert [outcome(r) for r in batch] == singles
    assert [outcome(r) for r in backwards] == singles[::-1]


def test_stop_strings_never_reach_the_output(generator: Generator) -> None:
    free = generator.generate(PROMPTS[0], GREEDY).text
    middle = len(free) // 2
    stop = free[middle : middle + 5]
    assert stop.strip(), f"the free answer is too short to cut: {free!r}"
    config = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, stop=(stop, "never-said-XYZ"))
    streamed = "".join(d.text for d in generator.stream(PROMPTS[0], config))
    [batched] = generator.generate_batch([PROMPTS[0]], config)
    for text in (streamed, batched.text, generator.generate(PROMPTS[0], config).text):
        assert text == free[: free.index(stop)]
        assert stop not in text


def test_token_counts_are_reported(generator: Generator) -> None:
    result = generator.generate(PROMPTS[1], GREEDY)
    assert result.prompt_tokens > 0
    assert 0 < result.completion_tokens <= MAX_NEW_TOKENS
    cut = generator.generate(PROMPTS[1], GenerationConfig(max_new_tokens=2))
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 2)
    [batched] = generator.generate_batch([PROMPTS[1]], GenerationConfig(max_new_tokens=2))
    assert (batched.finish_reason, batched.completion_tokens) == ("length", 2)
