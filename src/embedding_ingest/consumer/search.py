"""Unfiltered queries of an open version without Chroma's query path (issue 21).

Chroma 1.5.9's `collection.query` costs about 1 ms of fixed work per call in its Rust frontend whatever
the segment's size, plus the search, plus reading documents and metadata of every candidate; concurrent
calls on two threads do not overlap (measured on this project's 2-core machine). A version of four
segments therefore paid four such calls where stock Chroma holding the same records pays one. Here each
segment's HNSW index is searched in this process (snapshots/chroma_hnsw.py: ids and distances only),
the candidates are merged by distance, and the documents and metadata of the `n_results` winners alone
are read from their own segments' chroma.sqlite3 (snapshots/chroma_sqlite.py).

Indexes are read on the first unfiltered query (a Snapshot used only for get() or filtered queries
never reads them; Chroma loads its own copy of a segment's index only when it is asked a query). A
segment either reader refuses makes the whole version fall back to Chroma's own query."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import QueryResult

from embedding_ingest.consumer.results import query_result
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex, nearest
from embedding_ingest.snapshots.chroma_sqlite import StoredRecords
from embedding_ingest.snapshots.exceptions import ChromaFormatError

_log = logging.getLogger(__name__)


class IndexedSegments:
    """The segments (`dirs`, with their open Chroma `collections` for their index settings) of one
    version of `database`, searched in this process. Thread-safe; close() releases what it read."""

    def __init__(self, database: str, dimensions: int, dirs: Sequence[Path],
                 collections: Sequence[Any]) -> None:
        self.database = database
        self._dimensions = dimensions
        self._dirs = list(dirs)
        self._collections = list(collections)
        self._load_lock = threading.Lock()
        self._records_lock = threading.Lock()  # one SQLite user at a time per connection
        self._loaded = False
        self._closed = False
        self._indexes: list[VectorIndex] | None = None
        self._records: list[StoredRecords] = []
        # Segments are searched side by side, one thread per core: hnswlib releases the GIL while it
        # searches (4 segments of 10,000 x 384-d: 2.17 ms vs 2.42 ms in turn with the other core busy).
        workers = min(len(self._dirs), os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"snapshot-{database}") \
            if workers > 1 else None

    def query(self, vectors: np.ndarray, n_results: int, include: Sequence[str]) -> QueryResult | None:
        """The `n_results` nearest records to each row of `vectors` in Chroma's QueryResult shape, for
        `include` without "embeddings"; None when a segment is not one the readers support (ask Chroma)."""
        indexes = self._ready()
        if indexes is None:
            return None
        try:
            hits = nearest(indexes, vectors, n_results, self._pool)
        except ChromaFormatError as error:
            _log.info("open_snapshot: %s; Chroma answers this query", error)
            return None
        except RuntimeError:  # the pool refuses work once close() has shut it down
            if self._closed:
                raise self._closed_error() from None
            raise
        fields: dict[tuple[int, str], tuple[str | None, dict[str, Any] | None]] = {}
        if "documents" in include or "metadatas" in include:
            wanted: dict[int, list[str]] = {}
            for row in hits:
                for _, item_id, segment in row:
                    wanted.setdefault(segment, []).append(item_id)
            with self._records_lock:
                if self._closed:
                    raise self._closed_error()
                for segment, ids in wanted.items():  # keyed by segment: a hit's fields are its own segment's
                    fields.update(((segment, item_id), found)
                                  for item_id, found in self._records[segment].records(ids).items())
        return query_result(hits, fields, include)

    def close(self) -> None:
        with self._load_lock, self._records_lock:
            self._closed = True
            self._indexes = None
            for records in self._records:
                records.close()
            self._records.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _closed_error(self) -> InvalidInputError:
        return InvalidInputError(f"snapshot {self.database!r}: this version was closed (close() or "
                                 "refresh()) during the query; ask again")

    def _ready(self) -> list[VectorIndex] | None:
        with self._load_lock:
            if not self._loaded and not self._closed:
                self._loaded = True
                self._indexes = self._load()
            return self._indexes

    def _load(self) -> list[VectorIndex] | None:
        indexes: list[VectorIndex] = []
        try:
            for path, collection in zip(self._dirs, self._collections, strict=True):
                hnsw = (collection.configuration_json or {}).get("hnsw") or {}
                indexes.append(VectorIndex(path, self.database, dimensions=self._dimensions,
                                           space=hnsw.get("space", "l2"),
                                           ef_search=hnsw.get("ef_search", 100)))
                self._records.append(StoredRecords(path, self.database, any_thread=True))
        except Exception as error:  # any failure to read them: Chroma answers, as before
            level = logging.INFO if isinstance(error, ChromaFormatError) else logging.WARNING
            _log.log(level, "open_snapshot: %s (%s); Chroma answers this version's queries, at Chroma's "
                     "per-segment cost", error, type(error).__name__)
            with self._records_lock:
                for records in self._records:
                    records.close()
                self._records.clear()
            return None
        return indexes
