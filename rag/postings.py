"""Keyword postings beside the FTS5 table: its bm25 ranking computed in numpy, the same scores.

FTS5 spends most of a keyword query stepping through every row an OR-ed phrase matches and
calling ``bm25()`` on each (on 100k chunks, tens of thousands of rows per question). The same
scores take a few array operations once each term's rows and weighted frequencies are at hand:

    score(row) = sum over phrases of idf * (f * (k1 + 1)) / (f + k1 * (1 - b + b * D / avgdl))

with ``f`` the phrase's instances in the row weighted per column, ``D`` the row's tokens in all
columns, ``avgdl`` the table's tokens per row (``fts5_aux.c``, ``fts5Bm25Function``). The part
after ``idf *`` does not depend on the query, so it is computed once per posting when the file is
loaded, in the same order of operations as FTS5, and a query adds ``idf * impact`` phrase by phrase
as FTS5 does: the scores are FTS5's to the last bit.

The file (``POSTINGS`` in a generation) is written by the writer from the staged table's own
``fts5vocab`` (FTS5's tokens: the porter stemmer included) before the generation is published,
so it is as crash-safe as the rest of the generation. A query word is turned into FTS5's token by
the same tokenizer; a word that is not exactly one token, or an index without the file (built
before it existed), is left to FTS5.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rag.errors import IndexCorrupt
from rag.store_layout import FTS_TOKENIZE

if TYPE_CHECKING:
    import numpy as np

#: FTS5's bm25 constants (fts5_aux.c).
BM25_K1 = 1.2
BM25_B = 0.75
#: The weight of each FTS5 column (text, headings) in a phrase's frequency.
WEIGHTS = (1.0, 0.5)
_COLUMNS = ("text", "headings")
#: A phrase in 1/LATER of the rows or more is added last, to the rows that can reach the top k.
LATER = 2
#: Words whose FTS5 tokens a tokenizer remembers (then it starts over).
_TOKENS_CACHED = 50_000

Rows = list[tuple[int, float]]


@dataclass(frozen=True)
class Phrase:
    """A query phrase's postings (``start:end`` in the arrays) and its idf."""

    start: int
    end: int
    idf: float


def idf(hits: int, rows: int) -> float:
    """FTS5's bm25 idf of a phrase matching ``hits`` of ``rows`` rows."""
    return max(math.log((rows - hits + 0.5) / (hits + 0.5)), 1e-6)


def _varints(blob: bytes) -> list[int]:
    """SQLite's varints (big-endian, 7 bits a byte, the 9th byte whole), as FTS5 stores sizes."""
    values, at = [], 0
    while at < len(blob):
        value = 0
        for n in range(9):
            byte = blob[at]
            at += 1
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    return values


def write_postings(db: sqlite3.Connection, out: BinaryIO) -> None:
    """Write the postings of the ``chunks_fts`` table that ``db`` holds (committed) to ``out``."""
    import numpy as np

    db.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_rows USING fts5vocab(main, chunks_fts, row)"
    )
    db.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_instances "
        "USING fts5vocab(main, chunks_fts, instance)"
    )
    sizes = db.execute("SELECT id, sz FROM chunks_fts_docsize ORDER BY id").fetchall()
    rowids = np.asarray([row for row, _ in sizes], dtype=np.int64)
    lengths = np.asarray([sum(_varints(size)) for _, size in sizes], dtype=np.int64)
    averages = db.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
    # The averages record: rows, then each column's tokens (what xColumnTotalSize reads).
    # (An empty table's record may be empty: no rows, no tokens.)
    counts = (_varints(averages[0]) if averages else []) or [0]
    terms = [term for (term,) in db.execute("SELECT term FROM temp.fts_rows ORDER BY term")]
    offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    rows, freqs = [], []
    weight = np.asarray(WEIGHTS)
    # One string per term: SQLite loops over the instances, not Python.
    sql = "SELECT group_concat(doc * 2 + (col = ?)) FROM temp.fts_instances WHERE term = ?"
    for n, term in enumerate(terms):
        (codes,) = db.execute(sql, (_COLUMNS[1], term)).fetchone()
        code = np.asarray(codes.split(","), dtype=np.int64)
        docs, first = np.unique(code >> 1, return_inverse=True)
        rows.append(np.searchsorted(rowids, docs).astype(np.int32))
        freqs.append(np.bincount(first, weights=weight[code & 1]).astype(np.float32))
        offsets[n + 1] = offsets[n] + len(docs)
    vocabulary = "\n".join(terms).encode()
    if any("\n" in term for term in terms):
        raise IndexCorrupt("an FTS5 token holds a newline; rebuild with `rag ingest --reindex`")
    np.savez(
        out,
        rowids=rowids,
        lengths=lengths,
        total=np.asarray([*counts[:1], sum(counts[1:])], dtype=np.int64),
        vocabulary=np.frombuffer(vocabulary, dtype=np.uint8),
        offsets=offsets,
        rows=np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32),
        freqs=np.concatenate(freqs) if freqs else np.zeros(0, dtype=np.float32),
    )


