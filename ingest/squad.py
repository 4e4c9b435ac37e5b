"""SQuAD JSON (v1.1, or v2.0 with ``is_impossible``), parsed in one place.

Both readers of SQuAD go through `parse_squad`: the corpus converter, which writes each article
as a Markdown document, and the evaluation, which reads a SQuAD file given as a QA set. So a
question's gold document id is the id ingestion gives that document (``Super_Bowl_50.md``,
the file's path in the corpus folder), and its context is the paragraph as the document has it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from rag.errors import InputError

_UNSAFE_FILENAME = re.compile(r"[^\w\-().,]+")


@dataclass(frozen=True)
class SquadArticle:
    #: The document's file name, which is also its id once ingested.
    doc_id: str
    title: str
    #: Paragraphs with their whitespace collapsed, as the document holds them.
    paragraphs: list[str]
    #: The questions as QA rows (the JSONL format of `eval.qa`).
    questions: list[dict[str, Any]] = field(default_factory=list)

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n\n".join(self.paragraphs) + "\n"


def squad_doc_id(title: str, number: int) -> str:
    """The document id of article ``number`` (from 1): its title as a safe file name."""
    return (_UNSAFE_FILENAME.sub("_", title) or f"article-{number:04d}") + ".md"


def parse_squad(raw: str | bytes, where: str) -> list[SquadArticle]:
    """The articles of a SQuAD file; InputError naming ``where`` when it is not SQuAD JSON."""
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise InputError(f"cannot read SQuAD JSON {where}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InputError(f"{where} is not SQuAD JSON (expected a top-level 'data' list)")
    try:
        return [_article(article, number) for number, article in enumerate(data["data"], 1)]
    except (KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{where} is not SQuAD JSON: {type(error).__name__} {error}") from None


def _article(article: dict[str, Any], number: int) -> SquadArticle:
    title = str(article.get("title", ""))
    doc_id = squad_doc_id(title, number)
    paragraphs = [" ".join(str(p["context"]).split()) for p in article.get("paragraphs", [])]
    questions = []
    for paragraph, context in zip(article.get("paragraphs", []), paragraphs, strict=True):
        for qa in paragraph.get("qas", []):
            answers = list(dict.fromkeys(str(a["text"]).strip() for a in qa.get("answers", [])))
            impossible = bool(qa.get("is_impossible", False)) or not answers
            questions.append(
                {
                    "id": str(qa["id"]),
                    "question": str(qa["question"]).strip(),
                    "answers": [] if impossible else answers,
                    "doc_ids": [doc_id],
                    "answerable": not impossible,
                    "context": context,
                }
            )
    return SquadArticle(doc_id, title.replace("_", " "), paragraphs, questions)
