"""Keyword search over an index's FTS5 table: user text to safe phrases, ranked by bm25.

FTS5 scores every row an OR-ed phrase matches before it keeps the best ``k``, so a word found in
most rows makes it score most of the table (on 100k chunks that was most of a query's time).
Two exact savings, both from bm25's own formula, which FTS5 computes as

    score = sum over phrases of idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len / avglen))
    idf = log((N - n + 0.5) / (n + 0.5)), clamped to 1e-6 when not positive

with ``n`` the rows the phrase matches, ``N`` the rows in all, ``k1 = 1.2``:

- a phrase in half the rows or more has its idf clamped to 1e-6: it adds nothing to a score, so
  when the other phrases alone fill the top ``k``, those rows are the top ``k`` and the common
  phrase is left out of the match; when they do not (a small index, where every word is in half
  the rows, or a query of common words), the full query runs, so a row holding only common
  phrases is still found;
- each phrase adds less than ``idf * (k1 + 1)``, so a row holding only common phrases (in more
  than a fifth of the rows) scores below the sum of those bounds; when ``k`` rows holding a rarer
  phrase score above it, they are the top ``k``, and the rows with only common phrases are never
  scored. The rows holding a rarer phrase are found in two queries (with and without a common
  phrase) that still name every phrase, so each row's score is the one the full query gives.

An index whose generation holds keyword postings (``rag.postings``) skips FTS5 altogether: the
full OR query's scores come from numpy, the same to the last bit, in a fraction of the time.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.postings import BM25_K1, WEIGHTS, Postings, Rows, Tokenizer, idf

_WORD = re.compile(r"\w+", re.UNICODE)
#: Words too common to help a keyword match; dropped unless the query has nothing else.
_STOPWORDS_TEXT = (
    "a an and are as at be by can do does for from how i in is it my of on or the to was "
    "what when where which who why will with you your"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_MAX_QUERY_TERMS = 32
#: Phrases whose row counts a searcher remembers (then it starts over).
_HITS_CACHED = 50_000
#: A phrase in more than 1/COMMON of the rows is common: rows holding only such are scored last.
#: (A phrase adds less than idf * (k1 + 1) to a score.)
COMMON = 5
#: bm25 with the text column at full weight and the headings at half.
_BM25 = f"bm25(chunks_fts, {WEIGHTS[0]}, {WEIGHTS[1]})"

Query = Callable[[str, Sequence[Any]], list[Any]]


def query_words(text: str) -> list[str]:
    """The words of user text a keyword search looks for: lowercased, once each, stopwords
    dropped unless that leaves nothing, at most ``_MAX_QUERY_TERMS``."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    content = [w for w in words if w not in _STOPWORDS] or words
    return content[:_MAX_QUERY_TERMS]


def fts_terms(text: str) -> list[str]:
    """User text as safe FTS5 phrases: ``query_words``, each quoted.

    Quotes, operators (AND, NEAR, ``*``, ``:``) and parentheses lose their meaning, so no input
    can raise a syntax error.
    """
    return _phrases(query_words(text))


def _phrases(words: Sequence[str]) -> list[str]:
    """Each word as a quoted FTS5 phrase."""
    return [f'"{w}"' for w in words]


class KeywordSearcher:
    """bm25 search over the ``chunks_fts`` table of one published (never changing) generation.

    ``query`` runs one SQL statement on the index's connection and returns its rows;
    ``postings`` is the generation's postings file, used when it exists (loaded on first use).
    """

    def __init__(self, query: Query, postings: Path | None = None) -> None:
        self._query = query
        self._hits: dict[str, int] = {}
        self._rows: int | None = None
        self._postings_path = postings
        self._postings: Postings | None = None
        self._loading = threading.Lock()

    def postings(self) -> Postings | None:
        """The generation's postings, or None when it has none (written before they existed)."""
        path = self._postings_path
        if self._postings is None and path is not None and path.is_file():
            with self._loading:
                if self._postings is None:
                    self._postings = Postings(path, Tokenizer())
        return self._postings

    def rows(self) -> int:
        if self._rows is None:
            self._rows = int(self._query("SELECT count(*) FROM chunks_fts", ())[0][0])
        return self._rows

    def phrase_hits(self, phrase: str) -> int:
        """How many rows ``phrase`` matches (bm25's ``n``), remembered."""
        hits = self._hits.get(phrase)
        if hits is None:
            sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
            hits = int(self._query(sql, (phrase,))[0][0])
            if len(self._hits) >= _HITS_CACHED:
                self._hits.clear()
            self._hits[phrase] = hits
        return hits

    def search(self, text: str, k: int, allowed: set[int] | None = None) -> Rows:
        """``(chunk id, score)`` pairs, best first, higher is better; any user text is safe."""
        words = query_words(text)
        if not words or k <= 0 or (allowed is not None and not allowed):
            return []
        postings = self.postings()
        if postings is not None:
            ranked = postings.search(words, k, allowed)
            if ranked is not None:
                return ranked
        terms = _phrases(words)
        rows = self.rows()
        only = None if allowed is None else json.dumps(sorted(allowed))
        useful = [t for t in terms if 2 * self.phrase_hits(t) < rows]
        found: Rows = []
        if useful and len(useful) < len(terms):
            found = self._ranked(useful, k, only)
        if len(found) < k:
            found = self._ranked(terms, k, only)
        return [(rowid, -score) for rowid, score in found]

    def _ranked(self, terms: list[str], k: int, only: str | None) -> Rows:
        found = self._rarer_first(terms, k, only)
        return found if found is not None else self._bm25(" OR ".join(terms), k, only)

    def _rarer_first(self, terms: list[str], k: int, only: str | None) -> Rows | None:
        """The top ``k`` from the rows holding a rarer phrase, or None when that is not provably
        the top ``k`` (or there is no common phrase to skip)."""
        rows = self.rows()
        common = [t for t in terms if COMMON * self.phrase_hits(t) > rows]
        rarer = [t for t in terms if t not in common]
        if not common or not rarer:
            return None
        some, many = " OR ".join(rarer), " OR ".join(common)
        found = self._bm25(f"({some}) AND ({many})", k, only)
        found += self._bm25(f"({some}) NOT ({many})", k, only)
        found = sorted(found, key=lambda row: (row[1], row[0]))[:k]
        ceiling = (BM25_K1 + 1) * sum(idf(self.phrase_hits(t), rows) for t in common)
        # FTS5's scores are negated bm25 (lower is better); a margin for rounding.
        if len(found) < k or -found[-1][1] <= ceiling * (1 + 1e-9):
            return None
        return found

    def _bm25(self, match: str, k: int, only: str | None) -> Rows:
        """``(rowid, FTS5 score)``, lowest score first, among the rowids in the JSON list
        ``only`` when given."""
        sql = f"SELECT rowid, {_BM25} AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
        params: list[Any] = [match]
        if only is not None:
            sql += " AND rowid IN (SELECT value FROM json_each(?))"
            params.append(only)
        sql += " ORDER BY s LIMIT ?"
        params.append(k)
        return [(int(rowid), float(score)) for rowid, score in self._query(sql, params)]
