"""Applying a publish's sources (deltas merged into intermediates) to the current version: which
records are new, which replace a published record, which deletions remove one, and the rewritten
segments that result. The rules are those of revisions.py: an entry acts only on an id whose
published (or already accepted) entry has an older revision, so applying the same sources again,
or an old delta after a newer one, changes nothing."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from embedding_ingest.config import Settings
from embedding_ingest.snapshots import chroma_io
from embedding_ingest.snapshots.archive import materialize
from embedding_ingest.snapshots.build import MERGE_PAGE_SIZE, check_source_counts
from embedding_ingest.snapshots.exceptions import SnapshotCountMismatchError
from embedding_ingest.snapshots.flat import LEFT_PACKED, iter_pages
from embedding_ingest.snapshots.metadata_update import (
    MetadataPlan,
    MetadataUpdates,
    newer_published,
    plan_updates,
    read_updates,
    record_version,
)
from embedding_ingest.snapshots.models import SnapshotManifest
from embedding_ingest.snapshots.revisions import newer, read_deletions, record_revision
from embedding_ingest.stores.ports import ObjectStore


@dataclass
class TailPlan:
    """What applying the sources does. Ids in `replaced` and `deleted` leave their current segment
    (`removals`: segment index -> ids); `written` are the ids of the new tail segment."""

    incoming: set[str] = field(default_factory=set)  # unique record ids of the sources
    written: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    removals: dict[int, set[str]] = field(default_factory=dict)
    received: int = 0  # records + deletions read from the sources (each source's counts checked)
    superseded: int = 0  # source entries that lost to a newer entry for the same id
    tombstones: dict[str, str] = field(default_factory=dict)  # of the new version (revisions.py)
    tombstones_changed: bool = False
    metadata: MetadataPlan = field(default_factory=MetadataPlan)  # issue 23 (metadata_update.py)
    incoming_versions: dict[str, int] = field(default_factory=dict)  # metadata_version of replacing records

    @property
    def new_ids(self) -> set[str]:
        return self.written - self.replaced

    def changes_anything(self) -> bool:
        return bool(self.written or self.deleted or self.tombstones_changed or self.metadata.updated)


class RevisionReader(Protocol):
    """What a publish asks of a current segment (id_index.IdIndex, chroma_sqlite.StoredRecords)."""

    def revisions(self, ids: Sequence[str]) -> dict[str, str]: ...

    def metadata_versions(self, ids: Sequence[str]) -> dict[str, int]: ...


def build_tail(store: ObjectStore, sources: Sequence[SnapshotManifest], held: Sequence[RevisionReader],
               work: Path, *, database: str, dimensions: int, settings: Settings,
               scratch: Path, tombstones: dict[str, str] | None = None, with_records: bool = True
               ) -> TailPlan:
    """Build at `work` a "quality" segment of the sources' records that are newer than what the
    current segments hold (`held`: one reader per segment, in the version's order; their id indexes,
    so no segment's vectors are read) and than the current `tombstones` (revisions.py), and plan the
    removals from current segments and the new version's tombstones. `with_records=False` applies the
    sources' deletions and metadata updates only (their records are of another model: a migration's
    live pointer, issue 19)."""
    plan = TailPlan(tombstones=dict(tombstones or {}))
    tail_revisions: dict[str, str] = {}
    deletions: dict[str, str] = {}
    updates = MetadataUpdates()
    with contextlib.ExitStack() as stack:
        target_client = stack.enter_context(chroma_io.open_client(work))
        target = chroma_io.create_collection(target_client, database, "quality", settings)
        for source in sources:
            source_dir = materialize(store, source.key, scratch / "source", packed=LEFT_PACKED)
            try:
                seen = _apply_records(source, source_dir, held, target_client, target, plan,
                                      tail_revisions, dimensions=dimensions) if with_records else source.count
                found = read_deletions(source_dir)
                updates.merge(read_updates(source_dir))
            finally:
                shutil.rmtree(source_dir, ignore_errors=True)
            check_source_counts(source, seen, len(found))
            plan.received += seen + len(found)
            for item_id, revision in found.items():
                if item_id in deletions:
                    plan.superseded += 1
                    if not newer(revision, deletions[item_id]):
                        continue
                deletions[item_id] = revision
        _apply_deletions(deletions, held, target, plan, tail_revisions)
        plan.metadata = plan_updates(updates, held, target, plan.written, plan.removals,
                                     target_client.get_max_batch_size())
        plan.metadata.newer_published = newer_published(
            held, plan.removals, {i: v for i, v in plan.incoming_versions.items() if i in plan.replaced})
        count = target.count()
        del target
    if count != len(plan.written):
        raise SnapshotCountMismatchError(f"new segment of {database}", len(plan.written), count)
    return plan


def _published(held: Sequence[RevisionReader], ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """id -> (index of the current segment holding it, its revision)."""
    found: dict[str, tuple[int, str]] = {}
    for index, records in enumerate(held):
        for item_id, revision in records.revisions(ids).items():
            found[item_id] = (index, revision)
    return found


def _apply_records(source: SnapshotManifest, source_dir: Path, held, target_client, target,
                   plan: TailPlan, tail_revisions: dict[str, str], *, dimensions: int) -> int:
    """Upsert the records of one source that win; returns the source's unique record ids."""
    ids: set[str] = set()
    for n, page in enumerate(iter_pages(source_dir, source.collection, MERGE_PAGE_SIZE)):
        where = f"source {source.key!r} page {n}"
        page.validate(dimensions, where)
        published = _published(held, page.ids)
        chosen: list[int] = []
        for row, item_id in enumerate(page.ids):
            revision = record_revision(page.metadatas[row])
            if item_id in tail_revisions:
                plan.superseded += 1
                if not newer(revision, tail_revisions[item_id]):
                    continue
            at = published.get(item_id)
            # A published record is replaced only by a strictly newer one: an equal revision is this
            # very record again (a rerun), and records without revisions never replace (as before).
            if at is not None and not revision > at[1]:
                continue
            buried = plan.tombstones.get(item_id)
            if buried is not None:
                if not revision > buried:
                    continue  # deleted after this record was made
                del plan.tombstones[item_id]
                plan.tombstones_changed = True
            if at is not None:
                plan.replaced.add(item_id)
                plan.removals.setdefault(at[0], set()).add(item_id)
                plan.incoming_versions[item_id] = record_version(page.metadatas[row])
            tail_revisions[item_id] = revision
            chosen.append(row)
        if chosen:
            picked = page if len(chosen) == len(page) else page.take(chosen)
            plan.written |= chroma_io.upsert_pages(target_client, target, [picked], dimensions=dimensions,
                                                   where=where, checked=True)
        ids.update(page.ids)
    plan.incoming |= ids
    return len(ids)


def _apply_deletions(deletions: dict[str, str], held, target, plan: TailPlan,
                     tail_revisions: dict[str, str]) -> None:
    """Each deletion that beats every other entry of its id removes the id (from the tail or a
    current segment) and leaves a tombstone; one that loses changes nothing."""
    published = _published(held, list(deletions))
    doomed_tail: list[str] = []
    for item_id, revision in deletions.items():
        if item_id in tail_revisions:
            plan.superseded += 1
            if not newer(revision, tail_revisions[item_id]):
                continue  # a newer record of the id arrived with it
            doomed_tail.append(item_id)
            plan.written.discard(item_id)
            plan.replaced.discard(item_id)
        at = published.get(item_id)
        if at is not None and item_id not in doomed_tail and not newer(revision, at[1]):
            continue  # the published record is newer than this deletion
        if at is not None:
            plan.deleted.add(item_id)
            plan.removals.setdefault(at[0], set()).add(item_id)
        if plan.tombstones.get(item_id, "") < revision:
            plan.tombstones[item_id] = revision
            plan.tombstones_changed = True
    if doomed_tail:
        target.delete(ids=doomed_tail)
