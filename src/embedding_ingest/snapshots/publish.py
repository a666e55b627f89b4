"""Publishing the next version of a database's snapshot, compacting, rolling back, and pruning.

The ledger's pointer is authoritative. A publish builds on the version it read: it adds one segment of
the records that version lacks or holds an older revision of, rewrites the segments holding replaced or
deleted ids (apply.py, revisions.py), or folds everything into one base segment (segments.py), commits
the version manifest under an id derived from its segment list, and then moves the pointer with one
conditional write that checks both the lease's fencing token and that the pointer still names the
version it built on (lesson 9: no lost updates, no late writer winning). The object-store
`latest/pointer.json` is a mirror for people and tools, never read back by the pipeline."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import cache
from embedding_ingest.snapshots.apply import TailPlan, build_tail
from embedding_ingest.snapshots.archive import read_manifest
from embedding_ingest.snapshots.base_segments import BaseSegments
from embedding_ingest.snapshots.build import check_compatible
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.snapshots.merge_policy import dir_bytes, plan_merge
from embedding_ingest.snapshots.metadata_update import carry_into_tail, rewrite_segment, vector_files
from embedding_ingest.snapshots.mirror import one_line
from embedding_ingest.snapshots.models import (
    PublishOutcome,
    SegmentRef,
    VersionManifest,
    check_prefix,
)
from embedding_ingest.snapshots.pointers import other_pointers_versions
from embedding_ingest.snapshots.retention import tidy_after_publish
from embedding_ingest.snapshots.revisions import check_tombstones, tombstones_key
from embedding_ingest.snapshots.segments import (
    add_tail,
    compact,
    delete_unused,
    install_built,
    new_version_manifest,
    read_version,
    referenced_segments,
    upload_segment,
    versions_prefix,
    write_version,
)
from embedding_ingest.snapshots.verify import check_version
from embedding_ingest.snapshots.version_ids import match_version
from embedding_ingest.stores.exceptions import (
    PointerConflictError,
    PreconditionFailedError,
    StaleFencingTokenError,
)
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import Lease, SnapshotVersion

log = logging.getLogger(__name__)
__all__ = ["compact_published", "pointer_key", "publish_next_version", "rollback",
           "versions_prefix", "write_pointer_mirror"]


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


def _previous_outcome(current: SnapshotVersion, manifest: VersionManifest, sources: list[str]
                      ) -> PublishOutcome | None:
    """A re-run of the publish that produced `current` (same sources): report it, do not redo it."""
    if sources and sorted(manifest.sources) == sources and manifest.added is not None:
        return PublishOutcome(current, current.count, manifest.added, manifest.added_ids_digest or "",
                              deleted_embeddings=manifest.deleted, replaced_embeddings=manifest.replaced,
                              received=manifest.received, metadata_updated=manifest.metadata_updated)
    if not sources:
        return PublishOutcome(current, current.count, 0, ids_digest(set()))
    return None


def publish_next_version(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str,
                         sources: Sequence[str], settings: Settings, pointer: str | None = None,
                         records: bool = True) -> PublishOutcome:
    """Publish the sources onto the current version of `database` as its next version, under `lease`.

    The contract (snapshots/revisions.py): a source record is added when its id is not published,
    replaces the published record of its id when its revision is newer (same id, new document, vector
    and metadata), and is ignored otherwise; a source deletion removes a published id whose revision
    is not newer. Counts are checked: published = previous + added - deleted. Applying the same
    sources again (a rerun) returns the version they made; older entries never undo newer ones.
    What fails after the pointer moved (the object-store mirrors, pruning) does not fail the publish:
    it is on the outcome (`mirror_error`, `prune_error`) and in the log.
    `pointer` publishes to another pointer of the database (a migration's staging one; ports.py);
    `records=False` applies only the sources' deletions (a migration's live pointer: issue 19), so
    records of another model never reach it.
    Raises StaleFencingTokenError / PointerConflictError (lost the lock or the race),
    SnapshotCountMismatchError, ModelMismatchError."""
    _check_lease(ledger, lease, database)
    wanted = sorted({check_prefix(s) for s in sources})
    current = ledger.get_published(database, pointer=pointer)
    base = read_version(store, current) if current is not None else None
    if current is not None and (again := _previous_outcome(current, base, wanted)) is not None:
        return again
    manifests = [read_manifest(store, prefix) for prefix in wanted]
    if not records:
        if current is None:
            raise InvalidInputError(f"{pointer or database}: nothing published to apply deletions to")
        model, dimensions = current.model, current.dimensions
    elif current is not None:
        model, dimensions = check_compatible(manifests, model=current.model, dimensions=current.dimensions)
    elif manifests:
        model, dimensions = check_compatible(manifests)
    else:
        model, dimensions = settings.embedding_model, settings.embedding_dimensions
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(settings, database), prefix="publish-") as tmp, \
            BaseSegments(store, settings, base, Path(tmp)) as held:
        scratch = Path(tmp)
        tail = scratch / "tail"
        plan = build_tail(store, manifests, held.readers, tail, database=database, dimensions=dimensions,
                          settings=settings, scratch=scratch, tombstones=_tombstones(store, base),
                          with_records=records)
        digest = ids_digest(plan.incoming)
        if current is not None and not plan.changes_anything():  # everything is published already
            return _outcome(current, plan, digest)
        segments, current_dirs, sizes = _without_removed(store, plan, held, scratch, database=database,
                                                         dimensions=dimensions, model=model)
        built: list[tuple[SegmentRef, Path]] = []
        carry_into_tail(tail, database, plan.metadata.carried)  # read by _without_removed
        if plan.written:
            parts = [*zip(segments, current_dirs, strict=True), (None, functools.partial(Path, tail))]
            segments, built = add_tail(store, parts, [*sizes, dir_bytes(tail)], scratch, settings,
                                       database=database, dimensions=dimensions, model=model,
                                       tail_count=len(plan.written), sources=wanted)
        previous = current.count if current is not None else 0
        expected = previous + len(plan.new_ids) - len(plan.deleted)
        total = sum(s.count for s in segments)
        if total != expected:
            raise SnapshotCountMismatchError(
                f"publish of {database} (previous {previous} + added {len(plan.new_ids)} - deleted "
                f"{len(plan.deleted)})", expected, total)
        manifest = write_version(store, new_version_manifest(
            database, model, dimensions, segments, sources=wanted, added=len(plan.incoming),
            added_ids_digest=digest, deleted=len(plan.deleted), replaced=len(plan.replaced),
            received=plan.received, metadata_updated=plan.metadata.updated,
            **_store_tombstones(store, database, plan, base)))
        published, pointer_error = _publish_manifest(store, ledger, lease, manifest, current, pointer=pointer)
        install_built(settings, database, built, segments, scratch)
    prune_error, plain_error = tidy_after_publish(store, ledger, database, settings, pointer=pointer)
    mirror_error = "; ".join(problem for problem in (pointer_error, plain_error) if problem) or None
    return dataclasses.replace(_outcome(published, plan, digest), mirror_error=mirror_error,
                               prune_error=prune_error)


def _tombstones(store: ObjectStore, base: VersionManifest | None) -> dict[str, str]:
    if base is None or base.tombstones_key is None:
        return {}
    return check_tombstones(base.tombstones_key, store.get_json(base.tombstones_key))


def _store_tombstones(store: ObjectStore, database: str, plan: TailPlan, base: VersionManifest | None
                      ) -> dict:
    """The new version's tombstones fields; the object is written once per distinct content."""
    if not plan.tombstones_changed:
        return {"tombstones_key": base.tombstones_key if base else None,
                "tombstones": base.tombstones if base else 0}
    if not plan.tombstones:
        return {"tombstones_key": None, "tombstones": 0}
    key, body = tombstones_key(database, plan.tombstones)
    if not store.exists(key):
        store.put_bytes(key, body.encode())
    return {"tombstones_key": key, "tombstones": len(plan.tombstones)}


