"""Retrieval: dense (FAISS), keyword (SQLite FTS5 BM25), and their fusion.

Dense search finds paraphrases, keyword search finds exact names and codes; reciprocal rank
fusion combines the two rankings without having to calibrate cosine against BM25. A relevance
floor on the dense cosine lets a question the corpus does not cover retrieve nothing, so the
pipeline can refuse instead of answering from unrelated passages. MMR trades a little relevance
for diversity when the top passages repeat each other.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from rag.errors import ConfigError
from rag.types import Hit

if TYPE_CHECKING:
    import numpy as np

    from rag.embed import Embedder
    from rag.search_index import SearchIndex

SearchMode = Literal["hybrid", "dense", "keyword"]
#: ``(chunk id, score)`` pairs, best first, as a ranker returns them.
Hits = list[tuple[int, float]]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "dense", "keyword")


def parse_mode(mode: str) -> SearchMode:
    """``mode`` checked against the known search modes (for values from the CLI or HTTP)."""
    if mode in SEARCH_MODES:
        return cast(SearchMode, mode)
    raise ConfigError(f"Unknown search mode: {mode} (known: {', '.join(SEARCH_MODES)})")


#: The constant of reciprocal rank fusion (Cormack et al., 2009): 1 / (RRF_K + rank).
RRF_K = 60


@dataclass(frozen=True)
class Fused:
    """A chunk id with its fused score and its rank in each ranking that returned it."""

    chunk_id: int
    score: float
    ranks: dict[str, int] = field(default_factory=dict)


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[int]], k: int = RRF_K) -> list[Fused]:
    """Fuse ranked id lists: each list adds ``1 / (k + rank)`` to its ids; best first.

    Ties keep the order in which ids were first seen (the first ranking wins).
    """
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, ids in rankings.items():
        for rank, chunk_id in enumerate(ids, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(chunk_id, {})[name] = rank
    order = sorted(scores, key=lambda i: -scores[i])
    return [Fused(i, scores[i], ranks[i]) for i in order]


def mmr_select(
    query: np.ndarray, candidates: np.ndarray, k: int, diversity: float = 0.3
) -> list[int]:
    """Maximal marginal relevance: pick ``k`` rows of ``candidates`` (positions, in pick order).

    Each pick maximizes ``(1 - diversity) * sim(query, c) - diversity * max sim(c, picked)``;
    rows are normalized, so dot products are cosines. ``diversity=0`` is plain relevance order.
    """
    import numpy as np

    if not 0.0 <= diversity <= 1.0:
        raise ConfigError(f"MMR diversity must be in [0, 1], got {diversity}")
    relevance = candidates @ query
    similarity = candidates @ candidates.T
    picked: list[int] = []
    remaining = list(range(len(candidates)))
    while remaining and len(picked) < k:
        if picked:
            redundancy = similarity[np.ix_(remaining, picked)].max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        gains = (1 - diversity) * relevance[remaining] - diversity * redundancy
        best = remaining[int(np.argmax(gains))]
        picked.append(best)
        remaining.remove(best)
    return picked


class Retriever:
    """Searches one index with the embedder it was built with.

    ``pool`` is how many candidates each ranker returns per wanted hit before fusion, MMR and the
    floor cut them down to ``k``. With ``parallel``, a hybrid search runs the keyword search on a
    second thread while this one encodes the query and searches the vectors (it needs no vector;
    SQLite, numpy, ONNX Runtime and FAISS release the GIL): the same hits, sooner on two cores.
    """

    def __init__(
        self,
        index: SearchIndex,
        embedder: Embedder,
        *,
        pool: int = 4,
        rrf_k: int = RRF_K,
        diversity: float = 0.3,
        parallel: bool = True,
    ) -> None:
        if pool < 1:
            raise ConfigError(f"pool must be >= 1, got {pool}")
        self.index = index
        self.embedder = embedder
        self.pool = pool
        self.rrf_k = rrf_k
        self.diversity = diversity
        self.parallel = parallel
        self._checked = False
        self._helper: ThreadPoolExecutor | None = None
        self._helper_lock = threading.Lock()

    def _keyword_beside(self, query: str, k: int, allowed: set[int] | None) -> Future[Hits]:
        """``index.keyword_search`` started on a helper thread (the pool is made on first use;
        concurrent searches, a server's, each get a thread up to the pool's default size)."""
        with self._helper_lock:
            if self._helper is None:
                self._helper = ThreadPoolExecutor(thread_name_prefix="rag-keyword")
        return self._helper.submit(self.index.keyword_search, query, k, allowed)

    def _embed_query(self, query: str) -> np.ndarray:
        vector = self.embedder.embed([query])[0]
        if not self._checked:
            self.index.manifest.require_embedder(dimension=vector.shape[0])
            self._checked = True
        return vector

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: SearchMode = "hybrid",
        source_glob: str | None = None,
        doc_ids: Sequence[str] = (),
        min_score: float | None = None,
        mmr: bool = False,
    ) -> list[Hit]:
        """The best ``k`` hits for ``query``; fewer (or none) when the floor or filters cut."""
        parse_mode(mode)
        if k < 0:
            raise ConfigError(f"k must be >= 0, got {k}")
        if k == 0 or not query.strip():
            return []
        allowed: set[int] | None = None
        if source_glob or doc_ids:
            allowed = self.index.chunk_ids_matching(
                source_glob=source_glob, doc_ids=doc_ids or None
            )
            if not allowed:
                return []
        wide = k * self.pool if (mode == "hybrid" or mmr) else k
        vector = None
        beside = None
        if self.parallel and mode == "hybrid":
            beside = self._keyword_beside(query, wide, allowed)
        try:
            if mode != "keyword" or min_score is not None or mmr:
                vector = self._embed_query(query)
            dense: Hits = []
            if vector is not None and mode != "keyword":
                dense = self.index.dense_search(vector, wide, allowed)
        except BaseException:
            if beside is not None:  # no search outlives the call; this error is the one raised
                wait([beside])
            raise
        keyword: Hits = []
        if beside is not None:
            keyword = beside.result()
        elif mode != "dense":
            keyword = self.index.keyword_search(query, wide, allowed)
        cosines = dict(dense)
        bm25 = dict(keyword)
        if vector is not None and min_score is not None:
            missing = [i for i, _ in keyword if i not in cosines]
            if missing:
                cosines.update(self.index.similarities(vector, missing))

        if mode == "hybrid":
            fused = reciprocal_rank_fusion(
                {"dense": [i for i, _ in dense], "keyword": [i for i, _ in keyword]}, self.rrf_k
            )
        else:
            ranked = dense if mode == "dense" else keyword
            fused = [Fused(i, score, {mode: r}) for r, (i, score) in enumerate(ranked, 1)]
        if min_score is not None:
            fused = [f for f in fused if cosines.get(f.chunk_id, float("-inf")) >= min_score]
        if not fused:
            return []
        if not mmr:
            fused = fused[:k]

        # A chunk removed by a concurrent write is simply left out.
        found_chunks = {c.id: c for c in self.index.get_chunks([f.chunk_id for f in fused])}
        fused = [f for f in fused if f.chunk_id in found_chunks]
        chunks = [found_chunks[f.chunk_id] for f in fused]
        order = list(range(len(fused)))
        if mmr and vector is not None and len(fused) > 1:
            vectors = self.embedder.embed([c.text for c in chunks])
            order = mmr_select(vector, vectors, k, self.diversity)
        hits = []
        for position in order[:k]:
            found = fused[position]
            scores = {}
            if found.chunk_id in cosines:
                scores["dense"] = float(cosines[found.chunk_id])
            if found.chunk_id in bm25:
                scores["keyword"] = float(bm25[found.chunk_id])
            hits.append(
                Hit(chunk=chunks[position], score=found.score, ranks=found.ranks, scores=scores)
            )
        return hits


def open_retriever(
    index_dir: Path, device: str | None = None, cache_dir: Path | None = None
) -> Retriever:
    """Open the index at ``index_dir`` with the embedder named in its manifest."""
    from rag.embed import load_embedder
    from rag.store import Index

    index = Index.open(Path(index_dir))
    embedder = load_embedder(index.manifest.embedder, device=device, cache_dir=cache_dir)
    return Retriever(index, embedder)
