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
segment the readers refuse, or fail to load for any reason, is asked through Chroma's own query, alone:
the other segments stay on this path, and a WARNING names the segment and the reason once per Snapshot
(a refresh hands the refusal over with the indexes: the segment is not read again). A search
the index cannot answer (fewer than `n_results` reachable) is asked through Chroma for that segment and
that query only.

A refresh hands the indexes already read for the segments the new version keeps over to it (a segment
is named by its content, so its index never changes): a publish that adds one small segment reads only
that one, and the Snapshot holds one copy of each index (~1.7 GB for 1M x 384-d)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import QueryResult

from embedding_ingest.consumer.results import Fields, Hits, merge_hits, query_result
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots.chroma_hnsw import VectorIndex
from embedding_ingest.snapshots.chroma_sqlite import StoredRecords
from embedding_ingest.snapshots.exceptions import ChromaFormatError

_log = logging.getLogger(__name__)


class IndexedSegments:
    """The segments of one version of `database`, searched in this process: `dirs` (their persist
    directories), `ids` (their content identities, SegmentRef.segment_id), `collections` (their open
    Chroma collections: index settings, and the query of a segment the readers refuse) and `counts`.
    `previous`: the IndexedSegments of the version this one replaces; the indexes it has read of the
    segments this one keeps are reused, not read again, and those it refused are not tried again.
    Thread-safe; close() releases what it read."""

    def __init__(self, database: str, dimensions: int, dirs: Sequence[Path], ids: Sequence[str],
                 collections: Sequence[Any], counts: Sequence[int],
                 previous: IndexedSegments | None = None) -> None:
        self.database = database
        self._dimensions = dimensions
        self._dirs = list(dirs)
        self._ids = list(ids)
        self._collections = list(collections)
        self._counts = list(counts)
        self._load_lock = threading.Lock()
        self._records_lock = threading.Lock()  # one SQLite user at a time per connection
        self._closed = False
        self._kept = previous.loaded(self._ids) if previous is not None else {}
        # None in _indexes or _kept: a segment the readers refused, Chroma answers for it
        self._indexes: list[VectorIndex | None] | None = None
        self._records: list[StoredRecords | None] = []
        # Segments are searched side by side, one thread per core: hnswlib releases the GIL while it
        # searches (4 segments of 10,000 x 384-d: 2.17 ms vs 2.42 ms in turn with the other core busy).
        workers = min(len(self._dirs), os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"snapshot-{database}") \
            if workers > 1 else None

    def loaded(self, keys: Iterable[str]) -> dict[str, VectorIndex | None]:
        """{segment identity: its index, or None if refused} of those of `keys` this version has read,
        refused or was handed (waits for a load under way, so a refresh meanwhile does not read them a
        second time)."""
        wanted = set(keys)
        with self._load_lock:
            found = {key: index for key, index in self._kept.items() if key in wanted}
            found.update((key, index) for key, index in zip(self._ids, self._indexes or [], strict=False)
                         if key in wanted)
            return found

    def query(self, vectors: np.ndarray, n_results: int, include: Sequence[str]) -> QueryResult:
        """The `n_results` nearest records to each row of `vectors` in Chroma's QueryResult shape, for
        `include` without "embeddings". A Snapshot's queries never see their version closed: it closes
        a version only once the last query and get running on it end (Snapshot._enter/_leave), so they
        answer from the version they started on. Raises InvalidInputError only when close() was called
        on this object directly, before or during the call."""
        indexes = self._ready()
        asked = sorted({"distances", *include})

        def search(number: int) -> tuple[Hits, Fields | None]:
            return self._search(number, indexes[number], vectors, n_results, asked)

        try:
            found = list(self._pool.map(search, range(len(self._dirs)))) if self._pool is not None \
                else [search(number) for number in range(len(self._dirs))]
        except RuntimeError:  # the pool refuses work once close() has shut it down
            if self._closed:
                raise self._closed_error() from None
            raise
        hits = merge_hits([segment_hits for segment_hits, _ in found], len(vectors), n_results)
        fields: Fields = {}
        if "documents" in include or "metadatas" in include:
            wanted: dict[int, list[str]] = {}
            for row in hits:
                for _, item_id, number in row:
                    answered = found[number][1]
                    if answered is None:  # searched here: read from its own chroma.sqlite3
                        wanted.setdefault(number, []).append(item_id)
                    else:  # Chroma answered for the segment, with the fields
                        fields[number, item_id] = answered[number, item_id]
            with self._records_lock:
                if self._closed:
                    raise self._closed_error()
                for number, ids in wanted.items():  # keyed by segment: a hit's fields are its own segment's
                    records = self._records[number]  # opened with the index it was searched in
                    fields.update(((number, item_id), got)
                                  for item_id, got in records.records(ids).items())  # type: ignore[union-attr]
        return query_result(hits, fields, include)

    def close(self) -> None:
        """Release the records' connections, the indexes (once no other version holds them) and the
        threads. Queries asked afterwards raise InvalidInputError."""
        with self._load_lock, self._records_lock:
            self._closed = True
            self._kept = {}
            self._indexes = []
            for records in self._records:
                if records is not None:
                    records.close()
            self._records = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _closed_error(self) -> InvalidInputError:
        return InvalidInputError(f"snapshot {self.database!r}: this version's segments are closed")

    def _search(self, number: int, index: VectorIndex | None, vectors: np.ndarray, n: int,
                asked: list[str]) -> tuple[Hits, Fields | None]:
        """Segment `number`'s hits, with None (its winners' documents and metadata are read afterwards)
        or, when Chroma answered for it, the fields of every hit."""
        if index is not None:
            try:
                return index.search(vectors, n), None
            except ChromaFormatError as error:  # fewer than n reachable: for this query, Chroma answers
                _log.info("open_snapshot: segment %s: %s; Chroma answers this query for it",
                          self._dirs[number], error)
        count = self._counts[number]
        if not count:
            return [[] for _ in range(len(vectors))], {}
        got = self._collections[number].query(query_embeddings=vectors, n_results=min(n, count),
                                              include=asked)
        hits: Hits = []
        fields: Fields = {}
        for q, ids in enumerate(got["ids"]):
            hits.append([(float(distance), item_id)
                         for distance, item_id in zip(got["distances"][q], ids, strict=True)])
            for row, item_id in enumerate(ids):
                fields[number, item_id] = (got["documents"][q][row] if got.get("documents") else None,
                                           got["metadatas"][q][row] if got.get("metadatas") else None)
        return hits, fields

    def _ready(self) -> list[VectorIndex | None]:
        with self._load_lock:
            if self._closed:
                raise self._closed_error()
            if self._indexes is None:
                self._indexes = self._load()
            return self._indexes

    def _load(self) -> list[VectorIndex | None]:
        """Each segment's index (handed over, or read) and records; None for a segment either reader
        fails on, said at WARNING (not again for one refused by an earlier version). Runs under
        _load_lock."""
        indexes: list[VectorIndex | None] = []
        records: list[StoredRecords | None] = []
        try:
            for path, key, collection in zip(self._dirs, self._ids, self._collections, strict=True):
                if key in self._kept and self._kept[key] is None:  # refused before, and said then
                    indexes.append(None)
                    records.append(None)
                    continue
                index = self._kept.pop(key, None)
                try:
                    if index is None:
                        hnsw = (collection.configuration_json or {}).get("hnsw") or {}
                        index = VectorIndex(path, self.database, dimensions=self._dimensions,
                                            space=hnsw.get("space", "l2"),
                                            ef_search=hnsw.get("ef_search", 100))
                    records.append(StoredRecords(path, self.database, any_thread=True))
                except Exception as error:  # any failure: Chroma answers for this segment, said once
                    _log.warning("open_snapshot: segment %s is asked through Chroma's own query, at "
                                 "Chroma's per-segment cost (%s: %s)", path, type(error).__name__,
                                 " ".join(str(error).split()))
                    index = None
                    records.append(None)
                indexes.append(index)
        except BaseException:
            for opened in records:
                if opened is not None:
                    opened.close()
            raise
        self._kept = {}
        with self._records_lock:
            self._records = records
        return indexes
