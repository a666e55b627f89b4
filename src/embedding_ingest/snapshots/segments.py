"""Layered published versions: a version is an immutable list of segments, each a closed "quality"
Chroma snapshot stored content-addressed at `{db}/snapshot/segments/{segment_id}/`.

A publish builds one small segment of the records that are new or newer than the published ones, and
rewrites the segments that held a replaced or deleted id without it (apply.py), so no id is ever in
two segments and a re-run changes nothing; reads union (ids) or merge (queries) over the segments.
Segments of similar size are merged a few at a time (merge_policy.py: tiered, bounded by a maximum
segment size, at most one merge per publish; a merge is a copy of the largest part with the others
upserted into it), so reads stay fast and no step ever folds the whole collection on local disk.
Counts are checked at every step (lesson 4): a version's count is the sum of its segments' counts,
and each segment holds exactly the unique ids that went into it."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import ValidationError

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import cache, chroma_io, chroma_sqlite, id_index
from embedding_ingest.snapshots.archive import (
    materialize,
    pack_dir,
    read_manifest,
    upload_part,
    upload_snapshot,
)
from embedding_ingest.snapshots.build import MERGE_PAGE_SIZE
from embedding_ingest.snapshots.exceptions import SnapshotConflictError, SnapshotCountMismatchError
from embedding_ingest.snapshots.flat import iter_pages
from embedding_ingest.snapshots.merge_policy import plan_merge
from embedding_ingest.snapshots.models import (
    ArchivePart,
    SegmentRef,
    SnapshotManifest,
    VersionManifest,
    manifest_key,
    segment_identity,
    vectors_key,
)
from embedding_ingest.stores.exceptions import CorruptObjectError, PreconditionFailedError
from embedding_ingest.stores.ports import ObjectStore
from embedding_ingest.stores.records import SnapshotVersion

VERSION_ID_LENGTH = 24
log = logging.getLogger(__name__)


def versions_prefix(database: str) -> str:
    return f"{database}/snapshot/versions/"


def segments_prefix(database: str) -> str:
    return f"{database}/snapshot/segments/"


def version_id_of(database: str, model: str, dimensions: int, segments: Sequence[SegmentRef],
                  tombstones_key: str | None = None) -> str:
    """Content-addressed: the same segments (in order) of the same database and model, with the same
    tombstones, are one version."""
    parts: list = [database, model, dimensions, [s.sha256 for s in segments]]
    if tombstones_key is not None:
        parts.append(tombstones_key)
    if any(s.ids_sha256 for s in segments):  # versions from before id indexes keep their ids
        parts.append(["ids", [s.ids_sha256 or "" for s in segments]])
    if any(s.vectors_sha256 for s in segments):  # and those from before vectors parts (issue 21) too
        parts.append(["vectors", [s.vectors_sha256 or "" for s in segments]])
    identity = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(identity.encode()).hexdigest()[:VERSION_ID_LENGTH]


# -- version manifests ------------------------------------------------------------------------------
def read_version(store: ObjectStore, version: SnapshotVersion) -> VersionManifest:
    """The segments of `version`. A version published before segments existed (one snapshot at its
    own prefix) reads as a version of that one segment. Raises ObjectNotFoundError/CorruptObjectError,
    and SnapshotCountMismatchError if the manifest disagrees with the ledger's count."""
    key = manifest_key(version.key)
    raw = store.get_json(key)
    if isinstance(raw, dict) and "segments" in raw:
        try:
            manifest = VersionManifest.model_validate(raw)
        except ValidationError as exc:
            raise CorruptObjectError(key, f"not a version manifest ({exc.errors()[0]['loc']} "
                                          f"{exc.errors()[0]['msg']})") from exc
        if manifest.key != version.key:
            raise CorruptObjectError(key, f"manifest describes {manifest.key!r}, not {version.key!r}")
    else:
        manifest = _legacy_version(read_manifest(store, version.key), version)
    if manifest.count != version.count:
        raise SnapshotCountMismatchError(f"version {version.database}/{version.version}", version.count,
                                         manifest.count)
    return manifest


