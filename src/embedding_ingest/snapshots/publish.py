"""Publishing the next version of a database's snapshot, rolling back, and pruning old versions.

The ledger's pointer is authoritative. A publish builds on the version it read, uploads the result
under an immutable key derived from the archive's sha256, and then moves the pointer with one
conditional write that checks both the lease's fencing token and that the pointer still names the
version it built on (lesson 9: no lost updates, no late writer winning). The object-store
`latest/pointer.json` is a mirror for people and tools, never read back by the pipeline."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import cache, chroma_io
from embedding_ingest.snapshots.archive import materialize, pack_dir, read_manifest, upload_snapshot
from embedding_ingest.snapshots.build import check_compatible, upsert_snapshot_into
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError, VersionNotFoundError
from embedding_ingest.snapshots.models import PublishOutcome, check_prefix
from embedding_ingest.stores.exceptions import (
    PointerConflictError,
    PreconditionFailedError,
    StaleFencingTokenError,
)
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import Lease, SnapshotVersion

log = logging.getLogger(__name__)
VERSION_ID_LENGTH = 24


def versions_prefix(database: str) -> str:
    return f"{database}/snapshot/versions/"


def pointer_key(database: str) -> str:
    return f"{database}/snapshot/latest/pointer.json"


def ids_digest(ids: set[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _check_lease(ledger: Ledger, lease: Lease, database: str) -> None:
    """Fail fast before hours of work; the conditional publish re-checks at the end regardless."""
    if lease.name != database:
        raise InvalidInputError(f"lease is for lock {lease.name!r}, publishing {database!r} needs "
                                f"the lock named {database!r}")
    held = ledger.current_lease(database)
    if held is None or held.fencing_token != lease.fencing_token or held.owner != lease.owner:
        raise StaleFencingTokenError(f"lease of {lease.owner!r} (token {lease.fencing_token}) no longer "
                                     f"holds the lock {database!r}")


def _base_copy(store: ObjectStore, settings: Settings, current: SnapshotVersion, work: Path) -> None:
    """Put the current version's persist dir at `work`: a copy of the cached one when the cache is
    used (downloading only on a miss), else a fresh download."""
    if cache.cache_enabled(settings):
        shutil.copytree(cache.fetch(store, settings, current), work)
        with chroma_io.open_client(work) as client:
            found = chroma_io.get_collection(client, current.database).count()
        if found == current.count:
            return
        log.warning("cached %s/%s holds %d records, ledger says %d: fetching it again",
                    current.database, current.version, found, current.count)
        shutil.rmtree(work)
        cache.evict(settings, current.database, current.version)
        shutil.copytree(cache.fetch(store, settings, current), work)
        return
    materialize(store, current.key, work)


def _previous_outcome(store: ObjectStore, current: SnapshotVersion, sources: list[str]
                      ) -> PublishOutcome | None:
    """A re-run of the publish that produced `current` (same sources): report it, do not redo it."""
    manifest = read_manifest(store, current.key)
    if sources and sorted(manifest.sources) == sources and manifest.added is not None:
        return PublishOutcome(current, current.count, manifest.added, manifest.added_ids_digest or "")
    if not sources:
        return PublishOutcome(current, current.count, 0, ids_digest(set()))
    return None


def publish_next_version(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str,
                         sources: Sequence[str], settings: Settings) -> PublishOutcome:
    """Publish current ∪ sources as the next version of `database` (see module docstring)."""
    _check_lease(ledger, lease, database)
    wanted = sorted({check_prefix(s) for s in sources})
    current = ledger.get_published(database)
    if current is not None and (again := _previous_outcome(store, current, wanted)) is not None:
        return again
    manifests = [read_manifest(store, prefix) for prefix in wanted]
    if current is not None:
        model, dimensions = check_compatible(manifests, model=current.model, dimensions=current.dimensions)
    elif manifests:
        model, dimensions = check_compatible(manifests)
    else:
        model, dimensions = settings.embedding_model, settings.embedding_dimensions
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(settings, database),
                                     prefix="publish-") as tmp:
        scratch = Path(tmp)
        work = scratch / "chroma"
        if current is not None:
            _base_copy(store, settings, current, work)
        with chroma_io.open_client(work) as client:
            if current is not None:
                target = chroma_io.get_collection(client, database)
                before = target.count()
                if before != current.count:
                    raise SnapshotCountMismatchError(f"published {database}/{current.version}",
                                                     current.count, before)
            else:
                target = chroma_io.create_collection(client, database, "quality", settings)
                before = 0
            # Only the incoming ids are looked up (not every published id): O(added), not O(total).
            added: set[str] = set()
            present: set[str] = set()
            for manifest in manifests:
                added |= upsert_snapshot_into(store, manifest, client, target, dimensions=dimensions,
                                              scratch=scratch, present=present)
            total = target.count()
            del target
        expected = before + len(added - present)
        if total != expected:
            raise SnapshotCountMismatchError(f"publish of {database}", expected, total)
        digest = ids_digest(added)
        archive_path = scratch / "snapshot.tar"
        sha256, size = pack_dir(work, archive_path)
        version_id = sha256[:VERSION_ID_LENGTH]
        prefix = f"{versions_prefix(database)}{version_id}/"
        upload_snapshot(store, prefix, archive_path, sha256=sha256, size=size, collection=database,
                        count=total, dimensions=dimensions, model=model, profile="quality",
                        sources=wanted, create_only=True, added=len(added), added_ids_digest=digest)
        archive_path.unlink()
        published = SnapshotVersion(database=database, version=version_id, key=prefix, count=total,
                                    dimensions=dimensions, model=model, published_at=time.time(),
                                    fencing_token=lease.fencing_token,
                                    parent_version=current.version if current else None)
        _move_pointer(store, ledger, lease, published, current)
        if cache.cache_enabled(settings):
            cache.install(settings, published, work)
    _tidy(store, ledger, database, settings)
    return PublishOutcome(published, total, len(added), digest)


def _move_pointer(store: ObjectStore, ledger: Ledger, lease: Lease, new: SnapshotVersion,
                  current: SnapshotVersion | None) -> None:
    try:
        ledger.publish_version(new, expected_current=current.version if current else None, lease=lease)
    except (StaleFencingTokenError, PointerConflictError):
        # Refused: the uploaded version is referenced by nothing, unless it is an existing version.
        if not any(v.version == new.version for v in ledger.list_versions(new.database)):
            store.delete_prefix(new.key)
        raise
    write_pointer_mirror(store, new)


def write_pointer_mirror(store: ObjectStore, version: SnapshotVersion) -> None:
    """Best-effort mirror of the ledger's pointer; never moves back to an older fencing token."""
    key = pointer_key(version.database)
    body = version.model_dump(mode="json")
    for _ in range(3):
        info = store.head(key)
        try:
            if info is None:
                store.put_json(key, body, if_none_match=True)
                return
            existing = store.get_json(key)
            if int(existing.get("fencing_token", -1)) > version.fencing_token:
                return
            store.put_json(key, body, if_match=info.etag)
            return
        except PreconditionFailedError:
            continue
        except Exception as exc:  # the mirror is informational: never fail a committed publish
            log.warning("could not write %s: %s", key, exc)
            return


