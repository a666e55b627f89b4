"""Reading published versions: pull local copies of a version's segments, check which ids it holds,
and read all its records. All reads go through the local segment cache, so a segment is downloaded
once, whichever versions share it. Queries go through the consumer API (consumer.Snapshot.query)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import cache, chroma_sqlite, id_index
from embedding_ingest.snapshots.flat import iter_pages
from embedding_ingest.snapshots.models import RecordPage
from embedding_ingest.snapshots.segments import read_version
from embedding_ingest.stores.ports import ObjectStore
from embedding_ingest.stores.records import SnapshotVersion

T = TypeVar("T")


def version_segments(store: ObjectStore, version: SnapshotVersion, settings: Settings) -> list[Path]:
    """The local (cached) persist dir of each segment of `version`, in the version's order."""
    manifest = read_version(store, version)
    return [cache.fetch(store, settings, version.database, segment) for segment in manifest.segments]


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
    """id -> revision ("" when it has none) of those of `ids` the published `version` holds. Read from
    each segment's id index (id_index.py: a small SQLite file, cached), never its vectors; a segment
    published before indexes existed is read from its fetched copy (chroma_sqlite.StoredRecords)."""
    return _read_published(store, version, ids, settings, lambda reader, wanted: reader.revisions(wanted))


def published_metadata_versions(store: ObjectStore, version: SnapshotVersion, ids: Sequence[str],
                                settings: Settings) -> dict[str, int]:
    """id -> metadata_version (0 when it has none; issue 23) of those of `ids` the published `version`
    holds, read as published_revisions reads revisions."""
    return _read_published(store, version, ids, settings,
                           lambda reader, wanted: reader.metadata_versions(wanted))


def _read_published(store: ObjectStore, version: SnapshotVersion, ids: Sequence[str], settings: Settings,
                    read: Callable[[Any, list[str]], Mapping[str, T]]) -> dict[str, T]:
    if not ids:
        return {}
    wanted = list(dict.fromkeys(ids))
    found: dict[str, T] = {}
    database = version.database
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(settings, database), prefix="ids-") as tmp:
        for segment in read_version(store, version).segments:
            reader: id_index.IdIndex | chroma_sqlite.StoredRecords
            if segment.ids_key is not None:
                reader = id_index.IdIndex(id_index.fetch(store, settings, database, segment, Path(tmp)))
            else:
                path = cache.fetch(store, settings, database, segment)
                reader = chroma_sqlite.StoredRecords(path, database)
            try:
                found.update(read(reader, wanted))
            finally:
                reader.close()
    return found
