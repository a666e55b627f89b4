"""Reading published versions: pull local copies of a version's segments, check which ids it holds,
read all its records, and query it. All reads go through the local segment cache, so a segment is
downloaded once, whichever versions share it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import cache, chroma_io, chroma_sqlite
from embedding_ingest.snapshots.exceptions import ModelMismatchError, NothingPublishedError
from embedding_ingest.snapshots.flat import iter_pages
from embedding_ingest.snapshots.models import QueryHit, RecordPage
from embedding_ingest.snapshots.segments import read_version
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import SnapshotVersion


def version_segments(store: ObjectStore, version: SnapshotVersion, settings: Settings) -> list[Path]:
    """The local (cached) persist dir of each segment of `version`, in the version's order."""
    manifest = read_version(store, version)
    return [cache.fetch(store, settings, version.database, segment) for segment in manifest.segments]


def pull_published(store: ObjectStore, ledger: Ledger, database: str, settings: Settings
                   ) -> tuple[SnapshotVersion, list[Path]] | None:
    """The current version of `database` and the local persist dirs of its segments (each holds a
    collection named after the database; no id is in two of them); None if nothing is published."""
    current = ledger.get_published(database)
    if current is None:
        return None
    return current, version_segments(store, current, settings)


def iter_published_pages(store: ObjectStore, version: SnapshotVersion, settings: Settings,
                         page_size: int = 1000) -> Iterator[RecordPage]:
    """Every record of `version`, segment after segment, at most `page_size` at a time."""
    for persist_dir in version_segments(store, version, settings):
        yield from iter_pages(persist_dir, version.database, page_size)


def ids_present(store: ObjectStore, version: SnapshotVersion, ids: Sequence[str],
                settings: Settings) -> set[str]:
    """Which of `ids` the published `version` holds (in any of its segments)."""
    return set(published_revisions(store, version, ids, settings))


def published_revisions(store: ObjectStore, version: SnapshotVersion, ids: Sequence[str],
                        settings: Settings) -> dict[str, str]:
    """id -> revision ("" when it has none) of those of `ids` the published `version` holds."""
    if not ids:
        return {}
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    for persist_dir in version_segments(store, version, settings):
        # From SQLite: opening a segment in Chroma loads its whole index just to look ids up (for
        # MarkBatchesComplete after a 20,000 x 1536-d publish: 2.7 s instead of well under one).
        with chroma_sqlite.StoredRecords(persist_dir, version.database) as records:
            found.update(records.revisions(wanted))
    return found


def query_published(store: ObjectStore, ledger: Ledger, database: str, vector: Sequence[float], n: int,
                    settings: Settings) -> list[QueryHit]:
    """The `n` nearest records to `vector` in the published snapshot, nearest first. Refuses a vector
    of another model than the snapshot's (settings.embedding_model names the caller's model)."""
    current = ledger.get_published(database)
    if current is None:
        raise NothingPublishedError(database)
    if settings.embedding_model != current.model:
        raise ModelMismatchError(f"{database} version {current.version} holds {current.model!r} vectors; "
                                 f"a query embedded with {settings.embedding_model!r} would be meaningless")
    query = np.asarray(vector, dtype=np.float32)
    if query.ndim != 1 or query.shape[0] != current.dimensions:
        raise InvalidInputError(f"query vector has shape {query.shape}, {database} version "
                                f"{current.version} needs {current.dimensions} dimensions")
    if not np.isfinite(query).all():
        raise InvalidInputError("query vector has NaN or infinite values")
    if n <= 0 or current.count == 0:
        return []
    hits: list[QueryHit] = []
    # Each segment's n nearest, merged: cosine distances from every segment are on one scale.
    for persist_dir in version_segments(store, current, settings):
        hits.extend(_nearest(persist_dir, database, query, n))
    return sorted(hits, key=lambda hit: (hit.distance, hit.id))[:n]


def _nearest(persist_dir: Path, database: str, query: np.ndarray, n: int) -> list[QueryHit]:
    with chroma_io.open_client(persist_dir) as client:
        col = chroma_io.get_collection(client, database)
        count = col.count()
        if count == 0:
            return []
        got = col.query(query_embeddings=query.reshape(1, -1), n_results=min(n, count),
                        include=["distances", "documents", "metadatas"])
        del col
    return [QueryHit(item_id, float(distance), document or "", dict(metadata or {}))
            for item_id, distance, document, metadata in zip(
                got["ids"][0], got["distances"][0], got["documents"][0], got["metadatas"][0],
                strict=True)]