def _tidy(store: ObjectStore, ledger: Ledger, database: str, settings: Settings) -> None:
    """Prune after a committed publish. Failing here must not fail the publish (a retry would
    publish again), so problems are logged and left for the next publish."""
    try:
        prune_versions(store, ledger, database=database, keep=settings.snapshot_versions_kept)
        if cache.cache_enabled(settings):
            cache.prune(settings, database, {v.version for v in ledger.list_versions(database)})
    except Exception as exc:
        log.warning("pruning %s after publish failed (will retry next publish): %s", database, exc)


def prune_versions(store: ObjectStore, ledger: Ledger, *, database: str, keep: int) -> list[str]:
    """Forget and delete all but the newest `keep` versions; never the current one. Returns the
    versions removed. The ledger forgets a version before its objects go, so nothing can point at
    a deleted archive."""
    if keep < 1:
        raise InvalidInputError(f"prune_versions keeps at least one version, got keep={keep}")
    removed = []
    for old in ledger.list_versions(database)[keep:]:
        current = ledger.get_published(database)
        if current is not None and current.version == old.version:
            continue
        ledger.forget_version(database, old.version)
        store.delete_prefix(old.key)
        removed.append(old.version)
    return removed


def rollback(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str,
             version: str) -> SnapshotVersion:
    """Point `database` back at a kept older `version` (under the lease, by the same CAS)."""
    _check_lease(ledger, lease, database)
    target = next((v for v in ledger.list_versions(database) if v.version == version), None)
    if target is None:
        raise VersionNotFoundError(database, version)
    read_manifest(store, target.key)  # its objects must still be there
    current = ledger.get_published(database)
    if current is not None and current.version == version:
        return current
    moved = target.model_copy(update={"published_at": time.time(), "fencing_token": lease.fencing_token,
                                      "parent_version": current.version if current else None})
    _move_pointer(store, ledger, lease, moved, current)
    return moved
