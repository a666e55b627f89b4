"""Building snapshots: from pages of records (deltas, intermediates) and by merging snapshots.

Both are idempotent on the target prefix: a committed manifest there is returned as is, so a step
that runs twice builds once. Both count unique ids in against records out and raise on a
difference (lesson 4), and both read sources a page at a time (lesson 12)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import chroma_io
from embedding_ingest.snapshots.archive import materialize, pack_dir, read_manifest, upload_snapshot
from embedding_ingest.snapshots.exceptions import (
    ModelMismatchError,
    SnapshotConflictError,
    SnapshotCountMismatchError,
)
from embedding_ingest.snapshots.flat import LEFT_PACKED, FlatWriter, iter_pages
from embedding_ingest.snapshots.metadata_update import MetadataUpdates, read_updates
from embedding_ingest.snapshots.models import Profile, RecordPage, SnapshotManifest, check_prefix
from embedding_ingest.snapshots.revisions import read_deletions
from embedding_ingest.stores.exceptions import ObjectNotFoundError
from embedding_ingest.stores.ports import ObjectStore

MERGE_PAGE_SIZE = 1000


def existing_manifest(store: ObjectStore, prefix: str) -> SnapshotManifest | None:
    try:
        return read_manifest(store, prefix)
    except ObjectNotFoundError:
        return None


def write_snapshot(store: ObjectStore, prefix: str, pages: Iterable[RecordPage], *, collection: str,
                   dimensions: int, model: str, profile: Profile = "cheap",
                   settings: Settings | None = None,
                   deletions: Mapping[str, str] | None = None,
                   metadata_updates: MetadataUpdates | None = None) -> SnapshotManifest:
    """Build a snapshot of `pages` in a temp dir and commit it at `prefix`. For a repeated id the newer
    revision wins (later pages on a tie). `deletions` ({id: revision}, "flat" profile only) travel
    with the records (revisions.py). `settings` only tunes the "quality" profile."""
    check_prefix(prefix)
    if dimensions <= 0:
        raise InvalidInputError(f"snapshot {prefix!r}: dimensions must be positive, got {dimensions}")
    if deletions and profile != "flat":
        raise InvalidInputError(f"snapshot {prefix!r}: only flat snapshots (deltas) carry deletions")
    done = existing_manifest(store, prefix)
    if done is not None:
        return done
    with tempfile.TemporaryDirectory(prefix="snapshot-build-") as tmp:
        persist_dir = Path(tmp) / "chroma"
        if profile == "flat":
            entries = ((page, f"snapshot {prefix!r} page {n}") for n, page in enumerate(pages))
            updates = [metadata_updates] if metadata_updates else []
            counts = _write_flat(persist_dir, collection, dimensions, itertools.chain(entries, updates),
                                 deletions or {})
            return _pack_and_upload(store, prefix, persist_dir, Path(tmp), collection=collection,
                                    dimensions=dimensions, model=model, profile=profile, sources=[],
                                    **counts)
        with chroma_io.open_client(persist_dir) as client:
            col = chroma_io.create_collection(client, collection, profile, settings)
            written = chroma_io.upsert_pages(client, col, pages, dimensions=dimensions,
                                             where=f"snapshot {prefix!r}")
            count = col.count()
            del col
        if count != len(written):
            raise SnapshotCountMismatchError(f"snapshot {prefix!r}", len(written), count)
        return _pack_and_upload(store, prefix, persist_dir, Path(tmp), collection=collection,
                                count=count, dimensions=dimensions, model=model, profile=profile,
                                sources=[])


def _write_flat(persist_dir: Path, collection: str, dimensions: int,
                pages: Iterable[tuple[RecordPage, str] | dict[str, str] | MetadataUpdates],
                deletions: Mapping[str, str]) -> dict[str, int]:
    """Write pages (and deletion maps and metadata updates met among them, applied in order) as a
    flat directory; returns the manifest's count, deletions, superseded and metadata updates."""
    writer = FlatWriter(persist_dir, collection, dimensions)
    try:
        for entry in pages:
            if isinstance(entry, MetadataUpdates):
                writer.metadata.merge(entry)
            elif isinstance(entry, dict):
                writer.delete(entry)
            else:
                writer.add(*entry)
        writer.delete(deletions)
    except BaseException:
        writer.abort()
        raise
    unique = len(writer.ids)
    count = writer.close()
    if count != unique:
        raise SnapshotCountMismatchError(f"flat snapshot {persist_dir}", unique, count)
    return {"count": count, "deletions": len(writer.deletions), "superseded": writer.superseded,
            "metadata_updates": len(writer.metadata)}


