"""Follow-up questions made standalone, so retrieval sees what "it" refers to.

"And what does it cost?" retrieves nothing useful on its own. The model rewrites it with the
conversation in view; when the model is too small to trust, or its rewrite is unusable (empty,
rambling, a refusal, unrelated words), a rule joins the previous question to the follow-up,
which is crude but keeps the topic's keywords in the query for both rankers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.errors import GenerationError
from rag.generate.base import GenerationConfig, Generator
from rag.prompt import render
from rag.types import Message

_WORD = re.compile(r"\w+")
_REFERRING = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|that|this|those|these|he|him|his|she|her|"
    r"there|one|ones|same|former|latter|else)\b",
    re.IGNORECASE,
)
_CONTINUING = re.compile(r"^\s*(and|but|also|so|or|then|what about|how about)\b", re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(standalone question|question|rewritten question)\s*:\s*", re.IGNORECASE)
#: Exchanges of history shown to the model when it rewrites a follow-up.
HISTORY_TURNS = 3


def needs_context(question: str) -> bool:
    """Whether ``question`` leans on the conversation (a pronoun, "and ...", or very short)."""
    words = _WORD.findall(question)
    return len(words) <= 3 or bool(_REFERRING.search(question) or _CONTINUING.match(question))


def _previous_question(history: Sequence[Message]) -> str | None:
    for message in reversed(history):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    return None


def rule_condense(question: str, history: Sequence[Message]) -> str:
    """The previous user question followed by the follow-up (or the question unchanged)."""
    previous = _previous_question(history)
    if previous is None or not needs_context(question):
        return question
    follow_up = _CONTINUING.sub("", question).strip(" ,")
    return f"{previous} {follow_up}".strip()


def _usable(rewrite: str, question: str, history: Sequence[Message]) -> bool:
    """Whether the model's rewrite can stand in for the question."""
    words = _WORD.findall(rewrite.lower())
    if len(words) < 2 or len(words) > 3 * len(_WORD.findall(question)) + 25 or "[" in rewrite:
        return False
    if re.match(r"^(i don't know|i do not know|sorry|i cannot|i can't)", rewrite.lower()):
        return False
    known = set(_WORD.findall(question.lower()))
    for message in history:
        known.update(_WORD.findall(message.content.lower()))
    return any(len(w) > 3 and w in known for w in words)


def model_condense(question: str, history: Sequence[Message], generator: Generator) -> str | None:
    """The model's standalone rewrite of ``question``, or None when it is unusable."""
    turns = [m for m in history if m.role in ("user", "assistant")][-2 * HISTORY_TURNS :]
    transcript = "\n".join(f"{m.role.capitalize()}: {m.content.strip()}" for m in turns)
    prompt = render("condense", {"history": transcript, "question": question})
    messages = [
        Message("system", "You rewrite follow-up questions so they stand alone."),
        Message("user", prompt),
    ]
    try:
        result = generator.generate(messages, GenerationConfig(max_new_tokens=64, stop=("\n",)))
    except GenerationError:
        return None
    rewrite = _PREFIX.sub("", result.text.strip().splitlines()[0] if result.text.strip() else "")
    rewrite = rewrite.strip().strip("\"'")
    return rewrite if _usable(rewrite, question, history) else None


def condense_query(
    question: str, history: Sequence[Message], generator: Generator | None = None
) -> str:
    """A standalone version of ``question`` for retrieval.

    Questions that do not lean on the conversation pass unchanged (no generation spent). With a
    ``generator`` the model rewrites the rest; without one, or when its rewrite is unusable, the
    rule does.
    """
    if not history or not needs_context(question):
        return question
    if generator is not None:
        rewrite = model_condense(question, history, generator)
        if rewrite is not None:
            return rewrite
    return rule_condense(question, history)
