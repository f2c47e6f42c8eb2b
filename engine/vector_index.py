"""One FAISS index: build, add, remove, search with an id filter, save and load atomically.

Ids are the engine's own index ids (one per indexed row version), never DuckDB row ids: a changed
row gets a new id, so an HNSW graph, which cannot remove vectors, hides the old one (a tombstone)
until the next rebuild.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import ThreadpoolController

from quarrydb.engine.atomic import ChecksummedReader, Write, atomic_write

KINDS = ("flat", "ivf", "hnsw")
METRICS = ("cosine", "ip", "l2")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96  # recall@10 0.98 at 1.4 ms on 1M structured vectors (128: 0.99, 1.8 ms)
IVF_MIN_TRAIN_PER_LIST = 39  # FAISS warns below this many training points per list
IO_CHUNK = 1 << 24  # bytes per write or read when an index is streamed to or from its file
FLOAT_MAX = float(np.finfo(np.float32).max)
# The largest option values taken: FAISS keeps them in C ints, and a graph of m = 50,000,000
# links a node failed to allocate.
OPTION_MAX = {"m": 1024, "ef_construction": 100_000, "ef_search": 100_000,
              "nlist": 1_000_000, "nprobe": 1_000_000}
NORM_CHUNK = 1 << 16  # rows whose lengths are computed at once, in float64


@contextlib.contextmanager
def one_openmp_thread() -> Iterator[None]:
    """FAISS's OpenMP on one thread while it searches for one probe, which it cannot split
    anyway: with its default two, a search waits on the second thread's barrier, and on a
    machine where another process is busy that costs a scheduler slice (1M rows, HNSW: 8.0 ms
    against 1.4 ms; benchmarks/RESULTS.md). Builds keep every thread."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def default_kind(rows: int) -> str:
    """Exact search while it is fast enough; a graph beyond that."""
    return "flat" if rows <= 50_000 else "hnsw"


@dataclass
class IndexOptions:
    kind: str = "flat"
    metric: str = "cosine"
    m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = HNSW_EF_SEARCH
    nlist: int = 0  # 0: chosen from the row count
    nprobe: int = 0  # 0: chosen from nlist

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        for name in ("m", "ef_construction", "ef_search", "nlist", "nprobe"):
            value, largest = getattr(self, name), OPTION_MAX[name]
            if name in ("nlist", "nprobe") and value == 0:
                continue  # chosen from the row count
            if not 0 < value <= largest:
                raise ValueError(f"{name} must be an integer from 1 to {largest:,}"
                                 + (", or 0 to choose it" if name in ("nlist", "nprobe") else ""))