def _legacy_version(snapshot: SnapshotManifest, version: SnapshotVersion) -> VersionManifest:
    return VersionManifest(key=version.key, database=version.database, count=snapshot.count,
                           dimensions=snapshot.dimensions, model=snapshot.model,
                           segments=[SegmentRef(key=snapshot.key, count=snapshot.count,
                                                sha256=snapshot.sha256)],
                           created_at=snapshot.created_at, sources=snapshot.sources, added=snapshot.added,
                           added_ids_digest=snapshot.added_ids_digest)


def write_version(store: ObjectStore, manifest: VersionManifest) -> VersionManifest:
    """Commit a version manifest once; an existing one must list the same segments (same id, same
    content), and then it stands."""
    key = manifest_key(manifest.key)
    try:
        store.put_json(key, manifest.model_dump(mode="json"), if_none_match=True)
        return manifest
    except PreconditionFailedError:
        existing = VersionManifest.model_validate(store.get_json(key))
        if existing.segments != manifest.segments or existing.tombstones_key != manifest.tombstones_key:
            raise SnapshotConflictError(f"{key} already lists other segments") from None
        return existing


def referenced_segments(store: ObjectStore, versions: Sequence[SnapshotVersion]) -> dict[str, SegmentRef]:
    """Every segment (by key) that one of `versions` is made of."""
    found: dict[str, SegmentRef] = {}
    for version in versions:
        for segment in read_version(store, version).segments:
            found[segment.key] = segment
    return found


def delete_unused(store: ObjectStore, database: str, doomed: Sequence[SegmentRef],
                  in_use: dict[str, SegmentRef]) -> None:
    """Delete the segments of `doomed` that no segment of `in_use` (referenced_segments of the versions
    kept) is, and their vectors parts that none of `in_use` shares (issue 21)."""
    shared = {segment.vectors_sha256 for segment in in_use.values()}
    for segment in doomed:
        if segment.key in in_use:
            continue
        store.delete_prefix(segment.key)
        if segment.vectors_sha256 is not None and segment.vectors_sha256 not in shared:
            store.delete(vectors_key(database, segment.vectors_sha256))


# -- local copies -----------------------------------------------------------------------------------
def local_segment(store: ObjectStore, settings: Settings, database: str, segment: SegmentRef,
                  dest: Path) -> Path:
    """A local persist dir of `segment`, its record count checked: the cached one when the cache is used
    (checked against the store, see cache.fetch(verify=True); an entry holding other than its count is
    fetched again), else a fresh download into `dest`."""
    if not cache.cache_enabled(settings):
        path = materialize(store, segment.key, dest)
        _check_count(path, database, segment)
        return path
    path = cache.fetch(store, settings, database, segment, verify=True)
    if _count_of(path, database) != segment.count:
        cache.evict(settings, database, segment)
        path = cache.fetch(store, settings, database, segment, verify=True)
        _check_count(path, database, segment)
    return path


def _count_of(persist_dir: Path, collection: str) -> int:
    """From SQLite (chroma_sqlite.StoredRecords), so checking a big base does not load its index."""
    return chroma_sqlite.stored_count(persist_dir, collection)


def _check_count(persist_dir: Path, collection: str, segment: SegmentRef) -> None:
    found = _count_of(persist_dir, collection)
    if found != segment.count:
        raise SnapshotCountMismatchError(f"segment {segment.key!r}", segment.count, found)


