"""The chat page in headless Chromium: ask, watch the answer stream in, open a citation.

The server runs in-process under uvicorn with the scripted generator that cites [1]. Set
RAG_SCREENSHOTS=DIR to keep screenshots of each step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import GatedGenerator, live_server, make_state

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUESTION = "How many days of paid annual leave do staff get?"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("needs Debian's chromium at /usr/bin/chromium: run `make browser`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("RAG_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_ask_stream_and_open_a_citation(browser: Any, index_dir: Path) -> None:
    generator = GatedGenerator()
    with live_server(make_state(index_dir, generator, api_keys=["secret"])) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(url)
        # The page loads without a key; its first API call (the model list) asks for one.
        page.locator("#key-dialog[open]").wait_for(timeout=10_000)
        page.fill("#key-input", "secret")
        page.click("#key-save")
        page.locator("#model option[value='closed-book']").wait_for(state="attached")
        shoot(page, "1-empty")

        page.fill("#question", QUESTION)
        page.keyboard.press("Enter")
        answer = page.locator(".msg.assistant").last
        # Streamed: the first words show while the generator is still held back.
        page.locator(".msg.assistant.streaming .text", has_text="Hold").wait_for(timeout=10_000)
        shoot(page, "2-streaming")
        assert not generator.finished.is_set()
        generator.release.set()

        answer.locator(".sources button").first.wait_for(timeout=10_000)
        assert answer.locator(".text").inner_text().startswith("Hold")
        assert "[1]" in answer.locator(".text").inner_text()
        assert answer.locator(".sources button").inner_text().strip() == "[1]Leave"
        # The default variant, and what it ran with as the server reports it.
        assert page.locator("#model").input_value() == "rag-few-shot"
        assert answer.locator(".meta").inner_text().startswith("rag-few-shot (k=3, 2 shots) · ")

        answer.locator(".text button.cite").first.click()
        passage = page.locator("#passage")
        passage.wait_for(state="visible")
        assert page.locator("#passage-title").inner_text() == "Leave"
        assert "25 days of paid annual leave" in page.locator("#passage-text").inner_text()
        assert page.locator("#passage-source").inner_text() == "leave.md"
        shoot(page, "3-passage")

        # The conversation is kept: reloading the page shows it again, the key is remembered.
        page.reload()
        page.locator(".msg.user", has_text=QUESTION).wait_for()
        assert page.locator(".msg.assistant .sources button").count() == 1
        assert page.locator("#key-dialog[open]").count() == 0
        page.close()


def test_a_refused_key_asks_again(browser: Any, index_dir: Path) -> None:
    with live_server(make_state(index_dir, api_keys=["right"])) as url:
        page = browser.new_page()
        page.goto(url)
        page.evaluate("localStorage.setItem('rag.apiKey', 'wrong')")
        page.reload()
        page.locator("#key-dialog[open]").wait_for(timeout=10_000)
        assert "refused" in page.locator("#key-reason").inner_text()
        page.fill("#key-input", "right")
        page.press("#key-input", "Enter")
        page.locator("#model option[value='closed-book']").wait_for(state="attached")
        page.fill("#question", QUESTION)
        page.click("#send")
        page.locator(".msg.assistant .sources button").wait_for(timeout=10_000)
        assert page.evaluate("localStorage.getItem('rag.apiKey')") == "right"
        page.close()


def test_a_quoted_but_uncited_source_is_shown_as_quoted(browser: Any, index_dir: Path) -> None:
    from tests.fakes import ScriptedGenerator

    generator = ScriptedGenerator(
        script=lambda _: "Full-time staff get 25 days of paid annual leave each year."
    )
    with live_server(make_state(index_dir, generator)) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(url)
        page.locator("#model option[value='closed-book']").wait_for(state="attached")
        page.fill("#question", QUESTION)
        page.keyboard.press("Enter")
        answer = page.locator(".msg.assistant").last
        answer.locator(".sources button").first.wait_for(timeout=10_000)
        assert answer.locator(".sources button").first.inner_text().strip() == "[1]Leave (quoted)"
        page.close()
