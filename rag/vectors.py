"""Vector indexes: one small interface (``search``), four FAISS implementations.

Every implementation wraps its FAISS index in an ``IndexIDMap2`` so the ids FAISS returns are the
chunk ids in SQLite. ``flat`` is exact inner product (cosine on normalized vectors) and the
default; ``flat-fp16`` scans the same way over half-precision copies (half the bytes);
``hnsw`` and ``ivf`` trade a little recall for speed on large corpora. HNSW cannot remove
vectors and IVF under an id map cannot either (its inner ids would no longer match), so both
rebuild themselves from their own stored vectors on removal: writes are whole snapshots anyway
(see ``rag.store``), so a rebuild costs no extra I/O.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rag.errors import ConfigError, IndexCorrupt

if TYPE_CHECKING:
    import numpy as np

#: Below this many allowed ids an approximate index searches them exactly instead: a filter that
#: keeps few ids makes graph or cluster search miss most of them.
EXACT_FILTER_LIMIT = 20_000


def _faiss() -> Any:
    """FAISS, imported on first use (its partial type stubs reject valid keyword arguments)."""
    import faiss

    return faiss


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread for the block (this calling thread only; restored after).

    One query vector is microseconds of work at the bank index: split over OpenMP threads it
    waits on the others, and on a busy 2-core machine a stalled thread turned 0.1 ms into 7 ms.
    OpenMP's thread count is per calling thread, so concurrent searches do not disturb each other
    and a batch add elsewhere keeps all its threads.
    """
    faiss = _faiss()

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex(ABC):
    """Nearest neighbours by inner product over normalized float32 vectors, keyed by int ids."""

    kind: ClassVar[str]
    #: Whether a search may miss a better vector (graphs, cells): a filter that keeps few ids is
    #: then searched exactly instead.
    approximate: ClassVar[bool] = True

    @abstractmethod
    def search(
        self, query: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best ``(id, score)`` pairs for one query vector, best first.

        ``allowed`` restricts the result to those ids (an empty set gives no results).
        """


class FaissIndex(VectorIndex):
    """The shared FAISS plumbing: an ``IndexIDMap2`` around an implementation's inner index.

    Adds the write side the store needs (``add``, ``remove``, ``ids``, ``vectors``); an
    implementation only chooses its inner index and its search-time parameters.
    """

    def __init__(self, dimension: int, index: Any | None = None) -> None:
        if dimension <= 0:
            raise ConfigError(f"vector dimension must be positive, got {dimension}")
        self.dimension = dimension
        self._index = index if index is not None else self._empty(0)

    # -- what an implementation chooses -------------------------------------------------------

    @abstractmethod
    def _make_inner(self, expected: int) -> Any:
        """A new, empty inner FAISS index sized for about ``expected`` vectors."""

    def _search_params(self, selector: Any | None, k: int) -> Any:
        faiss = _faiss()

        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _after_add(self) -> None:
        """Hook for implementations that keep side structures up to date."""

    # -- shared behaviour ---------------------------------------------------------------------

    def _empty(self, expected: int) -> Any:
        faiss = _faiss()

        return faiss.IndexIDMap2(self._make_inner(expected))

    @property
    def faiss_index(self) -> Any:
        """The ``IndexIDMap2`` itself (for saving)."""
        return self._index

    def ids(self) -> np.ndarray:
        faiss = _faiss()

        return faiss.vector_to_array(self._index.id_map).astype("int64", copy=False)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ConfigError(
                f"vectors have shape {vectors.shape}; this index holds {self.dimension}-d vectors"
            )
        if len(ids) != len(vectors):
            raise ConfigError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids) == 0:
            return
        self._add(ids, vectors)
        self._after_add()

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: Iterable[int]) -> None:
        import numpy as np

        drop = np.fromiter(ids, dtype=np.int64)
        if len(drop) == 0:
            return
        self._index.remove_ids(drop)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors for ``ids`` (each must be present)."""
        import numpy as np

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)

    def similarities(self, query: np.ndarray, ids: Iterable[int]) -> list[tuple[int, float]]:
        """``(id, inner product)`` of ``query`` with the stored vector of each of ``ids``.

        Ids not in the index are left out; the order is that of ``ids``. A dot product with a few
        stored vectors, where a filtered search would scan the index again.
        """
        import numpy as np

        wanted = np.fromiter(ids, dtype=np.int64)
        if len(wanted) == 0 or len(self) == 0:
            return []
        # FAISS reconstructs a batch on all its threads: 0.38 ms for 20 vectors, 0.013 on one.
        with one_thread():
            try:
                stored = self.vectors(wanted)
            except RuntimeError:  # an id FAISS does not hold: find which, one by one
                present = [i for i in wanted if self._holds(int(i))]
                wanted = np.asarray(present, dtype=np.int64)
                stored = self.vectors(wanted)
        scores = stored @ np.asarray(query, dtype=np.float32).reshape(-1)
        return [(int(i), float(s)) for i, s in zip(wanted, scores, strict=True)]

    def _holds(self, chunk_id: int) -> bool:
        try:
            self._index.reconstruct(chunk_id)
        except RuntimeError:
            return False
        return True

    def _rebuild_without(self, drop: np.ndarray) -> None:
        """Rebuild from the kept vectors: for inner indexes that cannot remove in place."""
        import numpy as np

        all_ids = self.ids()
        keep = all_ids[~np.isin(all_ids, drop)]
        kept_vectors = self.vectors(keep)
        self._index = self._empty(len(keep))
        if len(keep):
            self._add(keep, kept_vectors)
            self._after_add()

    def search(
        self, query: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        import numpy as np

        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        if q.shape[1] != self.dimension:
            raise ConfigError(
                f"query vector has {q.shape[1]} dimensions; this index holds {self.dimension}"
            )
        if len(self) == 0 or (allowed is not None and not allowed):
            return []
        with one_thread():
            return self._search_one(q, k, allowed)

    def _search_one(
        self, q: np.ndarray, k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        faiss = _faiss()
        import numpy as np

        selector = None
        if allowed is not None:
            wanted = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
            if self.approximate and len(wanted) <= EXACT_FILTER_LIMIT:
                return self._exact(q[0], wanted, k)
            selector = faiss.IDSelectorBatch(wanted)
        k_eff = min(k, len(self))
        params = self._search_params(selector, k_eff)
        if params is None:
            scores, ids = self._index.search(q, k_eff)
        else:
            scores, ids = self._index.search(q, k_eff, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def _exact(self, query: np.ndarray, wanted: np.ndarray, k: int) -> list[tuple[int, float]]:
        import numpy as np

        present = wanted[np.isin(wanted, self.ids())]
        if len(present) == 0:
            return []
        scores = self.vectors(present) @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(present[i]), float(scores[i])) for i in order]


class FlatIndex(FaissIndex):
    """Exact search: every vector scored. Right for up to a few hundred thousand chunks."""

    kind = "flat"
    approximate = False

    def _make_inner(self, expected: int) -> Any:
        faiss = _faiss()

        return faiss.IndexFlatIP(self.dimension)


class FlatFp16Index(FlatIndex):
    """Every vector scored, stored in half precision: half the bytes a query scans.

    At 100k MiniLM vectors on one thread a query took 1.65-1.79x less time than ``flat`` and
    kept 0.999 of its top 10 (scores move by about 1e-4). Converting back to ``flat`` keeps the
    half-precision values.
    """

    kind = "flat-fp16"

    def _make_inner(self, expected: int) -> Any:
        faiss = _faiss()

        return faiss.IndexScalarQuantizer(
            self.dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )


class HNSWIndex(FaissIndex):
    """A navigable small-world graph: fast approximate search, no training, no in-place removal."""

    kind = "hnsw"
    M = 32
    EF_CONSTRUCTION = 80
    EF_SEARCH = 64

    def _make_inner(self, expected: int) -> Any:
        faiss = _faiss()

        inner = faiss.IndexHNSWFlat(self.dimension, self.M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = self.EF_CONSTRUCTION
        return inner

    def _search_params(self, selector: Any | None, k: int) -> Any:
        faiss = _faiss()

        params = faiss.SearchParametersHNSW(efSearch=max(self.EF_SEARCH, 2 * k))
        if selector is not None:
            params.sel = selector
        return params

    def remove(self, ids: Iterable[int]) -> None:
        import numpy as np

        drop = np.fromiter(ids, dtype=np.int64)
        if len(drop):
            self._rebuild_without(drop)


class IVFIndex(FaissIndex):
    """Inverted lists over k-means cells: approximate, needs training, retrained as it grows.

    The cell count follows the corpus (about ``sqrt(n)``); when the vector count drifts a factor
    of four from what the cells were trained on, the index retrains on everything it holds.
    """

    kind = "ivf"
    NPROBE = 16
    #: FAISS wants about this many training points per cell.
    POINTS_PER_CELL = 39

    def _cells_for(self, n: int) -> int:
        return max(1, min(int(math.sqrt(max(n, 1))), n // self.POINTS_PER_CELL or 1))

    def _make_inner(self, expected: int) -> Any:
        faiss = _faiss()

        quantizer = faiss.IndexFlatIP(self.dimension)
        return faiss.IndexIVFFlat(
            quantizer, self.dimension, self._cells_for(expected), faiss.METRIC_INNER_PRODUCT
        )

    def _inner(self) -> Any:
        faiss = _faiss()

        return faiss.extract_index_ivf(self._index)

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        total = len(self) + len(ids)
        inner = self._inner()
        # Cells grow with sqrt(n): twice the cells means the corpus grew about fourfold.
        retrain = not inner.is_trained or self._cells_for(total) > 2 * inner.nlist
        if retrain and len(self):
            old_ids = self.ids()
            old = self.vectors(old_ids)
            ids = np.concatenate([old_ids, ids])
            vectors = np.concatenate([old, vectors])
        if retrain:
            self._index = self._empty(total)
            inner = self._inner()
            inner.train(vectors)
        self._index.add_with_ids(vectors, ids)

    def _after_add(self) -> None:
        # Reconstruction (for rebuilds and exact filtered search) needs the direct map.
        self._inner().make_direct_map(True)

    def _search_params(self, selector: Any | None, k: int) -> Any:
        faiss = _faiss()

        params = faiss.SearchParametersIVF(nprobe=self.NPROBE)
        if selector is not None:
            params.sel = selector
        return params

    def remove(self, ids: Iterable[int]) -> None:
        import numpy as np

        drop = np.fromiter(ids, dtype=np.int64)
        if len(drop):
            self._rebuild_without(drop)


#: The one place a vector-index name resolves to an implementation.
VECTOR_INDEXES: dict[str, type[FaissIndex]] = {
    cls.kind: cls for cls in (FlatIndex, FlatFp16Index, HNSWIndex, IVFIndex)
}


def _class_for(kind: str) -> type[FaissIndex]:
    try:
        return VECTOR_INDEXES[kind]
    except KeyError:
        known = ", ".join(VECTOR_INDEXES)
        raise ConfigError(f"Unknown vector index: {kind} (known: {known})") from None


def new_vector_index(kind: str, dimension: int) -> FaissIndex:
    """An empty index of ``kind`` (a name in ``VECTOR_INDEXES``)."""
    return _class_for(kind)(dimension)


def load_vector_index(path: Path, kind: str, dimension: int) -> FaissIndex:
    """Read a saved index; a file that is not what the manifest says is reported as corrupt."""
    faiss = _faiss()

    cls = _class_for(kind)
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as error:
        raise IndexCorrupt(
            f"cannot read {path}: {error}; rebuild the index with `rag ingest ... --reindex`"
        ) from None
    if not isinstance(index, faiss.IndexIDMap2) or index.d != dimension:
        raise IndexCorrupt(
            f"{path} is not a {dimension}-d IndexIDMap2; rebuild with `rag ingest ... --reindex`"
        )
    return cls(dimension, index)


def save_vector_index(index: FaissIndex, path: Path) -> None:
    faiss = _faiss()

    faiss.write_index(index.faiss_index, str(path))
