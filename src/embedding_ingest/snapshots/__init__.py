"""The Chroma snapshot lifecycle: build, archive, merge, publish (layered: a version is a list of
segments), pull, compact, roll back, prune (queries: consumer.Snapshot)."""

from embedding_ingest.snapshots.archive import materialize, read_manifest
from embedding_ingest.snapshots.build import merge_snapshots, write_snapshot
from embedding_ingest.snapshots.flat import iter_pages
from embedding_ingest.snapshots.models import (
    ARCHIVE_NAME,
    MANIFEST_NAME,
    Profile,
    PublishOutcome,
    RecordPage,
    SegmentRef,
    SnapshotManifest,
    VersionManifest,
)
from embedding_ingest.snapshots.publish import (
    compact_published,
    pointer_key,
    publish_next_version,
    rollback,
    versions_prefix,
)
from embedding_ingest.snapshots.query import (
    ids_present,
    iter_published_pages,
    version_segments,
)
from embedding_ingest.snapshots.retention import prune_versions
from embedding_ingest.snapshots.segments import read_version, segments_prefix

__all__ = [
    "ARCHIVE_NAME",
    "MANIFEST_NAME",
    "Profile",
    "PublishOutcome",
    "RecordPage",
    "SegmentRef",
    "SnapshotManifest",
    "VersionManifest",
    "compact_published",
    "ids_present",
    "iter_pages",
    "iter_published_pages",
    "materialize",
    "merge_snapshots",
    "pointer_key",
    "prune_versions",
    "publish_next_version",
    "read_manifest",
    "read_version",
    "rollback",
    "segments_prefix",
    "version_segments",
    "versions_prefix",
    "write_snapshot",
]
