"""Prompts: templates from files, rendered strictly, fitted into the model's context window.

The chat is: a system message with the rules, the demonstrations as earlier user/assistant turns
(each with its own numbered passages), the conversation so far, then the question with the
retrieved passages numbered ``[1]..[n]``. When that does not fit in ``context_window`` minus the
answer budget, material is dropped in this order, and every drop is reported:

1. demonstrations beyond the most similar one (least similar first);
2. conversation history (oldest exchange first);
3. context passages beyond the top one (lowest ranked first);
4. the last demonstration, then the top passage.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rag.citations import strip_markers
from rag.errors import ConfigError, PromptError, PromptTooLong
from rag.examples import Example
from rag.generate.base import Generator
from rag.types import Chunk, Hit, Message

PROMPTS_DIR = Path(__file__).parent / "prompts"


@cache
def load_template(name: str, directory: Path = PROMPTS_DIR) -> string.Template:
    """The template ``directory/name.txt``; an unknown name lists the ones that exist."""
    path = directory / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.txt")))
        raise PromptError(f"Unknown prompt template: {name} (known: {known})")
    return string.Template(path.read_text(encoding="utf-8").rstrip("\n"))


def templates_digest(directory: Path = PROMPTS_DIR) -> str:
    """A short sha256 over every template's name and text: changes when any prompt is edited."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def render(name: str, variables: Mapping[str, object], directory: Path = PROMPTS_DIR) -> str:
    """Fill template ``name``; a variable it names but ``variables`` lacks is a PromptError."""
    template = load_template(name, directory)
    try:
        return template.substitute({k: str(v) for k, v in variables.items()})
    except KeyError as error:
        raise PromptError(
            f"prompt template {name!r} needs the variable {error.args[0]!r}, which was not given"
        ) from None
    except ValueError as error:
        raise PromptError(f"prompt template {name!r} is malformed: {error}") from None


def chunk_label(chunk: Chunk) -> str:
    """How a passage is named in the prompt and in the sources list: title, section, page."""
    label = chunk.title or chunk.source or chunk.doc_id
    headings = [h for h in chunk.heading_path if h and h != label]
    if headings:
        label += " > " + " > ".join(headings)
    if chunk.page is not None:
        label += f" (page {chunk.page})"
    return label


@dataclass
class PromptBuild:
    """The messages to send and what went into them.

    ``context[n - 1]`` is the passage marked ``[n]``; ``hits`` are the retrieved hits that made it
    into the prompt, ``dropped`` describes what the token budget left out.
    """

    messages: list[Message]
    context: list[Chunk] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    demos: list[Example] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    budget: int = 0
    query: str = ""
    closed_book: bool = False


class PromptBuilder:
    """Renders the chat for one question within the generator's context window."""

    def __init__(
        self, generator: Generator, *, refusal: str = "I don't know.", directory: Path = PROMPTS_DIR
    ) -> None:
        self.generator = generator
        self.refusal = refusal
        self.directory = Path(directory)

    def _render(self, name: str, **variables: object) -> str:
        return render(name, variables, self.directory)

    def context_text(self, passages: Sequence[tuple[str, str]]) -> str:
        """Numbered blocks ``[1] label\\ntext`` from (label, text) pairs."""
        return "\n\n".join(
            self._render("context_block", number=i, label=label, text=text.strip())
            for i, (label, text) in enumerate(passages, 1)
        )

    def user_turn(
        self, question: str, passages: Sequence[tuple[str, str]], closed_book: bool
    ) -> str:
        if closed_book:
            return self._render("question_closed_book", question=question)
        return self._render("question", question=question, context=self.context_text(passages))

    def messages(
        self,
        question: str,
        *,
        hits: Sequence[Hit] = (),
        demos: Sequence[Example] = (),
        history: Sequence[Message] = (),
        closed_book: bool = False,
    ) -> list[Message]:
        """The chat, unbudgeted.

        Demos are given most similar first. Refusals are shown first, then the answerable demos
        with the most similar last, next to the question: small models copy the nearest demo, and
        a refusal there makes them decline answerable questions.
        """
        system = "system_closed_book" if closed_book else "system"
        out = [Message("system", self._render(system, refusal=self.refusal))]
        for demo in sorted(reversed(demos), key=lambda d: d.answerable):
            passages = [(p.title or "Untitled", p.text) for p in demo.passages]
            answer = demo.answer_text(self.refusal)
            out.append(Message("user", self.user_turn(demo.question, passages, closed_book)))
            out.append(Message("assistant", strip_markers(answer) if closed_book else answer))
        out.extend(m for m in history if m.role != "system")
        passages = [(chunk_label(h.chunk), h.chunk.text) for h in hits]
        out.append(Message("user", self.user_turn(question, passages, closed_book)))
        return out

    def build(
        self,
        question: str,
        *,
        hits: Sequence[Hit] = (),
        demos: Sequence[Example] = (),
        history: Sequence[Message] = (),
        closed_book: bool = False,
        max_new_tokens: int = 256,
        max_prompt_tokens: int | None = None,
        query: str = "",
    ) -> PromptBuild:
        """The chat fitted into ``context_window - max_new_tokens`` tokens, or fewer when
        ``max_prompt_tokens`` says so (see module doc)."""
        budget = self.generator.context_window - max_new_tokens
        if max_prompt_tokens is not None:
            budget = min(budget, max_prompt_tokens)
        if budget <= 0:
            raise ConfigError(
                f"max_new_tokens={max_new_tokens} leaves no room for the prompt in this model's "
                f"{self.generator.context_window}-token window: ask for fewer new tokens"
            )
        hits = [] if closed_book else list(hits)
        demos = list(demos)
        history = [m for m in history if m.role != "system"]
        dropped: list[str] = []
        dropped_history = 0

        def count() -> tuple[list[Message], int]:
            chat = self.messages(
                question, hits=hits, demos=demos, history=history, closed_book=closed_book
            )
            return chat, self.generator.count_prompt_tokens(chat)

        chat, tokens = count()
        while tokens > budget:
            if len(demos) > 1:
                dropped.append(f"demo: {demos.pop().question}")
            elif history:
                step = 2 if len(history) >= 2 else 1
                del history[:step]
                dropped_history += step
            elif len(hits) > 1:
                hit = hits.pop()
                dropped.append(f"context [{len(hits) + 1}]: {chunk_label(hit.chunk)}")
            elif demos:
                dropped.append(f"demo: {demos.pop().question}")
            elif hits:
                dropped.append(f"context [1]: {chunk_label(hits.pop().chunk)}")
            else:
                raise PromptTooLong(
                    f"the question alone takes {tokens} tokens, more than the {budget} this model "
                    f"leaves for a prompt: shorten it or lower max_new_tokens"
                )
            chat, tokens = count()
        if dropped_history:
            dropped.append(f"history: {dropped_history} turns")
        return PromptBuild(
            messages=chat,
            context=[h.chunk for h in hits],
            hits=hits,
            demos=demos,
            history=history,
            dropped=dropped,
            prompt_tokens=tokens,
            budget=budget,
            query=query or question,
            closed_book=closed_book,
        )