def _source_pages(store: ObjectStore, manifests: Sequence[SnapshotManifest], scratch: Path
                  ) -> Iterator[tuple[RecordPage, str] | dict[str, str] | MetadataUpdates]:
    """Each source's pages, then its deletions, one source on disk at a time, each source's counts
    checked."""
    for manifest in manifests:
        source_dir = materialize(store, manifest.key, scratch / "source", packed=LEFT_PACKED)
        try:
            seen = 0
            for n, page in enumerate(iter_pages(source_dir, manifest.collection, MERGE_PAGE_SIZE)):
                seen += len(page)
                yield page, f"source {manifest.key!r} page {n}"
            deletions = read_deletions(source_dir)
            updates = read_updates(source_dir)
        finally:
            shutil.rmtree(source_dir, ignore_errors=True)
        check_source_counts(manifest, seen, len(deletions))
        yield deletions
        yield updates


def check_source_counts(manifest: SnapshotManifest, records: int, deletions: int) -> None:
    """A source read whole must hold what its manifest says (lesson 4); raises
    SnapshotCountMismatchError otherwise."""
    if records != manifest.count:
        raise SnapshotCountMismatchError(f"source {manifest.key!r}", manifest.count, records)
    if deletions != manifest.deletions:
        raise SnapshotCountMismatchError(f"deletions of source {manifest.key!r}", manifest.deletions,
                                         deletions)


def _pack_and_upload(store: ObjectStore, prefix: str, persist_dir: Path, scratch: Path,
                     **fields: Any) -> SnapshotManifest:
    if fields.get("profile") != "flat" and read_deletions(persist_dir):
        raise InvalidInputError(f"snapshot {prefix!r}: only flat snapshots carry deletions")
    archive_path = scratch / "snapshot.tar"
    sha256, size = pack_dir(persist_dir, archive_path)
    try:
        return upload_snapshot(store, prefix, archive_path, sha256=sha256, size=size, **fields)
    finally:
        archive_path.unlink(missing_ok=True)


def check_compatible(manifests: Sequence[SnapshotManifest], *, model: str | None = None,
                     dimensions: int | None = None) -> tuple[str, int]:
    """All sources must share one model and width (empty snapshots of width 0 fit anything). Sources
    without records (a deletion batch's delta) carry no vectors of any model and fit anything too, so
    deletions stamped with one model can be applied to a version of another (issue 19)."""
    holding = [manifest for manifest in manifests if manifest.count > 0] or list(manifests[:1])
    for manifest in holding:
        if model is None:
            model = manifest.model
        elif manifest.model != model:
            raise ModelMismatchError(f"snapshot {manifest.key!r} holds vectors of model {manifest.model!r}, "
                                     f"expected {model!r}; they cannot share a collection")
        if manifest.dimensions == 0:
            continue
        if dimensions in (None, 0):
            dimensions = manifest.dimensions
        elif manifest.dimensions != dimensions:
            raise ModelMismatchError(f"snapshot {manifest.key!r} has {manifest.dimensions}-d vectors, "
                                     f"expected {dimensions}-d")
    if model is None:
        raise InvalidInputError("no source snapshots and no model to build with")
    return model, dimensions or 0


