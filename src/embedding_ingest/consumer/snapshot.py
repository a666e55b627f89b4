"""`open_snapshot`: a published snapshot as one read-only Chroma collection, for other programs.

A published version is a list of segments (closed Chroma directories, disjoint ids). A Snapshot keeps
one client per segment open for its whole life (opening a directory costs far more than a query), asks
each segment and merges by distance, and embeds query texts with the snapshot's own model.

Unfiltered queries skip Chroma's query path (search.py: each segment's index searched in this process
for ids and distances, documents and metadata read for the winners only). Filtered queries (`where`,
`where_document`) and queries that include embeddings ask each segment's Chroma collection, so
Chroma's own filter semantics hold."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import GetResult, QueryResult, validate_where, validate_where_document

from embedding_ingest.config import Settings
from embedding_ingest.consumer.embedding import QueryEncoder, encoder_for
from embedding_ingest.consumer.results import (
    DEFAULT_GET_INCLUDE,
    DEFAULT_QUERY_INCLUDE,
    merge_get,
    merge_query,
)
from embedding_ingest.consumer.search import IndexedSegments
from embedding_ingest.exceptions import ConfigurationError, InvalidInputError
from embedding_ingest.snapshots import cache, chroma_io
from embedding_ingest.snapshots.archive import materialize
from embedding_ingest.snapshots.segments import read_version
from embedding_ingest.snapshots.version_ids import resolve_version
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import ItemKind, SnapshotVersion

__all__ = ["Snapshot", "open_snapshot", "parse_kind"]


def parse_kind(kind: str | ItemKind) -> ItemKind:
    """"line", "lines", "word", "words" or an ItemKind. Raises InvalidInputError otherwise."""
    if isinstance(kind, ItemKind):
        return kind
    name = str(kind).strip().lower()
    for candidate in ItemKind:
        if name in (candidate.value, candidate.database):
            return candidate
    raise InvalidInputError(f"unknown snapshot kind {kind!r}: expected 'line' or 'word'")


@dataclass
class _Open:
    """The open segments of one version."""

    version: SnapshotVersion
    clients: list[Any]
    collections: list[Any]
    counts: list[int]
    private_dir: Path | None  # s3 mode: this Snapshot's own downloads, removed on close
    indexed: IndexedSegments | None = None  # unfiltered queries (search.py)
    readers: int = 0  # queries and gets running on this version (Snapshot._lock guards both fields)
    retired: bool = False  # refresh() or close() replaced it: the last reader closes it

    def close(self) -> None:
        if self.indexed is not None:
            self.indexed.close()
        self.collections.clear()
        for client in self.clients:
            chroma_io.close_client(client)
        self.clients.clear()
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)


class Snapshot:
    """A published version of the `lines` or `words` snapshot, read-only. Use `open_snapshot()`.

    Thread-safe: queries may run in several threads while another calls refresh(); a query or get
    answers from the version it started on (that version closes when the last of them ends)."""

    def __init__(self, kind: ItemKind, *, store: ObjectStore, ledger: Ledger, settings: Settings,
                 version: str | None = None) -> None:
        self.kind = kind
        self.database = kind.database
        self._store = store
        self._ledger = ledger
        self._settings = settings
        self._pinned = version
        self._lock = threading.RLock()  # _open, and each version's readers and retired
        self._refresh_lock = threading.Lock()  # one refresh at a time (queries and gets never take it)
        self._encoder_lock = threading.Lock()  # building one (seconds) holds up text queries alone
        self._encoder: QueryEncoder | None = None
        self._open: _Open | None = None
        self._open = self._load(self._resolve())

    # -- what it is --------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """The published version id this Snapshot reads."""
        return self._state().version.version

    @property
    def model(self) -> str:
        """The embedding model of every vector in it (query texts are embedded with it)."""
        return self._state().version.model

    @property
    def dimensions(self) -> int:
        return self._state().version.dimensions

    @property
    def info(self) -> SnapshotVersion:
        """The ledger's record of the version (count, model, published_at, parent_version...)."""
        return self._state().version

    def count(self) -> int:
        """Records in the version (the sum over its segments)."""
        return sum(self._state().counts)

    # -- reading -----------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`texts` embedded with the snapshot's model: float32, shape (len(texts), dimensions).
        Raises ModelMismatchError if no encoder here makes that model's vectors."""
        return self._encode(self._state().version, texts)

    def _encode(self, version: SnapshotVersion, texts: Sequence[str]) -> np.ndarray:
        with self._encoder_lock:
            encoder = self._encoder
            if encoder is None or (encoder.model, encoder.dimensions) != (version.model, version.dimensions):
                encoder = self._encoder = encoder_for(version.model, version.dimensions, self._settings)
        return encoder.encode(list(texts))

    def query(self, query_texts: str | Sequence[str] | None = None, query_embeddings: Any = None, *,
              n_results: int = 10, where: dict[str, Any] | None = None,
              where_document: dict[str, Any] | None = None,
              include: Sequence[str] = DEFAULT_QUERY_INCLUDE) -> QueryResult:
        """The `n_results` nearest records to each query, nearest first: Chroma's QueryResult (one
        inner list per query). Give texts (embedded with the snapshot's model) or embeddings (shape
        (k, dimensions) or one vector). `where`/`where_document` are Chroma filters. Raises
        InvalidInputError for a wrong shape, non-finite values, both/neither inputs or a malformed filter,
        and for no query at all (`query_texts=[]`, or embeddings of zero rows), as Chroma's own
        Collection.query raises for an empty list rather than answer with no results."""
        _checked_filters(where, where_document)
        if (query_texts is None) == (query_embeddings is None):
            raise InvalidInputError("give exactly one of query_texts or query_embeddings")
        if query_texts is not None:
            query_texts = [query_texts] if isinstance(query_texts, str) else list(query_texts)
            if not query_texts:
                raise InvalidInputError("query_texts is empty: give at least one text to query")
        if n_results < 1:
            raise InvalidInputError(f"n_results must be at least 1, got {n_results}")
        include = _checked_include(include, allowed={"documents", "metadatas", "embeddings", "distances"})
        state = self._enter()
        try:
            return self._query(state, query_texts, query_embeddings, n_results, where, where_document,
                               include)
        finally:
            self._leave(state)

    def _query(self, state: _Open, query_texts: list[str] | None, query_embeddings: Any,
               n_results: int, where: dict[str, Any] | None, where_document: dict[str, Any] | None,
               include: list[str]) -> QueryResult:
        if query_texts is not None:  # embedded for the version it answers from, even if refreshed
            vectors = self._encode(state.version, query_texts)
        else:
            vectors = self._checked_vectors(query_embeddings, state.version)
        if state.indexed is not None and where is None and where_document is None \
                and "embeddings" not in include:
            return state.indexed.query(vectors, n_results, include)
        asked = sorted(set(include) | {"distances"})
        # One Chroma call per segment, one after the other: asking the segments from a pool of threads
        # was no faster on 2 cores (issue 21: 4 segments of 100,000 x 384-d, p50 13.8 ms pooled vs
        # 15.3 ms in turn, 1 and 2 segments slower pooled), so the threads were dropped.
        parts = [collection.query(query_embeddings=vectors, n_results=min(n_results, count), where=where,
                                  where_document=where_document, include=asked)
                 for collection, count in zip(state.collections, state.counts, strict=True) if count]
        if not parts:  # an empty version still answers in Chroma's shape
            parts = [{"ids": [[]] * len(vectors), "distances": [[]] * len(vectors)}]
        return merge_query(parts, len(vectors), n_results, include)

    def get(self, ids: str | Sequence[str] | None = None, *, where: dict[str, Any] | None = None,
            where_document: dict[str, Any] | None = None, limit: int | None = None, offset: int = 0,
            include: Sequence[str] = DEFAULT_GET_INCLUDE) -> GetResult:
        """Records by id and/or filter: Chroma's GetResult. Segment order, then Chroma's order in each.
        Raises InvalidInputError for an unknown `include` field, a negative limit/offset or a malformed
        filter."""
        _checked_filters(where, where_document)
        include = _checked_include(include, allowed={"documents", "metadatas", "embeddings"})
        if limit is not None and limit < 0 or offset < 0:
            raise InvalidInputError(f"limit and offset must not be negative, got {limit} and {offset}")
        wanted = [ids] if isinstance(ids, str) else (list(ids) if ids is not None else None)
        state = self._enter()
        try:
            return self._get(state, wanted, where, where_document, limit, offset, include)
        finally:
            self._leave(state)

    @staticmethod
    def _get(state: _Open, wanted: list[str] | None, where: dict[str, Any] | None,
             where_document: dict[str, Any] | None, limit: int | None, offset: int,
             include: list[str]) -> GetResult:
        filtered = wanted is not None or where is not None or where_document is not None
        parts, skip, left = [], offset, limit
        for collection, count in zip(state.collections, state.counts, strict=True):
            if left == 0:
                break
            if skip:  # whole segments before the offset are skipped by their count, not read
                matches = len(collection.get(ids=wanted, where=where, where_document=where_document,
                                             include=[])["ids"]) if filtered else count
                if skip >= matches:
                    skip -= matches
                    continue
            got = collection.get(ids=wanted, where=where, where_document=where_document, limit=left,
                                 offset=skip or None, include=list(include))
            skip = 0
            left = None if left is None else left - len(got["ids"])
            parts.append(got)
        return merge_get(parts, include, 0, limit)

    # -- moving and closing -------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Move to the currently published version (a no-op for a Snapshot opened at a fixed version).
        Returns True if the version changed. The old segments are closed only after the new ones open,
        and after the queries and gets running on them end; the indexes already read of the segments
        the new version keeps are handed over to it, not read again (search.py). Refreshes in several
        threads take turns, each asking for the published version in its turn: a new version is opened
        once, and a refresh that started before a publish never swaps in its version after a later one.
        Raises InvalidInputError once closed (also when close() ran while it opened the version)."""
        self._state()
        if self._pinned is not None:
            return False
        with self._refresh_lock:
            target = self._resolve()
            with self._lock:
                current = self._state()
                if current.version.version == target.version:
                    return False
            fresh = self._load(target, previous=current)
            with self._lock:
                old, closed = self._open, self._open is None  # None: close() ran meanwhile
                if not closed:
                    self._open = fresh
            if closed:
                fresh.close()
                self._state()  # raises: the Snapshot stays closed
            self._retire(old)
            return True

    def close(self) -> None:
        """Close the segments (once the queries and gets running on them end). Every later call but
        close() raises InvalidInputError, refresh() included."""
        with self._lock:
            old, self._open = self._open, None
        self._retire(old)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._open
        where = f"version={state.version.version!r}, count={sum(state.counts)}" if state else "closed"
        return f"Snapshot({self.database!r}, {where})"

    # -- internals ---------------------------------------------------------------------------------
    def _state(self) -> _Open:
        state = self._open
        if state is None:
            raise InvalidInputError(f"snapshot {self.database!r} is closed")
        return state

    def _enter(self) -> _Open:
        """The current version, held open until _leave (a refresh meanwhile does not close it)."""
        with self._lock:
            state = self._state()
            state.readers += 1
            return state

    def _leave(self, state: _Open) -> None:
        with self._lock:
            state.readers -= 1
            last = state.retired and state.readers == 0
        if last:
            state.close()

    def _retire(self, old: _Open | None) -> None:
        if old is None:
            return
        with self._lock:
            old.retired = True
            idle = old.readers == 0
        if idle:
            old.close()

    def _resolve(self) -> SnapshotVersion:
        resolved = resolve_version(self._ledger, self.database, self._pinned)
        if self._pinned is not None:  # a prefix names one version for good, whatever is published later
            self._pinned = resolved.version
        return resolved

    def _load(self, version: SnapshotVersion, previous: _Open | None = None) -> _Open:
        manifest = read_version(self._store, version)
        private = None
        if cache.cache_enabled(self._settings):
            dirs = [cache.fetch(self._store, self._settings, self.database, s) for s in manifest.segments]
        else:  # CHROMADB_STORAGE_MODE=s3: always from the object store, never the shared cache
            private = Path(tempfile.mkdtemp(prefix=f"snapshot-{self.database}-"))
            dirs = [materialize(self._store, s.key, private / f"segment-{n}")
                    for n, s in enumerate(manifest.segments)]
        state = _Open(version, [], [], [], private)
        try:
            for path, segment in zip(dirs, manifest.segments, strict=True):
                client = chroma_io.open_persistent(path)
                state.clients.append(client)
                collection = chroma_io.get_collection(client, self.database)
                state.collections.append(collection)
                state.counts.append(segment.count)
            state.indexed = IndexedSegments(self.database, version.dimensions, dirs,
                                            [segment.segment_id for segment in manifest.segments],
                                            state.collections, state.counts,
                                            previous.indexed if previous is not None else None)
        except BaseException:
            state.close()
            raise
        return state

    @staticmethod
    def _checked_vectors(query_embeddings: Any, version: SnapshotVersion) -> np.ndarray:
        vectors = np.asarray(query_embeddings, dtype=np.float32)
        if vectors.ndim in (1, 2) and vectors.shape[0] == 0:  # [] or shape (0, d): no query at all
            raise InvalidInputError("query_embeddings is empty: give at least one vector to query")
        if vectors.ndim == 1:
            vectors = vectors.reshape(1, -1)
        if vectors.ndim != 2 or vectors.shape[0] == 0 or vectors.shape[1] != version.dimensions:
            raise InvalidInputError(f"query_embeddings has shape {np.shape(query_embeddings)}; "
                                    f"{version.database} version {version.version} needs "
                                    f"(k, {version.dimensions}) vectors of {version.model!r}")
        if not np.isfinite(vectors).all():
            raise InvalidInputError("query_embeddings has NaN or infinite values")
        return vectors


def _checked_include(include: Sequence[str], *, allowed: set[str]) -> list[str]:
    chosen = [include] if isinstance(include, str) else list(include)
    unknown = [name for name in chosen if name not in allowed]
    if unknown:
        raise InvalidInputError(f"include: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return chosen


def _checked_filters(where: Any, where_document: Any) -> None:
    """Chroma's own filter checks, run before any segment is asked, so a malformed filter is the
    caller's InvalidInputError (naming the filter) rather than a ValueError from inside Chroma."""
    for name, value, check in (("where", where, validate_where),
                               ("where_document", where_document, validate_where_document)):
        if value is not None:
            try:
                check(value)
            except (ValueError, TypeError) as error:
                raise InvalidInputError(f"{name} filter is not valid: {error}") from None