@dataclass
class VectorIndex:
    """A FAISS index over unit vectors (cosine), raw vectors (ip) or points (l2)."""

    dim: int
    options: IndexOptions
    index: faiss.Index
    tombstones: set[int] = field(default_factory=set)
    # index id -> DuckDB row id (-1: none), so a search's ids become rows without a query
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Vectors added since the snapshot, searched exactly beside the main index: appending to a
    # FAISS flat store copies all of it (seconds at 1M rows), adding to a graph costs ~0.4 ms
    # per vector; they join it when it is saved. IVF takes them into its lists at once.
    fresh_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fresh_vectors: np.ndarray | None = None
    # Lookups derived from the above, rebuilt after a change: row id -> index id (sorted), and
    # index id -> position in the main index's own vector store.
    _by_row: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _live_rows: int | None = field(default=None, repr=False)  # see size
    _positions: np.ndarray | None = field(default=None, repr=False)
    _fresh_store: np.ndarray | None = field(default=None, repr=False)  # fresh_vectors and room
    # (tombstones, their count, the selector hiding them, its inner selector): see _hidden
    _hiding: tuple[set[int], int, faiss.IDSelector, faiss.IDSelector] | None = field(
        default=None, repr=False)
    # Whether the last search() found fewer of the main index's rows than it asked for, and
    # than it holds: a graph walk that came back short, which the fresh rows (scored beside
    # it) may have hidden by filling the answer.
    main_came_back_short: bool = field(default=False, repr=False)

    def set_rows(self, vids: np.ndarray, row_ids: np.ndarray) -> None:
        if len(vids) and int(vids.max()) >= len(self.rows):
            grown = np.full(max(int(vids.max()) + 1, 2 * len(self.rows)), -1, dtype=np.int64)
            grown[: len(self.rows)] = self.rows
            self.rows = grown
        self.rows[vids] = row_ids
        self._by_row = self._live_rows = None

    def row_ids(self, vids: np.ndarray) -> list[int]:
        return self.found_rows(np.zeros(len(vids)), vids)[0].tolist()

    def found_rows(self, scores: np.ndarray, vids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the index ids a search found, beside their scores (ids no row maps to
        left out)."""
        rows = np.full(len(vids), -1, dtype=np.int64)
        inside = vids < len(self.rows)
        rows[inside] = self.rows[vids[inside]]
        return rows[rows >= 0], scores[rows >= 0]

    def vids_of_rows(self, row_ids: np.ndarray) -> np.ndarray:
        """The index ids of these DuckDB rows (rows not in the index are left out)."""
        if self._by_row is None:
            vids = np.flatnonzero(self.rows >= 0)
            order = np.argsort(self.rows[vids], kind="stable")
            self._by_row = (self.rows[vids][order], vids[order])
        rows, vids = self._by_row
        at = np.clip(np.searchsorted(rows, row_ids), 0, max(len(rows) - 1, 0))
        found = (rows[at] == row_ids) if len(rows) else np.zeros(len(row_ids), dtype=bool)
        return vids[at[found]].astype(np.int64)

    @classmethod
    def build(cls, dim: int, options: IndexOptions, vectors: np.ndarray,
              ids: np.ndarray) -> VectorIndex:
        options.validate()
        metric = faiss.METRIC_L2 if options.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        vectors = _prepared(vectors, options.metric)
        if options.kind == "flat":
            inner: faiss.Index = (faiss.IndexFlatL2(dim) if options.metric == "l2"
                                  else faiss.IndexFlatIP(dim))
        elif options.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, options.m, metric)
            inner.hnsw.efConstruction = options.ef_construction
        else:
            nlist = options.nlist or max(1, min(int(4 * np.sqrt(max(len(vectors), 1))),
                                                len(vectors) // IVF_MIN_TRAIN_PER_LIST or 1))
            if len(vectors):  # k-means needs a point per list (a rebuild after deletes)
                nlist = min(nlist, len(vectors))
            options.nlist = nlist
            quantizer = faiss.IndexFlatL2(dim) if options.metric == "l2" else faiss.IndexFlatIP(dim)
            inner = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
            # FAISS warns on stderr below 39 points a list; a small table's lists are few
            # points each by design (nlist is chosen from the row count).
            inner.cp.min_points_per_centroid = 1
            inner.train(vectors if len(vectors) else np.zeros((nlist, dim), dtype=np.float32))
            # IVF keeps the ids itself (an id map over it goes wrong after a removal: the map
            # is compacted, IVF's own numbers are not), and a hash map from id to vector lets
            # the matching rows be scored exactly (see exact_among).
            inner.set_direct_map_type(faiss.DirectMap.Hashtable)
        index = inner if options.kind == "ivf" else faiss.IndexIDMap2(inner)
        if len(vectors):
            index.add_with_ids(vectors, ids.astype(np.int64))
        return cls(dim, options, index)

    @property
    def size(self) -> int:
        """The rows the index holds, counted in its map of ids to rows (which the catalog
        keeps too), not as FAISS's count less the tombstones: that is wrong wherever a
        tombstone names an id the graph does not hold, and every write then diffed the whole
        table (found after a benchmark had merged an index's fresh vectors behind the
        catalog's back)."""
        if self._live_rows is None:
            self._live_rows = int(np.count_nonzero(self.rows >= 0))
        return self._live_rows

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if not len(ids):
            return
        vectors = _prepared(vectors, self.options.metric)
        if self.options.kind == "ivf":  # appended to its lists in place: no copy, no rebuild
            self.index.add_with_ids(vectors, ids.astype(np.int64))
            return
        held = len(self.fresh_ids)
        wanted = held + len(vectors)
        if self._fresh_store is None or len(self._fresh_store) < wanted:
            # Room to spare, grown by half when full: appending copies the new vectors, not all
            # those held (a flat index may hold as many here as in its snapshot: vector_catalog).
            grown = np.empty((max(wanted + wanted // 2, 1024), vectors.shape[1]),
                             dtype=np.float32)
            if self.fresh_vectors is not None:
                grown[:held] = self.fresh_vectors
            self._fresh_store = grown
        self._fresh_store[held:wanted] = vectors
        self.fresh_vectors = self._fresh_store[:wanted]
        self.fresh_ids = np.concatenate([self.fresh_ids, ids.astype(np.int64)])

    def merge_fresh(self) -> None:
        """Move the fresh vectors into the main index (once, when the snapshot is written)."""
        if len(self.fresh_ids) and self.fresh_vectors is not None:
            self.index.add_with_ids(self.fresh_vectors, self.fresh_ids)
            self._positions = None
        self.fresh_ids = np.zeros(0, dtype=np.int64)
        self.fresh_vectors = self._fresh_store = None

    def apply_delta(self, data: bytes) -> None:
        """Replay one saved change (see delta_bytes) on a loaded snapshot."""
        with np.load(io.BytesIO(data)) as delta:
            self.remove(delta["removed"])
            self.add(delta["vectors"], delta["added"])

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        ids = ids.astype(np.int64)
        self.set_rows(ids, np.full(len(ids), -1, dtype=np.int64))
        if len(self.fresh_ids):
            keep = ~in_set(self.fresh_ids, ids)
            ids = ids[~in_set(ids, self.fresh_ids)]
            if not keep.all():
                self.fresh_ids = self.fresh_ids[keep]
                self.fresh_vectors = self._fresh_store = (
                    self.fresh_vectors[keep] if self.fresh_vectors is not None else None)
        if not len(ids):
            return
        if self.options.kind == "hnsw":  # a graph cannot drop nodes: hide them until a rebuild
            self.tombstones.update(int(i) for i in ids)
        else:
            self.index.remove_ids(ids)
            self._positions = None

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best, best first; only `allowed` ids when given."""
        query = _prepared(query.reshape(1, -1), self.options.metric)
        k = min(k, max(int(self.index.ntotal) + len(self.fresh_ids), 1))  # LIMIT 3000000000
        params = self._params(k, None if allowed is None else len(allowed))
        selector = None
        if allowed is not None:  # a bit per id: built 5-25x faster than a hashed id batch
            bits = id_bitmap(allowed)  # a local: the selector points into it until we return
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # bytes
        if self.tombstones:
            hidden = self._hidden()
            selector = hidden if selector is None else faiss.IDSelectorAnd(selector, hidden)
        if selector is not None:
            params.sel = selector
        scores, ids = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        if self.index.ntotal:
            with one_openmp_thread():
                found, labels = self.index.search(query, max(1, min(k, int(self.index.ntotal))),
                                                  params=params)
            keep = labels[0] >= 0
            scores, ids = found[0][keep], labels[0][keep]
        self.main_came_back_short = len(ids) < k and len(ids) < self._main_rows(allowed)
        if len(self.fresh_ids) and self.fresh_vectors is not None:
            fresh, fresh_ids = self.fresh_vectors, self.fresh_ids  # unfiltered: no copy
            if allowed is not None:
                mask = in_set(self.fresh_ids, allowed)
                fresh, fresh_ids = fresh[mask], fresh_ids[mask]
            if self.options.metric == "l2":
                exact = ((fresh - query) ** 2).sum(axis=1)
            else:
                exact = _inner_products(fresh, query[0])
            scores = np.concatenate([scores, exact.astype(np.float32)])
            ids = np.concatenate([ids, fresh_ids])
        best = _smallest(scores if self.options.metric == "l2" else -scores, k)
        return scores[best], ids[best]

    def _main_rows(self, allowed: np.ndarray | None) -> int:
        """How many rows (of the `allowed` ids) the main index holds, beside the fresh ones."""
        main = self.size - len(self.fresh_ids)
        if allowed is None:
            return main
        fresh = int(in_set(allowed, self.fresh_ids).sum()) if len(self.fresh_ids) else 0
        return min(main, len(allowed) - fresh)

    def _hidden(self) -> faiss.IDSelector:
        """A selector that hides the tombstones, kept until they change: built per search it
        cost 7 ms at 100,000 tombstones (1M rows after a 10% delete), more than the search."""
        kept = self._hiding  # tombstones only grow, or the set is replaced: (set, size) tells
        if kept is None or kept[0] is not self.tombstones or kept[1] != len(self.tombstones):
            batch = faiss.IDSelectorBatch(np.fromiter(self.tombstones, dtype=np.int64))
            kept = self._hiding = (self.tombstones, len(self.tombstones),
                                   faiss.IDSelectorNot(batch), batch)  # batch kept alive too
        return kept[2]

    def exact_among(self, query: np.ndarray, k: int, allowed: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best of the `allowed` ids (ids the index holds), scored
        exactly from the vectors it keeps."""
        query = _prepared(query.reshape(1, -1), self.options.metric)[0]
        ids, vectors = self._main_vectors(allowed)
        if len(self.fresh_ids) and self.fresh_vectors is not None:
            mask = in_set(self.fresh_ids, allowed)
            vectors = np.concatenate([vectors, self.fresh_vectors[mask]])
            ids = np.concatenate([ids, self.fresh_ids[mask]])
        if self.options.metric == "l2":
            distances = ((vectors - query) ** 2).sum(axis=1)
            best = _smallest(distances, k)
            return distances[best], ids[best]
        scores = _inner_products(vectors, query)
        best = _smallest(-scores, k)
        return scores[best], ids[best]

    def _main_vectors(self, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the `allowed` ids held in the main index (not the fresh ones)."""
        if self.options.kind == "ivf":  # by id, through IVF's hash map (no store to slice)
            ids = allowed[~in_set(allowed, self.fresh_ids)] if len(self.fresh_ids) else allowed
            if not len(ids):
                return ids, np.zeros((0, self.dim), dtype=np.float32)
            return ids, self.index.reconstruct_batch(ids)
        positions = self._vector_positions()
        in_main = allowed[allowed < len(positions)]
        at = positions[in_main]
        ids, at = in_main[at >= 0], at[at >= 0]
        order = np.argsort(at)  # read the store front to back
        return ids[order], self._vector_store()[at[order]]

    def _vector_store(self) -> np.ndarray:
        """A flat or HNSW index's vectors, in position order, without a copy."""
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        if inner.ntotal == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * self.dim).reshape(
            inner.ntotal, self.dim)

    def _vector_positions(self) -> np.ndarray:
        """index id -> position in the main index (-1: not there)."""
        if self._positions is None:
            order = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            positions = np.full(int(order.max()) + 1 if len(order) else 0, -1, dtype=np.int64)
            positions[order] = np.arange(len(order), dtype=np.int64)
            self._positions = positions
        return self._positions

    def _params(self, k: int, allowed: int | None = None) -> faiss.SearchParameters:
        """FAISS's search parameters; `allowed`: how many ids a restricted search may return."""
        if self.options.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            # A deep search (a widening one asks for hundreds) keeps twice k candidates: with
            # only k its last results are the graph's weakest (1M rows, 10% filter: recall 0.93).
            params.efSearch = max(self.options.ef_search, 2 * k, 1)
        elif self.options.kind == "ivf":
            params = faiss.SearchParametersIVF()
            nprobe = self.options.nprobe or max(8, self.options.nlist // 4)
            if allowed is not None and allowed < self.index.ntotal:
                # The k nearest matching rows lie as deep as the k / share nearest of all, in
                # lists further out; the lists' other rows are skipped unscored. Measured on 1M
                # rows, nprobe 64, a 10% filter: recall 0.81 as is, 0.985 with 1 / sqrt(share)
                # times the lists (6.5 ms), 1.000 with 1 / share times (20 ms).
                nprobe = math.ceil(nprobe * math.sqrt(self.index.ntotal / max(allowed, 1)))
            params.nprobe = min(nprobe, max(self.options.nlist, 1))
        else:
            params = faiss.SearchParameters()
        return params

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> str:
        """Write atomically, streamed from FAISS to the file (no copy of a gigabyte-sized
        index in memory); return the checksum the catalog keeps to tell a stale file."""
        self.merge_fresh()

        def fill(write: Write) -> None:
            def written(chunk: bytes) -> int:
                write(chunk)
                return len(chunk)

            faiss.write_index(self.index, faiss.PyCallbackIOWriter(written, IO_CHUNK))

        return atomic_write(path, fill)

    @staticmethod
    def delta_bytes(added: np.ndarray, vectors: np.ndarray, removed: np.ndarray) -> bytes:
        """One change as a small file: appended beside the snapshot instead of rewriting it."""
        buffer = io.BytesIO()
        np.savez(buffer, added=added.astype(np.int64), vectors=vectors.astype(np.float32),
                 removed=removed.astype(np.int64))
        return buffer.getvalue()

    @staticmethod
    def merged_deltas(parts: list[bytes]) -> tuple[bytes, int]:
        """Changes saved one after another (see delta_bytes) as one file that replays the
        same, and the rows it holds. An id is added once at most (ids only grow), so an id
        added and later removed is in neither list, and a removal of one of the snapshot's
        ids stays a removal."""
        none = np.zeros(0, dtype=np.int64)
        added, vectors, removed = [none], [np.zeros((0, 1), dtype=np.float32)], [none]
        for data in parts:
            with np.load(io.BytesIO(data)) as delta:
                added.append(delta["added"])
                removed.append(delta["removed"])
                if len(delta["added"]):  # a change that only removes saves no vectors to stack
                    vectors.append(delta["vectors"])
        all_added, all_removed = np.concatenate(added), np.concatenate(removed)
        stacked = np.concatenate(vectors[1:]) if len(vectors) > 1 else vectors[0]
        kept = ~in_set(all_added, all_removed)
        still_removed = all_removed[~in_set(all_removed, all_added)]
        return (VectorIndex.delta_bytes(all_added[kept], stacked[kept], still_removed),
                int(kept.sum()) + len(still_removed))

    @classmethod
    def load(cls, path: Path, dim: int, options: IndexOptions, tombstones: set[int]
             ) -> tuple[VectorIndex, str]:
        """The saved index and the checksum of the file it was read from (one pass)."""
        with path.open("rb") as handle:
            reader = ChecksummedReader(handle)
            index = faiss.read_index(faiss.PyCallbackIOReader(reader.read, IO_CHUNK))
        if options.kind == "ivf" and not isinstance(index, faiss.IndexIVF):
            raise ValueError("an IVF index saved inside an id map (before 2026-12) is rebuilt")
        return cls(dim, options, index, set(tombstones)), reader.checksum()


def in_set(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Which of `values` are in `allowed` (integer ids). numpy's default isin hashes both
    arrays: 20 ms for 200 candidates among 120,000 matching rows; a lookup table of the ids'
    range takes 0.5 ms."""
    return np.isin(values, allowed, kind="table")


def id_bitmap(ids: np.ndarray) -> np.ndarray:
    """FAISS's id bitmap: bit i (little-endian within each byte) set when i is in `ids`."""
    mask = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=bool)
    mask[ids] = True
    return np.packbits(mask, bitorder="little")


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest values, smallest first."""
    if len(values) > k:
        values_at = np.argpartition(values, k)[:k]
        return values_at[np.argsort(values[values_at], kind="stable")]
    return np.argsort(values, kind="stable")


def unrankable(values: np.ndarray, metric: str, dim: int) -> str | None:
    """Why an index, which keeps FLOAT (float32) vectors, cannot rank these numbers (a table's
    vectors, flattened) as DuckDB does; None when it can."""
    if values.dtype.kind != "f" or not len(values):
        return None
    finite = np.isfinite(values)
    largest = float(np.abs(values[finite]).max()) if finite.any() else 0.0
    if largest > FLOAT_MAX:  # a DOUBLE[] column: similarity() refuses it too
        return (f"a vector holds {largest:.3g}, beyond FLOAT's range (about 3.4e38), which"
                " an index cannot keep (fix the row)")
    if metric == "cosine":
        return None  # a NaN or an infinity: no direction, ranked last as DuckDB does
    if not finite.all():
        return ("a vector holds a NaN or an infinity, which it cannot rank as DuckDB does"
                " (fix the row, or use metric cosine, which ranks such a row last)")
    if largest * largest * max(dim, 1) * 4 > FLOAT_MAX:
        return (f"a vector holds {largest:.3g}: its squared distances and products would"
                " overflow FLOAT (fix the row, or use metric cosine)")
    return None


def _prepared(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as FAISS takes them: float32, and of unit length for cosine. They are scaled
    in float64: in float32 the length overflows from about 1e19 a coordinate and vanishes
    below about 1e-19 (either way the vector became zeros, or nearly), where DuckDB's cosine
    is still right. A vector with a NaN or an infinity has no direction either: it becomes
    zeros, as similarity() is NULL for both."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric != "cosine" or not len(vectors):
        return vectors
    broken = ~np.isfinite(vectors).all(axis=1)
    if broken.any():  # no direction, as a zero vector: similarity() is NULL for both
        vectors = np.where(broken[:, None], np.float32(0), vectors)
    unit = np.empty_like(vectors)
    for start in range(0, len(vectors), NORM_CHUNK):  # float64 a chunk at a time
        chunk = vectors[start:start + NORM_CHUNK].astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        unit[start:start + NORM_CHUNK] = chunk * scale[:, None]
    return unit


def _inner_products(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """vectors @ query with numpy's BLAS on one thread. On its own threads it is faster by
    about 0.4 ms for 10,000 x 384, but they keep spinning after it, and on 2 cores the FAISS
    search and DuckDB's fetch that follow then took 2-3x as long (a 1M-row search with 10,000
    fresh vectors beside the graph: 13.9 ms, against 7.6 ms with one BLAS thread)."""
    with _blas().limit(limits=1, user_api="blas"):
        return vectors @ query


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()