def upsert_snapshot_into(store: ObjectStore, manifest: SnapshotManifest, client, target, *,
                         dimensions: int, scratch: Path, present: set[str] | None = None) -> set[str]:
    """Download one source snapshot and upsert its records page by page; returns its ids. With
    `present`, the ids the target already held before each page's upsert are added to it."""
    source_dir = materialize(store, manifest.key, scratch / "source", packed=LEFT_PACKED)
    pages = iter_pages(source_dir, manifest.collection, MERGE_PAGE_SIZE)
    if present is not None:
        pages = _noting_present(client, target, pages, present)
    try:
        ids = chroma_io.upsert_pages(client, target, pages, dimensions=dimensions,
                                     where=f"source {manifest.key!r}")
    finally:
        shutil.rmtree(source_dir, ignore_errors=True)
    if len(ids) != manifest.count:
        raise SnapshotCountMismatchError(f"source {manifest.key!r}", manifest.count, len(ids))
    return ids


def _noting_present(client, target, pages: Iterable[RecordPage], present: set[str]) -> Iterator[RecordPage]:
    for page in pages:
        present |= chroma_io.ids_in(client, target, page.ids)
        yield page


def merge_snapshots(store: ObjectStore, sources: Sequence[str], target_prefix: str, *, collection: str,
                    profile: Profile = "cheap", settings: Settings | None = None) -> SnapshotManifest:
    """Upsert every source's records (by id) into one snapshot at `target_prefix`."""
    check_prefix(target_prefix)
    wanted = sorted(set(sources))
    if not wanted:
        raise InvalidInputError(f"merge into {target_prefix!r} needs at least one source snapshot")
    done = existing_manifest(store, target_prefix)
    if done is not None:
        if sorted(done.sources) != wanted:
            raise SnapshotConflictError(f"{target_prefix!r} already holds a merge of {done.sources}, "
                                        f"not of {wanted}")
        return done
    manifests = [read_manifest(store, check_prefix(prefix)) for prefix in wanted]
    model, dimensions = check_compatible(manifests)
    if profile == "flat":  # no index to reuse: append every source in order (newer revision wins)
        with tempfile.TemporaryDirectory(prefix="snapshot-merge-") as tmp:
            persist_dir = Path(tmp) / "chroma"
            counts = _write_flat(persist_dir, collection, dimensions,
                                 _source_pages(store, manifests, Path(tmp)), {})
            return _pack_and_upload(store, target_prefix, persist_dir, Path(tmp), collection=collection,
                                    dimensions=dimensions, model=model, profile=profile, sources=wanted,
                                    **counts)
    if any(m.deletions for m in manifests):
        raise InvalidInputError(f"merge into {target_prefix!r}: sources carry deletions, which only a "
                                "flat merge or a publish applies")
    # Fast path (tooling notes): start from a copy of the largest source when it is already the
    # collection and index profile we want, and upsert only the others into it.
    largest = max(manifests, key=lambda m: m.count)
    base = largest if (largest.profile == profile and largest.collection == collection) else None
    with tempfile.TemporaryDirectory(prefix="snapshot-merge-") as tmp:
        scratch = Path(tmp)
        persist_dir = scratch / "chroma"
        unique: set[str] = set()
        if base is not None:
            materialize(store, base.key, persist_dir)
        with chroma_io.open_client(persist_dir) as client:
            if base is not None:
                target = chroma_io.get_collection(client, collection)
                unique.update(chroma_io.iter_ids(client, target))
                if len(unique) != base.count:
                    raise SnapshotCountMismatchError(f"source {base.key!r}", base.count, len(unique))
            else:
                target = chroma_io.create_collection(client, collection, profile, settings)
            for manifest in manifests:
                if manifest is not base:
                    unique |= upsert_snapshot_into(store, manifest, client, target,
                                                   dimensions=dimensions, scratch=scratch)
            count = target.count()
            del target
        if count != len(unique):
            raise SnapshotCountMismatchError(f"merge into {target_prefix!r}", len(unique), count)
        return _pack_and_upload(store, target_prefix, persist_dir, scratch, collection=collection,
                                count=count, dimensions=dimensions, model=model, profile=profile,
                                sources=wanted)