def _outcome(version: SnapshotVersion, plan: TailPlan, digest: str) -> PublishOutcome:
    return PublishOutcome(version, version.count, len(plan.incoming), digest,
                          deleted_embeddings=len(plan.deleted), replaced_embeddings=len(plan.replaced),
                          superseded=plan.superseded, received=plan.received,
                          metadata_updated=plan.metadata.updated)


def _without_removed(store: ObjectStore, plan: TailPlan, held: BaseSegments, scratch: Path, *,
                     database: str, dimensions: int, model: str
                     ) -> tuple[list[SegmentRef], list[Callable[[], Path]], list[int]]:
    """The current segments with replaced and deleted ids taken out and metadata updates applied
    (issue 23): each affected segment is rewritten as a new (content-addressed) segment; one left
    empty is dropped. A rewrite that wrote no vector file (metadata updates only) packs and uploads
    only its records, beside the segment's stored vectors part (issue 21's split). Returns the
    segments, for each how to get its local persist dir (only the affected ones are fetched here), and
    their sizes in bytes."""
    kept_segments: list[SegmentRef] = []
    kept_dirs: list[Callable[[], Path]] = []
    kept_sizes: list[int] = []
    for index, segment in enumerate(held.segments):
        doomed = plan.removals.get(index, set())
        changed = plan.metadata.changes.get(index, {})
        if not doomed and not changed:
            kept_segments.append(segment)
            kept_dirs.append(functools.partial(held.dir, index))
            kept_sizes.append(held.sizes[index])
            continue
        work = scratch / f"rewritten-{index}"
        count = rewrite_segment(held.dir(index), work, database=database, remove=doomed, updates=changed,
                                expected=segment.count, carry=plan.metadata.newer_published.get(index, ()),
                                carried=plan.metadata.carried)
        if count == 0:
            continue
        vectors = held.stored_vectors(index) if vector_files(work) == vector_files(held.dir(index)) else None
        kept_segments.append(upload_segment(store, work, scratch, database=database, count=count,
                                            dimensions=dimensions, model=model, sources=[segment.key],
                                            vectors=vectors))
        kept_dirs.append(functools.partial(Path, work))
        kept_sizes.append(dir_bytes(work))
    return kept_segments, kept_dirs, kept_sizes


