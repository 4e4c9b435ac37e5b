"""A person's review of a QA set before it is trusted: a readable listing, and accept / reject /
edit, one question at a time, written to the reviewed file after every decision.

A decision is the row's ``reviewed`` field: ``accepted``, ``edited`` (the question or the answers
were changed) or ``rejected``. `rag eval` never evaluates a rejected row, and with
``--reviewed-only`` evaluates only accepted and edited ones. A review resumes: rows already
decided in the output file keep their decision (and their edits).
"""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from eval.qa import REVIEWED, QAItem, read_qa_jsonl, write_qa_jsonl
from rag.errors import ConfigError

#: What each key does, as the prompt lists it.
KEYS = {"a": "accept", "r": "reject", "e": "edit", "s": "skip", "q": "quit"}
EXCERPT = 400


def describe(item: QAItem, *, number: str = "", passage: bool = True) -> str:
    """One row as a reader checks it: question, answers, status, where it came from, and the
    start of its passage."""
    status = item.review or "not reviewed"
    kind = "answerable" if item.answerable else "unanswerable"
    lines = [f"{number}{item.id}  {kind}  {status}", f"  Q: {item.question}"]
    lines.append(
        "  A: " + " | ".join(item.answers) if item.answerable else "  A: (refusal expected)"
    )
    source: dict[str, Any] = item.extra.get("source") or {}
    where = []
    if source:
        where.append(f"from {source.get('doc_id')} (chunk {source.get('chunk_id')})")
    elif item.doc_ids:
        where.append(f"gold: {', '.join(item.doc_ids)}")
    checks: dict[str, Any] = item.extra.get("filters") or {}
    if "round_trip_f1" in checks:
        where.append(
            f"round trip F1 {checks['round_trip_f1']:.2f} ({checks.get('round_trip_answer')!r})"
        )
    if "top_score" in checks:
        top = checks["top_score"]
        where.append(f"best retrieval score {top:.2f}" if top is not None else "nothing retrieved")
        where.append(f"judge: {checks.get('judge')!r}")
    retrieval: dict[str, Any] = item.extra.get("retrieval") or {}
    if retrieval:
        rank = retrieval.get("passage_rank")
        found = f"rank {rank}" if rank else "not found"
        where.append(f"retrieval ({retrieval.get('mode')}, top {retrieval.get('k')}): {found}")
    if where:
        lines.append("  " + "; ".join(where))
    if passage and item.context:
        text = " ".join(item.context.split())
        excerpt = text[:EXCERPT] + (" ..." if len(text) > EXCERPT else "")
        lines.extend(textwrap.wrap(excerpt, 96, initial_indent="  | ", subsequent_indent="  | "))
    return "\n".join(lines)


def summarize(items: Sequence[QAItem]) -> str:
    """How many rows, answerable, and in each review state; and from how many documents."""
    states = Counter(item.review or "not reviewed" for item in items)
    answerable = sum(item.answerable for item in items)
    docs = {d for item in items for d in item.doc_ids}
    parts = ", ".join(f"{states[s]} {s}" for s in (*REVIEWED, "rejected", "not reviewed"))
    return (
        f"{len(items)} questions ({answerable} answerable, {len(items) - answerable} "
        f"unanswerable) from {len(docs)} documents; {parts}."
    )


def listing(items: Sequence[QAItem], *, passages: bool = True) -> str:
    """The whole set, numbered, after its summary line."""
    width = len(str(len(items)))
    blocks = [
        describe(item, number=f"[{i:>{width}}] ", passage=passages)
        for i, item in enumerate(items, 1)
    ]
    return "\n\n".join([summarize(items), *blocks])


Ask = Callable[[str, str], str]


def review(
    items: Sequence[QAItem],
    out: Path,
    *,
    ask: Ask,
    echo: Callable[[str], None],
) -> list[QAItem]:
    """Ask about each row not yet decided in ``out``; write ``out`` after every decision.

    ``ask(prompt, default)`` returns the reviewer's reply (``default`` on an empty one) and raises
    EOFError when input ends, which stops the review like ``q``.
    """
    decided = {item.id: item for item in read_qa_jsonl(out) if item.review} if out.exists() else {}
    rows = [decided.get(item.id, item) for item in items]
    todo = [i for i, item in enumerate(rows) if not item.review]
    echo(summarize(rows))
    choices = ", ".join(f"[{key}]{name[1:]}" for key, name in KEYS.items())
    for position, index in enumerate(todo, 1):
        echo("")
        echo(describe(rows[index], number=f"({position}/{len(todo)}) "))
        try:
            key = _key(ask(choices, "a"))
            while key not in KEYS:
                echo(f"Type one of: {', '.join(KEYS)}.")
                key = _key(ask(choices, "a"))
            if key == "q":
                break
            if key == "s":
                continue
            rows[index] = _decide(rows[index], key, ask)
        except EOFError:
            break
        _write(rows, out)
    _write(rows, out)
    echo("")
    echo(f"Wrote {out}: {summarize(rows)}")
    return rows


def _key(reply: str) -> str:
    return reply.strip().lower()[:1]


def _decide(item: QAItem, key: str, ask: Ask) -> QAItem:
    if key == "a":
        return _mark(item, "accepted")
    if key == "r":
        return _mark(item, "rejected")
    question = ask("Question", item.question).strip() or item.question
    answers = item.answers
    if item.answerable:
        typed = ask("Answers (separate with |)", " | ".join(item.answers))
        answers = tuple(a.strip() for a in typed.split("|") if a.strip()) or item.answers
    if (question, answers) == (item.question, item.answers):
        return _mark(item, "accepted")
    return _mark(replace(item, question=question, answers=answers), "edited")


def _mark(item: QAItem, state: str) -> QAItem:
    return replace(item, extra={**item.extra, "reviewed": state})


def _write(rows: Sequence[QAItem], out: Path) -> None:
    """Replace ``out`` whole, so an interrupted review leaves the last complete file."""
    partial = out.with_name(out.name + ".tmp")
    write_qa_jsonl(rows, partial)
    os.replace(partial, out)


def check_review_paths(source: Path, out: Path) -> None:
    if source.resolve() == out.resolve():
        raise ConfigError(
            f"--out {out} is the file being reviewed: write the review to another file (rerun "
            "with the same --out to continue a review)"
        )