# -- building segments ------------------------------------------------------------------------------
def compact(parts: Sequence[tuple[Path, int]], work: Path, *, database: str, dimensions: int) -> int:
    """One segment at `work` holding every part's records: a copy of the largest part (its index is
    kept) with the others upserted into it. Parts hold disjoint ids, so the count must be their sum."""
    largest = max(range(len(parts)), key=lambda i: parts[i][1])
    shutil.copytree(parts[largest][0], work)
    expected = sum(count for _, count in parts)
    with chroma_io.open_client(work) as client:
        target = chroma_io.get_collection(client, database)
        for index, (path, count) in enumerate(parts):
            if index == largest:
                continue
            ids = chroma_io.upsert_pages(client, target, iter_pages(path, database, MERGE_PAGE_SIZE),
                                         dimensions=dimensions, where=f"segment {path.name}")
            if len(ids) != count:
                raise SnapshotCountMismatchError(f"segment {path.name}", count, len(ids))
        total = target.count()
        del target
    if total != expected:  # an id in two parts, or records lost
        raise SnapshotCountMismatchError(f"compaction of {len(parts)} segments of {database}", expected,
                                         total)
    return total


def upload_segment(store: ObjectStore, persist_dir: Path, scratch: Path, *, database: str, count: int,
                   dimensions: int, model: str, sources: list[str], vectors: ArchivePart | None = None
                   ) -> SegmentRef:
    """Pack a closed segment in two parts, its vectors (models.vectors_key, shared by every segment with
    the same vector files) and its records (the archive at the segment's prefix, content-addressed by
    them), commit it with its id index (id_index.py; the index file is left at
    `index_file(scratch, segment)` for the cache) and return its ref.
    `vectors`: the stored vectors part of a segment whose vectors and ids these are too (a records-only
    rewrite, issue 23; cache.stored_vectors gives it): only the records are packed and uploaded, so the
    vector files of `persist_dir` are not read (they need not be there). Raises SnapshotConflictError if
    the prefix is committed with another vectors part."""
    archive_path = scratch / "segment.tar"
    if vectors is not None:
        sha256, size = pack_dir(persist_dir, archive_path, "records")
        prebuilt = None
    else:
        # The vectors part (most of the bytes) is packed on a thread while this one packs the records
        # and builds the id index: all three only read the closed directory, and the copies and hashes
        # release the GIL (FinalMerge's ~0.3 s after the upsert, issue 21). Every write to the store
        # stays in this thread, in the order it had.
        chroma_io.ensure_released(persist_dir)
        vectors_path = scratch / "segment-vectors.tar"
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pack-vectors") as pool:
                packed = pool.submit(pack_dir, persist_dir, vectors_path, "vectors", released=True)
                sha256, size = pack_dir(persist_dir, archive_path, "records", released=True)
                building = scratch / "ids-building.sqlite3"
                prebuilt = (building, id_index.build(persist_dir, database, building))
                vectors_sha256, vectors_size = packed.result()
            vectors = upload_part(store, vectors_key(database, vectors_sha256), vectors_path,
                                  sha256=vectors_sha256, size=vectors_size)
        finally:
            vectors_path.unlink(missing_ok=True)
    prefix = f"{segments_prefix(database)}{segment_identity(sha256, vectors.sha256)}/"
    try:
        upload_snapshot(store, prefix, archive_path, sha256=sha256, size=size, collection=database,
                        count=count, dimensions=dimensions, model=model, profile="quality", sources=sources,
                        vectors=vectors)
    finally:
        archive_path.unlink(missing_ok=True)
    return attach_index(store, SegmentRef(key=prefix, count=count, sha256=sha256,
                                          vectors_sha256=vectors.sha256),
                        persist_dir, scratch, database=database, prebuilt=prebuilt)


def index_file(scratch: Path, segment: SegmentRef) -> Path:
    return scratch / f"ids-{segment.segment_id}.sqlite3"