def compact_published(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str,
                      settings: Settings) -> SnapshotVersion | None:
    """Merge the current version's segments, in bounded merges (merge_policy.plan_merge with
    compact=True: at most SNAPSHOT_MERGE_FACTOR segments, SNAPSHOT_MAX_SEGMENT_BYTES and
    SNAPSHOT_MAX_SEGMENT_RECORDS per merge,
    full segments never), each published as the next version (same records, same tombstones), until
    no merge is left. Returns the version then current (unchanged when nothing could be merged), None
    when nothing is published."""
    _check_lease(ledger, lease, database)
    while True:
        current = ledger.get_published(database)
        if current is None:
            return None
        base = read_version(store, current)
        scratch_root = cache.scratch_root(settings, database)
        with tempfile.TemporaryDirectory(dir=scratch_root, prefix="compact-") as tmp, \
                BaseSegments(store, settings, base, Path(tmp)) as held:
            scratch = Path(tmp)
            chosen = plan_merge(held.sizes, [s.count for s in held.segments], settings, compact=True)
            if not chosen:
                return current
            built = scratch / "merged"
            count = compact([(held.dir(i), held.segments[i].count) for i in chosen], built,
                            database=database, dimensions=base.dimensions)
            segment = upload_segment(store, built, scratch, database=database, count=count,
                                     dimensions=base.dimensions, model=base.model,
                                     sources=[held.segments[i].key for i in chosen])
            segments = [s for i, s in enumerate(held.segments) if i not in chosen] + [segment]
            manifest = write_version(store, new_version_manifest(
                database, base.model, base.dimensions, segments, sources=base.sources,
                added=base.added or 0, added_ids_digest=base.added_ids_digest or ids_digest(set()),
                tombstones_key=base.tombstones_key, tombstones=base.tombstones))
            _publish_manifest(store, ledger, lease, manifest, current)  # the mirror's problem is logged
            install_built(settings, database, [(segment, built)], segments, scratch)
        tidy_after_publish(store, ledger, database, settings)  # logged: compacting changes no record


