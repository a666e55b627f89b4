"""Reading published versions: pull a local copy, check which ids a version holds, and query it.
All reads go through the local version cache, so an unchanged version is downloaded once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import cache, chroma_io
from embedding_ingest.snapshots.exceptions import ModelMismatchError, NothingPublishedError
from embedding_ingest.snapshots.models import QueryHit
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import SnapshotVersion


def pull_published(store: ObjectStore, ledger: Ledger, database: str, settings: Settings
                   ) -> tuple[SnapshotVersion, Path] | None:
    """The current version of `database` and its local persist dir; None if nothing is published."""
    current = ledger.get_published(database)
    if current is None:
        return None
    return current, cache.fetch(store, settings, current)


def ids_present(store: ObjectStore, version: SnapshotVersion, ids: Sequence[str],
                settings: Settings) -> set[str]:
    """Which of `ids` the published `version` holds."""
    if not ids:
        return set()
    persist_dir = cache.fetch(store, settings, version)
    with chroma_io.open_client(persist_dir) as client:
        col = chroma_io.get_collection(client, version.database)
        found = chroma_io.ids_in(client, col, list(dict.fromkeys(ids)))
        del col
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
    persist_dir = cache.fetch(store, settings, current)
    with chroma_io.open_client(persist_dir) as client:
        col = chroma_io.get_collection(client, database)
        got = col.query(query_embeddings=query.reshape(1, -1), n_results=min(n, current.count),
                        include=["distances", "documents", "metadatas"])
        del col
    return [QueryHit(item_id, float(distance), document or "", dict(metadata or {}))
            for item_id, distance, document, metadata in zip(
                got["ids"][0], got["distances"][0], got["documents"][0], got["metadatas"][0],
                strict=True)]