def attach_index(store: ObjectStore, segment: SegmentRef, persist_dir: Path, scratch: Path, *,
                 database: str, prebuilt: tuple[Path, int] | None = None) -> SegmentRef:
    """`segment` with the id index of its closed persist dir built, checked against its count, and
    committed beside it. Its etag goes to `{index file}.etag` for id_index.install. `prebuilt`: the
    index file already built from `persist_dir` (id_index.build) and the ids it indexed."""
    built = index_file(scratch, segment)
    if prebuilt is None:
        indexed = id_index.build(persist_dir, database, built)
    else:
        prebuilt[0].replace(built)
        indexed = prebuilt[1]
    if indexed != segment.count:
        raise SnapshotCountMismatchError(f"id index of segment {segment.key!r}", segment.count, indexed)
    key, ids_sha256, ids_bytes, etag = id_index.upload(store, segment.key, built)
    built.with_suffix(".etag").write_text(etag or "")
    return segment.model_copy(update={"ids_key": key, "ids_sha256": ids_sha256, "ids_bytes": ids_bytes})


def install_built(settings: Settings, database: str, built: Sequence[tuple[SegmentRef, Path]],
                  segments: Sequence[SegmentRef], scratch: Path) -> None:
    """Move the segments a publish built (with their local dirs), and the id indexes it built (in
    `scratch`), into the cache (the others are there already)."""
    if cache.cache_enabled(settings):
        for segment, path in built:
            cache.install(settings, database, segment, path)
    for segment in segments:
        id_index.install(settings, database, segment, index_file(scratch, segment))


def add_tail(store: ObjectStore, parts: list[tuple[SegmentRef | None, Callable[[], Path]]],
             sizes: list[int], scratch: Path, settings: Settings, *, database: str, dimensions: int,
             model: str, tail_count: int, sources: list[str]
             ) -> tuple[list[SegmentRef], list[tuple[SegmentRef, Path]]]:
    """The new version's segments: the current ones and the tail (the last of `parts`, ref None, of
    `tail_count` records), with at most one bounded merge (merge_policy.plan_merge over `sizes`, bytes,
    and the records counts) of some of them; what is built is uploaded. Returns the segments and those
    built here with their local dirs."""
    chosen = set(plan_merge(sizes, [ref.count if ref else tail_count for ref, _ in parts], settings))
    tail_index = len(parts) - 1
    segments: list[SegmentRef] = []
    built: list[tuple[SegmentRef, Path]] = []
    if tail_index not in chosen:
        tail = parts[tail_index][1]()
        built.append((upload_segment(store, tail, scratch, database=database, count=tail_count,
                                     dimensions=dimensions, model=model, sources=sources), tail))
    if chosen:
        picked = [(parts[i][0], parts[i][1], sizes[i]) for i in sorted(chosen)]
        merged = scratch / "merged"
        count = compact([(get_dir(), ref.count if ref else tail_count) for ref, get_dir, _ in picked],
                        merged, database=database, dimensions=dimensions)
        merged_sources = [ref.key for ref, _, _ in picked if ref] + (sources if tail_index in chosen else [])
        built.append((upload_segment(store, merged, scratch, database=database, count=count,
                                     dimensions=dimensions, model=model, sources=merged_sources), merged))
        log.info("merged %d segments of %s (%d bytes) into one of %d records", len(picked), database,
                 sum(size for _, _, size in picked), count)
    segments = [ref for i, (ref, _) in enumerate(parts) if ref is not None and i not in chosen]
    return [*segments, *(segment for segment, _ in built)], built


def new_version_manifest(database: str, model: str, dimensions: int, segments: list[SegmentRef], *,
                         sources: list[str], added: int, added_ids_digest: str, deleted: int = 0,
                         replaced: int = 0, received: int | None = None,
                         tombstones_key: str | None = None, tombstones: int = 0,
                         metadata_updated: int = 0) -> VersionManifest:
    version = version_id_of(database, model, dimensions, segments, tombstones_key)
    return VersionManifest(key=f"{versions_prefix(database)}{version}/", database=database,
                           count=sum(s.count for s in segments), dimensions=dimensions, model=model,
                           segments=segments, created_at=time.time(), sources=sources, added=added,
                           added_ids_digest=added_ids_digest, deleted=deleted, replaced=replaced,
                           received=received, tombstones_key=tombstones_key, tombstones=tombstones,
                           metadata_updated=metadata_updated)
