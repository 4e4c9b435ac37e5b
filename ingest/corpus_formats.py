"""Converters from each public source's own format to a documents folder plus a QA JSONL.

QA lines: ``{"id", "question", "answers", "doc_ids", "answerable", "context"}`` where ``doc_ids``
are the ids ingestion gives the documents (their paths relative to the folder) and ``context`` is
the gold passage exactly as it appears in that document.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.squad import parse_squad

_QUESTION_HEADING = re.compile(r"^#{2,4}[ \t]+(.+\?)[ \t]*$", re.M)
_ANY_HEADING = re.compile(r"^#{1,6}[ \t]", re.M)
_NQ_INPUT = re.compile(r"\s*Question:\s*(.*?)\s*\nContext:\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Converted:
    documents: int
    questions: int


def _write_qa(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def faq_pairs(content: str) -> list[tuple[str, str, str]]:
    """``(question, answer, section)`` for each heading that is a question.

    The answer is the text under the heading up to the next heading; ``section`` is the heading
    line plus that text, verbatim.
    """
    pairs = []
    for match in _QUESTION_HEADING.finditer(content):
        following = _ANY_HEADING.search(content, match.end())
        end = following.start() if following else len(content)
        answer = content[match.end() : end].strip()
        if answer:
            section = content[match.start() : end].rstrip()
            pairs.append((match.group(1).strip(), answer, section))
    return pairs


def convert_bank(members: dict[str, bytes], docs: Path, qa: Path) -> Converted:
    """Rho-Bank: each record a Markdown file ``<id>.md``; FAQ headings become the QA set."""
    records = json.loads(gzip.decompress(members["documents"]))
    docs.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    for record in records:
        name = f"{record['id']}.md"
        text = f"# {record['title']}\n\n{record['content'].strip()}\n"
        (docs / name).write_text(text, encoding="utf-8")
        for question, answer, section in faq_pairs(text):
            rows.append(
                {
                    "id": f"bank-{len(rows) + 1:03d}",
                    "question": question,
                    "answers": [_unbullet(answer)],
                    "doc_ids": [name],
                    "answerable": True,
                    "context": section,
                }
            )
    return Converted(len(records), _write_qa(qa, rows))


def _unbullet(answer: str) -> str:
    """FAQ answers are sometimes a one-item list ("- You earn 2%."): keep the words."""
    lines = [re.sub(r"^[ \t]*[-*][ \t]+", "", line) for line in answer.splitlines()]
    return " ".join(line.strip() for line in lines if line.strip())


def convert_squad(members: dict[str, bytes], docs: Path, qa: Path) -> Converted:
    """SQuAD: each article one Markdown file whose paragraphs stay paragraphs."""
    articles = parse_squad(members["squad"], "the SQuAD file")
    docs.mkdir(parents=True)
    for article in articles:
        (docs / article.doc_id).write_text(article.markdown(), "utf-8")
    rows = (row for article in articles for row in article.questions)
    return Converted(len(articles), _write_qa(qa, rows))


def convert_counterfactual(members: dict[str, bytes], docs: Path, qa: Path) -> Converted:
    """NQ counterfactual: every context one text file; ``original_answers`` are the real ones.

    A reader that answers from the context gives ``answers``; one that answers from memory
    gives ``original_answers``, which is wrong against this corpus.
    """
    examples = json.loads(members["task"])["examples"]
    docs.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    for number, example in enumerate(examples, start=1):
        match = _NQ_INPUT.match(example["input"])
        if match is None:
            continue
        question, context = match.group(1), match.group(2)
        name = f"cf-{number:05d}.txt"
        (docs / name).write_text(context + "\n", encoding="utf-8")
        target = example["target"]
        rows.append(
            {
                "id": f"cf-{number:05d}",
                "question": question,
                "answers": [target],
                "doc_ids": [name],
                "answerable": True,
                "context": context,
                "original_answers": [a for a in example["target_scores"] if a != target],
            }
        )
    return Converted(len(rows), _write_qa(qa, rows))


CONVERTERS: dict[str, Callable[[dict[str, bytes], Path, Path], Converted]] = {
    "bank": convert_bank,
    "squad": convert_squad,
    "counterfactual": convert_counterfactual,
}