def open_snapshot(kind: str | ItemKind, *, version: str | None = None, home: str | Path | None = None,
                  bucket: str | None = None, table: str | None = None,
                  settings: Settings | None = None) -> Snapshot:
    """Open the published `lines` ("line") or `words` ("word") snapshot for reading.

    Settings come from the environment (EMBEDDING_INGEST_HOME, CHROMADB_BUCKET, DYNAMODB_TABLE_NAME,
    CHROMA_ROOT, CHROMADB_STORAGE_MODE, OPENAI_API_KEY...) unless given: `home` (local workspace),
    `bucket` (S3 bucket of the snapshots), `table` (DynamoDB ledger), or a whole `settings`.
    `version` pins a kept version, whole or a unique prefix of at least 8 characters (as the CLI
    shows it); by default the current one (see Snapshot.refresh).
    Raises NothingPublishedError, VersionNotFoundError, AmbiguousVersionError, ConfigurationError (no
    workspace at `home`), ObjectNotFoundError/CorruptObjectError (a damaged version)."""
    from embedding_ingest import backends

    database_kind = parse_kind(kind)
    chosen = settings if settings is not None else Settings()
    updates: dict[str, Any] = {}
    if home is not None:
        updates["home"] = Path(home)
    if bucket is not None:
        updates["chromadb_bucket"] = bucket
    if table is not None:
        updates["dynamodb_table_name"] = table
    if updates:
        chosen = chosen.model_copy(update=updates)
    if not chosen.uses_aws_ledger and not chosen.ledger_path.is_file():
        raise ConfigurationError(f"no embedding-ingest workspace at {chosen.home} (no "
                                 f"{chosen.ledger_path.name}); set EMBEDDING_INGEST_HOME or pass home=")
    return Snapshot(database_kind, store=backends.build_object_store(chosen),
                    ledger=backends.build_ledger(chosen), settings=chosen, version=version)

