"""The example bank: worked demonstrations that teach the model the answer format.

Each example is a question, the passages it was asked over, and the answer: short, with ``[n]``
citations, or the configured refusal when the passages do not hold it. For each question the
prompt takes the ``k`` examples most similar to it (in-context learning picks up the format and
the topic). From ``k >= 3`` one of them is always a refusal: small models seldom decline unless
shown how. Below that a refusal is shown only when it is among the most similar, because with
qwen2.5-0.5b on the bank corpus a forced refusal in a two-shot prompt doubled the answerable
questions it declined (6/10 against 3/10, `bench/answer.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.citations import parse_markers
from rag.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from rag.embed import Embedder

DEFAULT_BANK = Path(__file__).parent / "data" / "examples.jsonl"
_WORD = re.compile(r"\w+")
#: From this many demonstrations on, one of them is always a refusal.
REFUSAL_FROM = 3


@dataclass(frozen=True)
class Passage:
    """A context passage of a demonstration, shown like a retrieved block."""

    title: str
    text: str


@dataclass(frozen=True)
class Example:
    """One demonstration. An unanswerable example's answer is the refusal, whatever it is set to."""

    question: str
    passages: tuple[Passage, ...]
    answer: str = ""
    answerable: bool = True

    def answer_text(self, refusal: str) -> str:
        return self.answer if self.answerable else refusal


def parse_example(record: dict[str, object], where: str) -> Example:
    """An ``Example`` from one JSONL record; ``where`` (``file:line``) goes into errors."""
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: an example needs a non-empty 'question'")
    raw_context = record.get("context", [])
    if not isinstance(raw_context, list):
        raise ConfigError(f"{where}: 'context' must be a list of {{title, text}} passages")
    passages = []
    for item in raw_context:
        if isinstance(item, str):
            passages.append(Passage(title="", text=item))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            passages.append(Passage(title=str(item.get("title", "")), text=item["text"]))
        else:
            raise ConfigError(f"{where}: each passage must be a text or {{title, text}}")
    answerable = bool(record.get("answerable", True))
    answer = record.get("answer", "")
    if not isinstance(answer, str):
        raise ConfigError(f"{where}: 'answer' must be a text")
    if answerable:
        if not answer.strip():
            raise ConfigError(f"{where}: an answerable example needs an 'answer'")
        wrong = [n for n in parse_markers(answer) if not 1 <= n <= len(passages)]
        if wrong:
            raise ConfigError(
                f"{where}: the answer cites {wrong} but the example has {len(passages)} passages"
            )
    return Example(question.strip(), tuple(passages), answer.strip(), answerable)


def load_examples(path: Path) -> list[Example]:
    """Read a JSONL example bank; every line is checked, and errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"example bank not found: {path} (pass a JSONL file, one example a line)")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: each line must be a JSON object")
        examples.append(parse_example(record, where))
    return examples


class ExampleBank:
    """Demonstrations and the choice of the ones to show for a question.

    With an embedder, similarity is the cosine of question embeddings (the bank is embedded once,
    on first use); without one, word overlap, which keeps selection deterministic in tests.
    """

    def __init__(self, examples: Sequence[Example], embedder: Embedder | None = None) -> None:
        self.examples = list(examples)
        self.embedder = embedder
        self._vectors: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path, embedder: Embedder | None = None) -> ExampleBank:
        return cls(load_examples(path), embedder=embedder)

    @classmethod
    def default(cls, embedder: Embedder | None = None) -> ExampleBank:
        """The bank shipped with the package: generic company-document questions."""
        return cls.load(DEFAULT_BANK, embedder=embedder)

    def __len__(self) -> int:
        return len(self.examples)

    def similarities(self, question: str) -> list[float]:
        """How close each example's question is to ``question`` (same order as the bank)."""
        if not self.examples:
            return []
        if self.embedder is None:
            words = set(_WORD.findall(question.lower()))
            out = []
            for example in self.examples:
                theirs = set(_WORD.findall(example.question.lower()))
                union = words | theirs
                out.append(len(words & theirs) / len(union) if union else 0.0)
            return out
        if self._vectors is None:
            self._vectors = self.embedder.embed([e.question for e in self.examples])
        query = self.embedder.embed([question])[0]
        return [float(score) for score in self._vectors @ query]

    def select(self, question: str, k: int) -> list[Example]:
        """The ``k`` examples most similar to ``question``, most similar first.

        At most one is a refusal, and only from ``REFUSAL_FROM`` shots up: the most similar
        unanswerable example takes the place of the least similar answerable one. Refusal demos
        are persuasive; picked by similarity alone they filled most prompts for SQuAD questions
        and a small model then declined even with the gold passage in front of it.
        """
        if k < 0:
            raise ConfigError(f"the number of examples must be >= 0, got {k}")
        if k == 0 or not self.examples:
            return []
        scores = self.similarities(question)
        order = sorted(range(len(self.examples)), key=lambda i: (-scores[i], i))
        answerable = [i for i in order if self.examples[i].answerable]
        unanswerable = [i for i in order if not self.examples[i].answerable]
        chosen = answerable[:k]
        if unanswerable and k >= REFUSAL_FROM:
            chosen = [*chosen[: k - 1], unanswerable[0]]
        # A bank with too few answerable examples fills the rest with what is left.
        chosen += [i for i in order if i not in chosen][: k - len(chosen)]
        return [self.examples[i] for i in chosen]