def _publish_manifest(store: ObjectStore, ledger: Ledger, lease: Lease, manifest: VersionManifest,
                      current: SnapshotVersion | None, *, pointer: str | None = None
                      ) -> tuple[SnapshotVersion, str | None]:
    """Move the pointer to `manifest`: the published version, and the pointer mirror's problem."""
    version = manifest.key.rstrip("/").rsplit("/", 1)[-1]
    published = SnapshotVersion(database=manifest.database, version=version, key=manifest.key,
                                count=manifest.count, dimensions=manifest.dimensions, model=manifest.model,
                                published_at=time.time(), fencing_token=lease.fencing_token,
                                parent_version=current.version if current else None)
    return published, _move_pointer(store, ledger, lease, published, current, manifest.segments,
                                    pointer=pointer)


def _move_pointer(store: ObjectStore, ledger: Ledger, lease: Lease, new: SnapshotVersion,
                  current: SnapshotVersion | None, segments: Sequence[SegmentRef] = (), *,
                  pointer: str | None = None) -> str | None:
    """The conditional pointer move, then its mirror (whose problem, if any, is returned; the mirror
    is the live pointer's only, for people and tools)."""
    try:
        ledger.publish_version(new, expected_current=current.version if current else None, lease=lease,
                               pointer=pointer)
    except (StaleFencingTokenError, PointerConflictError):
        _drop_refused(store, ledger, new, segments, pointer=pointer)
        raise
    return write_pointer_mirror(store, new) if pointer is None else None


def _drop_refused(store: ObjectStore, ledger: Ledger, new: SnapshotVersion, segments: Sequence[SegmentRef],
                  *, pointer: str | None = None) -> None:
    """A refused version and its segments are referenced by nothing, unless a kept version uses them."""
    kept = ledger.list_versions(new.database, pointer=pointer)
    if any(v.version == new.version for v in kept):
        return
    store.delete_prefix(new.key)
    try:
        in_use = referenced_segments(store, [*kept, *other_pointers_versions(ledger, new.database,
                                                                            pointer)])
    except Exception as exc:  # cannot tell what is shared: keep them (the refusal is what matters)
        log.warning("refused publish of %s left its segments behind: %s", new.version, exc)
        return
    delete_unused(store, new.database, segments, in_use)


def write_pointer_mirror(store: ObjectStore, version: SnapshotVersion) -> str | None:
    """Best-effort mirror of the ledger's pointer; never moves back to an older fencing token. A
    failure is logged and returned as one line (None: written, or a newer version's already is)."""
    key = pointer_key(version.database)
    body = version.model_dump(mode="json")
    for _ in range(3):
        info = store.head(key)
        try:
            if info is None:
                store.put_json(key, body, if_none_match=True)
                return None
            existing = store.get_json(key)
            if int(existing.get("fencing_token", -1)) > version.fencing_token:
                return None
            store.put_json(key, body, if_match=info.etag)
            return None
        except PreconditionFailedError:
            continue
        except Exception as exc:  # the mirror is informational: never fail a committed publish
            problem = one_line(f"could not write {key}", exc)
            log.warning("%s", problem)
            return problem
    problem = f"could not write {key}: it changed under each of 3 conditional writes"
    log.warning("%s", problem)
    return problem


def rollback(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str,
             version: str, from_pointer: str | None = None, verify: bool = True) -> SnapshotVersion:
    """Point `database` back at a kept older `version` (whole, or a unique prefix of at least 8
    characters: version_ids.match_version) under the lease, by the same CAS; or, with
    `from_pointer`, at a version of another pointer (a migration's switch to its staging version). The
    target's objects are downloaded and checked first (snapshots.verify.check_version; `verify=False`
    skips it for a version this process's publishes have just written and counted): a rollback that
    raises has moved nothing."""
    _check_lease(ledger, lease, database)
    target = match_version(ledger.list_versions(database, pointer=from_pointer), database, version)
    if verify:
        check_version(store, target)  # every object whole, before anything moves
    current = ledger.get_published(database)
    if current is not None and current.version == target.version:
        return current
    moved = target.model_copy(update={"published_at": time.time(), "fencing_token": lease.fencing_token,
                                      "parent_version": current.version if current else None})
    _move_pointer(store, ledger, lease, moved, current)  # a pointer mirror problem is logged
    return moved