class Tokenizer:
    """Query words to FTS5's tokens (the index's tokenizer, on a private in-memory table)."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            f"CREATE VIRTUAL TABLE words USING fts5(word, tokenize = {FTS_TOKENIZE!r})"
        )
        self._db.execute("CREATE VIRTUAL TABLE tokens USING fts5vocab(words, instance)")
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str, ...]] = {}

    def tokens(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        """Each word's tokens, in order."""
        # Read through a local dict: another thread may clear the shared one meanwhile.
        known = {w: t for w in words if (t := self._known.get(w)) is not None}
        new = [w for w in dict.fromkeys(words) if w not in known]
        if new:
            with self._lock:
                self._db.executemany(
                    "INSERT INTO words (rowid, word) VALUES (?, ?)", enumerate(new, 1)
                )
                found: dict[int, list[str]] = {n: [] for n in range(1, len(new) + 1)}
                rows = "SELECT doc, term FROM tokens ORDER BY doc, offset"
                for doc, term in self._db.execute(rows):
                    found[doc].append(term)
                self._db.execute("DELETE FROM words")
                if len(self._known) >= _TOKENS_CACHED:
                    self._known.clear()
                fresh = {w: tuple(found[n]) for n, w in enumerate(new, 1)}
                self._known.update(fresh)
            known.update(fresh)
        return [known[w] for w in words]


class Postings:
    """The postings of one published generation, loaded from ``path``; thread-safe."""

    def __init__(self, path: Path, tokenizer: Tokenizer) -> None:
        import numpy as np

        try:
            with np.load(path) as data:
                self.rowids = data["rowids"]
                lengths = data["lengths"].astype(np.float64)
                rows_total, tokens_total = (int(x) for x in data["total"])
                vocabulary = data["vocabulary"].tobytes().decode()
                self.offsets = data["offsets"]
                self.rows = data["rows"]
                freqs = data["freqs"].astype(np.float64)
        except (OSError, ValueError, KeyError) as error:
            raise IndexCorrupt(
                f"{path} is unreadable ({error}); rebuild with `rag ingest ... --reindex`"
            ) from None
        self.count = rows_total
        terms = vocabulary.split("\n") if vocabulary else []
        if len(self.rowids) != rows_total or len(self.offsets) != len(terms) + 1:
            raise IndexCorrupt(f"{path} disagrees with itself; rebuild with `rag ingest --reindex`")
        self._terms = {term: n for n, term in enumerate(terms)}
        self._tokenizer = tokenizer
        avgdl = tokens_total / rows_total if rows_total else 1.0
        # fts5Bm25Function's expression, operation for operation (the scores stay bitwise FTS5's).
        k1, b = BM25_K1, BM25_B
        norm = lengths[self.rows]
        self.impact = (freqs * (k1 + 1.0)) / (freqs + k1 * (1 - b + b * norm / avgdl))

    def search(self, words: Sequence[str], k: int, allowed: set[int] | None) -> Rows | None:
        """``(rowid, bm25)`` of the full OR query of ``words``, best first (ties by rowid), or
        None when a word is not exactly one FTS5 token (FTS5 runs the query then)."""
        import numpy as np

        tokens = self._tokenizer.tokens(words)
        if any(len(t) != 1 for t in tokens):
            return None
        if not len(self.rowids):
            return []
        phrases = []
        for (token,) in tokens:
            term = self._terms.get(token)
            if term is not None:
                start, end = int(self.offsets[term]), int(self.offsets[term + 1])
                phrases.append(Phrase(start, end, idf(end - start, self.count)))
        within = None
        if allowed is not None:
            wanted = np.sort(np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
            at = np.searchsorted(self.rowids, wanted).clip(0, len(self.rowids) - 1)
            within = at[self.rowids[at] == wanted]
        # A phrase in half the rows or more adds at most 1e-6 * (k1 + 1) (its idf is clamped):
        # the rows that can be in the top k are found without it, then scored in full.
        common = [p for p in phrases if LATER * (p.end - p.start) >= self.count]
        bound = (BM25_K1 + 1) * sum(p.idf for p in common)
        if common and len(common) < len(phrases):
            found = self._top(phrases, [p for p in phrases if p not in common], k, within, bound)
            if found is not None:
                return found
        found = self._top(phrases, phrases, k, within, 0.0)
        assert found is not None  # with nothing left out there is no bound to fail
        return found

    def _top(
        self,
        phrases: list[Phrase],
        scored: list[Phrase],
        k: int,
        within: np.ndarray | None,
        bound: float,
    ) -> Rows | None:
        """The top ``k`` by ``phrases``, among the rows that ``scored`` (the phrases but some
        adding at most ``bound`` in all) ranks within ``bound`` of its k-th; None when a row
        matching only the others could be in the top k."""
        import numpy as np

        scores = np.zeros(len(self.rowids))
        for p in scored:
            scores[self.rows[p.start : p.end]] += p.idf * self.impact[p.start : p.end]
        found = np.flatnonzero(scores) if within is None else within[scores[within] > 0]
        values = scores[found]
        if bound:
            if len(found) < k:
                return None
            kth = float(-np.partition(-values, k - 1)[k - 1])
            # A margin far above rounding: a row left out scores below the k-th for sure.
            floor = kth - bound - 1e-9 * kth
            if floor <= 0:
                return None
            found = found[values >= floor]
            values = self._scores(found, phrases)
        if len(found) > k:
            kth = float(-np.partition(-values, k - 1)[k - 1])
            keep = values >= kth
            found, values = found[keep], values[keep]
        order = np.lexsort((self.rowids[found], -values))[:k]
        return list(zip(self.rowids[found[order]].tolist(), values[order].tolist(), strict=True))

    def _scores(self, found: np.ndarray, phrases: list[Phrase]) -> np.ndarray:
        """The scores of the rows at positions ``found`` (ascending), phrase by phrase in order
        (as FTS5 adds them: the same bits as scoring every row)."""
        import numpy as np

        scores = np.zeros(len(found))
        for p in phrases:
            rows = self.rows[p.start : p.end]
            at = np.searchsorted(rows, found).clip(0, len(rows) - 1)
            hit = rows[at] == found
            scores[hit] += p.idf * self.impact[p.start + at[hit]]
        return scores
