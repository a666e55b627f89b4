"""The Chroma snapshot lifecycle: build, archive, merge, publish, pull, query, roll back, prune."""

from embedding_ingest.snapshots.archive import materialize, read_manifest
from embedding_ingest.snapshots.build import merge_snapshots, write_snapshot
from embedding_ingest.snapshots.flat import iter_pages
from embedding_ingest.snapshots.models import (
    ARCHIVE_NAME,
    MANIFEST_NAME,
    Profile,
    PublishOutcome,
    QueryHit,
    RecordPage,
    SnapshotManifest,
)
from embedding_ingest.snapshots.publish import (
    pointer_key,
    prune_versions,
    publish_next_version,
    rollback,
    versions_prefix,
)
from embedding_ingest.snapshots.query import ids_present, pull_published, query_published

__all__ = [
    "ARCHIVE_NAME",
    "MANIFEST_NAME",
    "Profile",
    "PublishOutcome",
    "QueryHit",
    "RecordPage",
    "SnapshotManifest",
    "ids_present",
    "iter_pages",
    "materialize",
    "merge_snapshots",
    "pointer_key",
    "prune_versions",
    "publish_next_version",
    "pull_published",
    "query_published",
    "read_manifest",
    "rollback",
    "versions_prefix",
    "write_snapshot",
]
