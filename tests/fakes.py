"""Deterministic stand-ins for the heavy stages, for tests of logic.

`FakeIndex` is an in-memory `SearchIndex` for retrieval logic. `FakeEmbedder` hashes words into a
fixed-size bag-of-words vector, so texts that share words are near each other and results never
change between runs. `ScriptedGenerator` answers from a script (a function of the messages, or a
fixed list of replies) and streams word by word.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from rag.embed import Embedder
from rag.generate.base import Delta, GenerationConfig, Generator
from rag.search_index import SearchIndex
from rag.store_layout import Manifest
from rag.types import Chunk, Message

_WORD = re.compile(r"\w+")


class FakeEmbedder(Embedder):
    def __init__(self, dimension: int = 64, name: str = "fake") -> None:
        self.dimension = dimension
        self.name = name
        self.calls = 0
        self.texts_embedded = 0

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            if norm == 0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out


Script = Callable[[Sequence[Message]], str]


class ScriptedGenerator(Generator):
    """Replies with ``script(messages)`` or the next of ``replies``; records every prompt."""

    def __init__(
        self,
        script: Script | None = None,
        replies: Sequence[str] = (),
        context_window: int = 2048,
        name: str = "scripted",
    ) -> None:
        self.script = script
        self.replies = list(replies)
        self.context_window = context_window
        self.name = name
        self.prompts: list[list[Message]] = []

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + text.count("[")

    def _reply(self, messages: Sequence[Message]) -> str:
        if self.script is not None:
            return self.script(messages)
        if self.replies:
            return self.replies.pop(0)
        return "I don't know."

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
        self.prompts.append(list(messages))
        words = self._reply(messages).split(" ")[: config.max_new_tokens]
        text = " ".join(words)
        for stop in config.stop:
            if stop in text:
                text = text[: text.index(stop)]
        pieces = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
        for piece in pieces[:-1]:
            yield Delta(text=piece)
        finish = "length" if len(words) >= config.max_new_tokens else "stop"
        yield Delta(
            text=pieces[-1] if pieces else "",
            finish_reason=finish,
            prompt_tokens=self.count_prompt_tokens(messages),
            completion_tokens=len(words),
        )


class FakeIndex(SearchIndex):
    """In memory: exact cosine search over the embedder's vectors, and keyword search scoring
    the query words a chunk contains (a ranking different from the dense one)."""

    def __init__(self, chunks: Sequence[Chunk], embedder: Embedder) -> None:
        self.chunks = {c.id: c for c in chunks}
        self.ids = [c.id for c in chunks]
        self.vectors = embedder.embed([c.text for c in chunks])
        self.manifest = Manifest(
            embedder=embedder.name, dimension=embedder.dimension, chunk_tokens=256, chunk_overlap=0
        )
        self.dense_calls: list[tuple[int, set[int] | None]] = []

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        return [self.chunks[i] for i in ids if i in self.chunks]

    def all_chunks(self) -> Iterator[Chunk]:
        yield from self.chunks.values()

    def dense_search(
        self, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        self.dense_calls.append((k, allowed))
        scores = self.vectors @ vector
        ranked = sorted(range(len(self.ids)), key=lambda i: -scores[i])
        out = [(self.ids[i], float(scores[i])) for i in ranked]
        return [(i, s) for i, s in out if allowed is None or i in allowed][:k]

    def similarities(self, vector: np.ndarray, ids: Iterable[int]) -> list[tuple[int, float]]:
        rows = {chunk_id: row for row, chunk_id in enumerate(self.ids)}
        return [(i, float(self.vectors[rows[i]] @ vector)) for i in ids if i in rows]

    def keyword_search(
        self, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        words = set(_WORD.findall(query.lower()))
        out = []
        for chunk_id in self.ids:
            if allowed is not None and chunk_id not in allowed:
                continue
            score = len(words & set(_WORD.findall(self.chunks[chunk_id].text.lower())))
            if score:
                out.append((chunk_id, float(score)))
        out.sort(key=lambda pair: -pair[1])
        return out[:k]

    def chunk_ids_matching(
        self, source_glob: str | None = None, doc_ids: Sequence[str] | None = None
    ) -> set[int]:
        return {
            c.id
            for c in self.chunks.values()
            if (source_glob is None or fnmatch.fnmatch(c.source, source_glob))
            and (not doc_ids or c.doc_id in doc_ids)
        }
