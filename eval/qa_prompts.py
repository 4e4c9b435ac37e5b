"""The chats that generate and check questions: templates in ``eval/prompts``, rendered strictly.

Generation is few-shot: each demonstration is a passage (the user turn) and a question with a
short answer copied from it (the assistant turn), the format the evaluation scores, so the model
writes answers that F1 can match. The demonstrations ship in ``eval/data/qa_demos.jsonl``
(``--demos FILE`` for a team's own); each also carries a question its passage does not answer,
for the unanswerable chat. The same demonstrations, as an example bank, show the round trip
(answering from the passage alone) the short answer format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError
from rag.examples import Example, Passage
from rag.prompt import chunk_label, render, templates_digest
from rag.types import Chunk, Message

PROMPTS = Path(__file__).parent / "prompts"
DEFAULT_DEMOS = Path(__file__).parent / "data" / "qa_demos.jsonl"
_FIELDS = ("title", "passage", "question", "answer", "unanswerable")


@dataclass(frozen=True)
class GenerationDemo:
    """A passage, a question it answers with its short answer, and one it does not answer."""

    title: str
    passage: str
    question: str
    answer: str
    unanswerable: str

    def as_example(self) -> Example:
        """The demonstration as the answering prompt shows one: one passage, a cited answer."""
        return Example(self.question, (Passage(self.title, self.passage),), f"{self.answer} [1]")


def load_demos(path: Path = DEFAULT_DEMOS) -> list[GenerationDemo]:
    """Read a demonstrations JSONL file; every line needs every field, as a non-empty text."""
    if not path.is_file():
        raise ConfigError(f"demonstrations file not found: {path}")
    demos = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not JSON ({error.msg})") from None
        missing = [
            f for f in _FIELDS if not isinstance(record, dict) or not str(record.get(f, "")).strip()
        ]
        if missing:
            raise ConfigError(f"{path}:{number}: a demonstration needs {', '.join(missing)}")
        demos.append(GenerationDemo(**{f: str(record[f]).strip() for f in _FIELDS}))
    if not demos:
        raise ConfigError(f"{path} holds no demonstrations")
    return demos


def prompts_digest(demos_path: Path) -> str:
    """Changes when a generation template or the demonstrations change."""
    digest = hashlib.sha256(templates_digest(PROMPTS).encode())
    digest.update(demos_path.read_bytes())
    return digest.hexdigest()[:16]


def _render(name: str, **variables: object) -> str:
    return render(name, variables, PROMPTS)


def _passage_turn(title: str, text: str) -> Message:
    return Message("user", _render("qa_passage", title=title or "untitled", text=text.strip()))


def question_chat(chunk: Chunk, demos: Sequence[GenerationDemo]) -> list[Message]:
    """Ask for one (question, short answer) pair about ``chunk``."""
    chat = [Message("system", _render("qa_system"))]
    for demo in demos:
        chat.append(_passage_turn(demo.title, demo.passage))
        pair = _render("qa_pair", question=demo.question, answer=demo.answer)
        chat.append(Message("assistant", pair))
    chat.append(_passage_turn(chunk_label(chunk), chunk.text))
    return chat


def unanswerable_chat(chunk: Chunk, demos: Sequence[GenerationDemo]) -> list[Message]:
    """Ask for a question on ``chunk``'s subject that it does not answer."""
    chat = [Message("system", _render("qa_unanswerable_system"))]
    for demo in demos:
        chat.append(_passage_turn(demo.title, demo.passage))
        chat.append(
            Message("assistant", _render("qa_unanswerable_pair", question=demo.unanswerable))
        )
    chat.append(_passage_turn(chunk_label(chunk), chunk.text))
    return chat


def judge_chat(
    question: str, passages: Sequence[Chunk], demos: Sequence[GenerationDemo]
) -> list[Message]:
    """Ask whether the retrieved ``passages`` state the answer to ``question``; the
    demonstrations alternate a question their passage answers (YES) and one it does not (NO)."""
    chat = [Message("system", _render("qa_judge_system"))]
    for i, demo in enumerate(demos):
        asked = demo.question if i % 2 == 0 else demo.unanswerable
        context = _context([(demo.title, demo.passage)])
        chat.append(Message("user", _render("qa_judge", context=context, question=asked)))
        chat.append(Message("assistant", "YES" if i % 2 == 0 else "NO"))
    context = _context([(chunk_label(c), c.text) for c in passages])
    chat.append(Message("user", _render("qa_judge", context=context, question=question)))
    return chat


def _context(passages: Sequence[tuple[str, str]]) -> str:
    """Numbered blocks, as the answering prompt numbers its context."""
    return "\n\n".join(
        render("context_block", {"number": i, "label": label, "text": text.strip()})
        for i, (label, text) in enumerate(passages, 1)
    )
