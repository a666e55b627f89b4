"""Searching a closed Chroma persist directory's vector index without Chroma's query path (issue 21).

Why: with chromadb 1.5.9 every `collection.query` pays about 1 ms of fixed work in Chroma's Rust
frontend (collection and segment lookups, its log, result assembly) whatever the collection's size
(measured on this project's 2-core machine: 1.0 ms for 1,000 records, where the index search itself
takes 0.13 ms), and concurrent calls on two threads do not overlap. A published version of four
segments paid that four times, where stock Chroma holding the same records pays it once
(bench/query.py, `make bench-scale`).

Chroma's local HNSW segment keeps hnswlib's own files (`header.bin`, `data_level0.bin`, `length.bin`,
`link_lists.bin`, in a folder named after the vector segment's id), written by the hnswlib fork Chroma
maintains; chroma-hnswlib is that fork's Python build, so it loads them as they are and searches them
with the same algorithm and parameters. `index_metadata.pickle` beside them maps hnswlib's labels to
record ids. Chroma writes these files every `sync_threshold` records (1,000 by default) and replays the
rest of its log (`embeddings_queue`, read through chroma_sqlite) into memory when it opens the directory;
those few records are searched exactly here.

Chroma's log may also hold deletions and updates (a publish rewrites a segment through
`collection.delete`/`update`, and those entries stay in the log until `sync_threshold` more come): they
are applied as Chroma applies them when it opens the directory, on this process's copy of the index
(hnswlib's `mark_deleted`; a record's newest vector is searched exactly). So the index part of an answer
is Chroma's; records still in the log are searched exactly where Chroma searches its graph, so for
those an answer can differ from stock Chroma's (usually nearer, never a record Chroma does not hold).

Guarded like chroma_sqlite: it refuses (ChromaFormatError, one line naming the directory) another
chromadb than the one it was written for, a space other than cosine/l2/ip, a log entry it does not
apply, an index hnswlib cannot load, and a directory whose index, log and records do not add up, so a
caller can fall back to Chroma's own query for that directory. tests/contract/test_chroma_hnsw_contract.py
checks, on directories the installed chromadb writes, that it answers Chroma's queries.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from embedding_ingest.snapshots.chroma_sqlite import StoredRecords
from embedding_ingest.snapshots.exceptions import ChromaFormatError

# chromadb's operation codes in embeddings_queue (db/mixins/embeddings_queue.py)
_ADD, _UPDATE, _UPSERT, _DELETE = 0, 1, 2, 3
_SPACES = ("cosine", "l2", "ip")
_MAPPING = "index_metadata.pickle"


class _PlainData(pickle.Unpickler):
    """Unpickles dicts, strings and numbers only: any class or function in the file is refused, so a
    damaged or crafted file cannot run code (a verified segment holds only Chroma's label maps)."""

    def find_class(self, module: str, name: str) -> Any:
        raise ChromaFormatError(f"{_MAPPING} names {module}.{name}; only plain data is read")


def _label_map(folder: Path) -> dict[int, str]:
    try:
        data = _PlainData(io.BytesIO((folder / _MAPPING).read_bytes())).load()
        labels = data["label_to_id"]
    except ChromaFormatError:
        raise
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as error:
        raise ChromaFormatError(f"{folder}/{_MAPPING} cannot be read ({type(error).__name__}: "
                                f"{_one_line(error)})") from None
    if not isinstance(labels, dict):
        raise ChromaFormatError(f"{folder}/{_MAPPING}: label_to_id is a {type(labels).__name__}")
    # map(type) runs in C: ~20 ms for a million labels, against ~0.6 s to unpickle them
    if labels and (set(map(type, labels)) != {int} or set(map(type, labels.values())) != {str}):
        raise ChromaFormatError(f"{folder}/{_MAPPING}: label_to_id maps other than int labels to str ids")
    return labels


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _unit(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1 (a zero row stays zero), float32, as hnswlib normalises for cosine."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


def _load(folder: Path, space: str, dimensions: int, labels: int, ef_search: int) -> Any:
    """hnswlib's index in `folder`, read into memory with its files closed. Raises ChromaFormatError for
    whatever hnswlib raises (it does not validate its files: a damaged one may also load)."""
    try:
        index = hnswlib.Index(space=space, dim=dimensions)
        index.load_index(str(folder), is_persistent_index=True, max_elements=max(1, labels))
        index.close_file_handles()
        index.set_ef(ef_search)
    except (RuntimeError, TypeError, ValueError, OSError, MemoryError) as error:
        raise ChromaFormatError(f"{folder}: hnswlib cannot load the index ({type(error).__name__}: "
                                f"{_one_line(error)})") from None
    return index


class _Unapplied(Exception):
    """A log entry _replay does not apply: (operation code, id)."""


def _replay(log: Sequence[tuple[int, str, bytes | None, str | None]], labels: dict[int, str],
            dimensions: int) -> tuple[list[int], dict[str, np.ndarray]]:
    """Chroma's log applied as Chroma applies it when it opens the directory (checked against chromadb
    1.5.9 by the contract test): (labels of the index files whose records were deleted or got a new
    vector, {id: its newest vector} of the records searched exactly, in log order). An add of an id
    already held and an update of an id not held change nothing (Chroma ignores them); an update or
    upsert with a vector replaces the record's vector; one without (metadata or document only) leaves
    the vectors as they are. Raises _Unapplied for anything else (another operation, an upsert without
    a vector, a vector that is not FLOAT32 of `dimensions`)."""
    by_id = {item_id: label for label, item_id in labels.items()} if log else {}
    dead: list[int] = []
    logged: dict[str, np.ndarray] = {}
    for operation, item_id, vector, encoding in log:
        if operation not in (_ADD, _UPDATE, _UPSERT, _DELETE):
            raise _Unapplied(operation, item_id)
        held = item_id in logged or item_id in by_id
        if operation == _ADD and held or operation == _UPDATE and (vector is None or not held):
            continue
        if operation != _DELETE and (vector is None or encoding != "FLOAT32"
                                     or len(vector) != 4 * dimensions):
            raise _Unapplied(operation, item_id)
        label = by_id.pop(item_id, None)  # the old vector goes, whether the record goes or changes
        if label is not None:
            dead.append(label)
        logged.pop(item_id, None)
        if operation != _DELETE:
            logged[item_id] = np.frombuffer(vector, dtype="<f4")
    return dead, logged


class VectorIndex:
    """The vector index of one collection of a closed persist directory, searched in this process.

    `space` and `ef_search` are the collection's (Chroma's `collection.configuration["hnsw"]`),
    `dimensions` its vectors' width. Thread-safe for searches (hnswlib releases the GIL while it
    searches). Raises ChromaFormatError as the module says; the files are read once and closed."""

    def __init__(self, persist_dir: Path, collection: str, *, dimensions: int, space: str,
                 ef_search: int) -> None:
        if space not in _SPACES:
            raise ChromaFormatError(f"{persist_dir}: collection {collection!r} uses space {space!r}")
        self.space = space
        with StoredRecords(persist_dir, collection) as records:
            segment, log = records.unindexed()
            count = records.count()
        folder = Path(persist_dir) / segment
        self._labels: dict[int, str] = {}
        self._index: Any = None
        if (folder / _MAPPING).is_file():  # absent until Chroma first syncs (all records in its log)
            self._labels = _label_map(folder)
            self._index = _load(folder, space, dimensions, len(self._labels), ef_search)
        try:
            dead, logged = _replay(log, self._labels, dimensions)
        except _Unapplied as entry:
            raise ChromaFormatError(f"{persist_dir}: Chroma's log for {collection!r} holds an entry "
                                    f"(operation {entry.args[0]}, id {entry.args[1]!r}) this reader does "
                                    "not apply") from None
        for label in dead:  # in this process's copy only: the files are closed and never written
            self._index.mark_deleted(label)
            del self._labels[label]
        if len(self._labels) + len(logged) != count:
            raise ChromaFormatError(f"{persist_dir}: {len(self._labels)} indexed + {len(logged)} logged "
                                    f"records of {collection!r}, but it holds {count}")
        self._log_ids = list(logged)
        matrix = np.stack(list(logged.values())) if logged else np.zeros((0, dimensions), dtype=np.float32)
        self._log = _unit(matrix) if space == "cosine" else matrix.astype(np.float32)
        self.count = count

    def search(self, vectors: np.ndarray, n: int) -> list[list[tuple[float, str]]]:
        """Per query vector (rows of `vectors`, float32), its min(n, count) nearest records as (distance,
        id), nearest first, ties by id. Distances as Chroma reports them for the space (cosine: 1 - cos;
        l2: squared distance; ip: 1 - dot)."""
        found: list[list[tuple[float, str]]] = [[] for _ in range(len(vectors))]
        indexed = min(n, len(self._labels))
        if indexed and self._index is not None:
            try:
                labels, distances = self._index.knn_query(vectors, k=indexed, num_threads=1)
            except RuntimeError as error:  # fewer than k reachable (hnswlib's own words follow)
                raise ChromaFormatError(f"the index of {self.count} records could not return "
                                        f"{indexed} neighbours: {error}") from None
            for q, (row_labels, row_distances) in enumerate(zip(labels, distances, strict=True)):
                found[q] = [(float(d), self._labels[int(label)])
                            for label, d in zip(row_labels, row_distances, strict=True)]
        if self._log_ids:
            for q, row in enumerate(self._exact(vectors)):
                nearest = np.argpartition(row, n - 1)[:n] if n < len(row) else np.arange(len(row))
                found[q].extend((float(row[i]), self._log_ids[i]) for i in nearest)
        for hits in found:
            hits.sort()
            del hits[n:]
        return found

    def _exact(self, vectors: np.ndarray) -> np.ndarray:
        """Distances from each query to each logged record (few: fewer than sync_threshold). einsum
        without optimize stays off BLAS, whose threads cost more to wake than this small product."""
        if self.space == "cosine":
            return 1.0 - np.einsum("qd,rd->qr", _unit(vectors), self._log, optimize=False)
        dots = np.einsum("qd,rd->qr", vectors.astype(np.float32), self._log, optimize=False)
        if self.space == "ip":
            return 1.0 - dots
        return (np.einsum("qd,qd->q", vectors, vectors)[:, None] + np.einsum("rd,rd->r", self._log, self._log)
                - 2.0 * dots)

