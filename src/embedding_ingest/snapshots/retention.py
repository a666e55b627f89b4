"""Version retention after a publish: forget all but the newest versions of a pointer, delete the
segments no kept version of any pointer uses, prune the local segment cache to match, then refresh the
plain mirror. Called by snapshots.publish once the pointer has moved (a failure here never fails it)."""

from __future__ import annotations

import logging

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.snapshots import cache
from embedding_ingest.snapshots.mirror import one_line, refresh_plain_mirror
from embedding_ingest.snapshots.pointers import other_pointers_versions, pinned_versions
from embedding_ingest.snapshots.segments import delete_unused, read_version, referenced_segments
from embedding_ingest.stores.exceptions import ObjectNotFoundError
from embedding_ingest.stores.ports import Ledger, ObjectStore

log = logging.getLogger(__name__)


def tidy_after_publish(store: ObjectStore, ledger: Ledger, database: str, settings: Settings, *,
          pointer: str | None = None) -> tuple[str | None, str | None]:
    """Prune after a committed publish, then refresh the plain mirror (SNAPSHOT_PUBLISH_PLAIN only; the
    live pointer only). Failing here must not fail the publish (a retry would publish again), so each
    problem is logged and returned as one line: (prune problem, plain mirror problem). The next publish
    prunes the versions still kept beyond the limit; objects of a version the ledger already forgot stay."""
    prune_error = None
    try:
        prune_versions(store, ledger, database=database, keep=settings.snapshot_versions_kept,
                       pointer=pointer)
        if cache.cache_enabled(settings):
            kept = referenced_segments(store, [*ledger.list_versions(database, pointer=pointer),
                                               *other_pointers_versions(ledger, database, pointer)])
            cache.prune(settings, database, {segment.segment_id for segment in kept.values()})
    except Exception as exc:  # recorded on the publish outcome; the next publish prunes again
        prune_error = one_line(f"pruning {database} after publish failed", exc)
        log.warning("%s", prune_error)
    if pointer is not None:
        return prune_error, None
    return prune_error, refresh_plain_mirror(store, ledger, settings, database)


def prune_versions(store: ObjectStore, ledger: Ledger, *, database: str, keep: int,
                   pointer: str | None = None) -> list[str]:
    """Forget all but the newest `keep` versions of the pointer (never its current one, nor one a
    migration may roll back to) and delete the segments no kept version of any pointer uses. Returns
    the versions removed. The ledger forgets a version before its objects go, so nothing can point at
    a deleted archive."""
    if keep < 1:
        raise InvalidInputError(f"prune_versions keeps at least one version, got keep={keep}")
    versions = ledger.list_versions(database, pointer=pointer)
    current = ledger.get_published(database, pointer=pointer)
    pinned = pinned_versions(ledger, database) if pointer is None else set()
    doomed = [v for v in versions[keep:]
              if (current is None or v.version != current.version) and v.version not in pinned]
    if not doomed:
        return []
    in_use = referenced_segments(store, [*(v for v in versions if v not in doomed),
                                         *other_pointers_versions(ledger, database, pointer)])
    removed = []
    for old in doomed:
        try:
            segments = read_version(store, old).segments
        except ObjectNotFoundError:
            segments = []
        ledger.forget_version(database, old.version, pointer=pointer)
        if old.key not in in_use:  # a version from before segments is itself its only segment
            store.delete_prefix(old.key)
        delete_unused(store, database, segments, in_use)
        removed.append(old.version)
    return removed
