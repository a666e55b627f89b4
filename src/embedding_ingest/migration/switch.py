"""The end of a model migration: switching the live pointer to the staging version once every item is
embedded with the target, and rolling back to the version the switch replaced.

Both run under the database's lock (the caller holds it: `lease`) and move the live pointer by the
same conditional write every publish uses (snapshots.publish.rollback), then record the new state
conditionally: a crash between the two is recognised by a rerun (the live pointer already names the
staging version) and completed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from embedding_ingest.config import Settings
from embedding_ingest.migration.exceptions import MigrationRefusedError
from embedding_ingest.migration.state import moved_on
from embedding_ingest.snapshots import (
    prune_versions,
    publish_next_version,
    read_version,
    rollback,
    write_snapshot,
)
from embedding_ingest.snapshots.chroma_sqlite import StoredRecords
from embedding_ingest.snapshots.query import published_revisions, version_segments
from embedding_ingest.snapshots.revisions import check_tombstones, revision_of
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import (
    ACTIVE_BATCH_STATUSES,
    BatchOperation,
    BatchStatus,
    EmbeddingStatus,
    ItemKind,
    Lease,
    MigrationRecord,
    MigrationState,
    SnapshotVersion,
)

DOCUMENT_KEY = "chroma:document"  # where Chroma keeps a record's document (chromadb 1.5.9)


@dataclass
class SwitchCheck:
    """Whether a migration could switch now, and if not why (one sentence)."""

    switched: bool = False
    waiting_for: str | None = None
    requeued: int = 0  # SUCCESS items the staging version turned out to lack, sent back to be embedded


def active_embed_batches(ledger: Ledger, kind: ItemKind) -> int:
    """Embedding batches of `kind` not closed yet (at the provider, or ingested but not settled)."""
    return sum(1 for batch in ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=kind.batch_type)
               if batch.operation is BatchOperation.EMBED)


def try_switch(store: ObjectStore, ledger: Ledger, lease: Lease, kind: ItemKind, settings: Settings
               ) -> SwitchCheck:
    """Switch the live pointer to the staging version if the migration is BUILDING and that version
    holds every item of the kind: every SUCCESS one, and every PENDING one at its batch's revision (the
    run publishing the last batch switches before marking it). Else say what it waits for. Idempotent."""
    record = ledger.get_migration(kind)
    if record is None or record.state is not MigrationState.BUILDING:
        return SwitchCheck(waiting_for="no migration is building")
    database = kind.database
    live = ledger.get_published(database)
    staging = ledger.get_published(database, pointer=record.staging)
    if staging is not None and live is not None and live.version == staging.version:
        _record_switch(store, ledger, record, live, settings)  # a crash came between switch and record
        return SwitchCheck(switched=True)
    if waiting := ledger.count_items(kind)[EmbeddingStatus.NONE]:
        return SwitchCheck(waiting_for=f"{waiting} {kind.value}s still to embed with {record.to_model}")
    at_provider = [batch for batch in ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES,
                                                          batch_type=kind.batch_type)
                   if batch.operation is BatchOperation.EMBED and batch.status is not BatchStatus.FINALIZING]
    if at_provider or staging is None:
        return SwitchCheck(waiting_for=f"{len(at_provider)} {kind.value} batches still at the provider")
    wanted = _wanted_revisions(ledger, kind)
    held = published_revisions(store, staging, list(wanted), settings)
    lacking = [item_id for item_id, revision in wanted.items()
               if item_id not in held or (revision is not None and held[item_id] < revision)]
    if lacking:
        # A SUCCESS item settled against another version (a straggler): embed it again, not lose it.
        requeued = ledger.requeue_items(kind, EmbeddingStatus.SUCCESS, _reason(record), item_ids=lacking)
        return SwitchCheck(waiting_for=f"{len(lacking)} {kind.value}s not in the new version yet",
                           requeued=requeued)
    moved = rollback(store, ledger, lease, database=database, version=staging.version,
                     from_pointer=record.staging, verify=False)
    _record_switch(store, ledger, record, moved, settings)
    return SwitchCheck(switched=True)


def _wanted_revisions(ledger: Ledger, kind: ItemKind) -> dict[str, str | None]:
    """id -> the revision its record must have at least (None: any) for every item the new version
    must hold: SUCCESS ones (any: the staging pointer holds nothing older than the migration), PENDING
    ones at their batch's revision (snapshots/revisions.py)."""
    wanted: dict[str, str | None] = {item.item_id: None
                                     for item in ledger.find_items(kind, EmbeddingStatus.SUCCESS)}
    revisions: dict[str, str] = {}
    for item in ledger.find_items(kind, EmbeddingStatus.PENDING):
        if item.batch_id not in revisions:
            summary = ledger.get_batch(item.batch_id or "")
            revisions[item.batch_id] = revision_of(summary.submitted_at, summary.batch_id) if summary else "~"
        wanted[item.item_id] = revisions[item.batch_id]
    return wanted


def _record_switch(store: ObjectStore, ledger: Ledger, record: MigrationRecord, moved: SnapshotVersion,
                   settings: Settings) -> None:
    # The staging history goes (its current version lives on as the live one): its older versions'
    # segments first, while the record still says BUILDING so the live pointer's are kept.
    prune_versions(store, ledger, database=record.kind.database, keep=1, pointer=record.staging)
    ledger.save_migration(moved_on(record, state=MigrationState.SWITCHED, before_switch=moved.parent_version,
                                   switched_version=moved.version), expected_state=MigrationState.BUILDING)
    ledger.forget_pointer(record.staging)


def _reason(record: MigrationRecord) -> str:
    return f"re-embed for the migration to {record.to_model}/{record.to_dimensions}"


@dataclass
class RollbackPlan:
    """What rolling a switched migration back does: the version it restores and the items that version
    lacks (absent, or holding an older text), which go back to be embedded with the old model."""

    record: MigrationRecord
    restores: SnapshotVersion
    lacking: list[str] = field(default_factory=list)
    tokens: int = 0


def plan_rollback(store: ObjectStore, ledger: Ledger, kind: ItemKind, settings: Settings) -> RollbackPlan:
    """Raises MigrationRefusedError when there is nothing to roll back or batches are still running."""
    record = ledger.get_migration(kind)
    if record is None or record.state is not MigrationState.SWITCHED or record.before_switch is None:
        state = record.state.value if record is not None else "none"
        raise MigrationRefusedError(f"{kind.value}: no switched migration to roll back (migration: {state})",
                                    try_="embedding-ingest status")
    if active := active_embed_batches(ledger, kind):
        raise MigrationRefusedError(
            f"{kind.value}: {active} batches still active (they finish before a rollback)",
            try_=f"embedding-ingest start-execution {kind.value} --until-idle")
    restores = next((v for v in ledger.list_versions(kind.database) if v.version == record.before_switch),
                    None)
    if restores is None:
        raise MigrationRefusedError(f"{kind.value}: version {record.before_switch} is gone; cannot roll back")
    embedded = ledger.find_items(kind, EmbeddingStatus.SUCCESS)
    documents = _documents(store, restores, [item.item_id for item in embedded], settings)
    lacking = [item for item in embedded if documents.get(item.item_id) != item.text]
    return RollbackPlan(record, restores, [item.item_id for item in lacking],
                        sum(item.tokens or 0 for item in lacking))


def roll_back(store: ObjectStore, ledger: Ledger, lease: Lease, plan: RollbackPlan, settings: Settings
              ) -> SnapshotVersion:
    """Point the live pointer back at the version the switch replaced, remove from it what was deleted
    since (the replaced version's tombstones), send the items it lacks back to be embedded, and record
    ROLLED_BACK."""
    kind, database = plan.record.kind, plan.record.kind.database
    leaving = ledger.get_published(database)
    restored = rollback(store, ledger, lease, database=database, version=plan.restores.version)
    if leaving is not None and leaving.version != restored.version:
        _reapply_deletions(store, ledger, lease, leaving, plan.record, settings)
    if plan.lacking:
        ledger.requeue_items(kind, EmbeddingStatus.SUCCESS, f"re-embed with {plan.record.from_model}/"
                             f"{plan.record.from_dimensions} after rolling back the migration",
                             item_ids=plan.lacking)
    ledger.save_migration(moved_on(plan.record, state=MigrationState.ROLLED_BACK),
                          expected_state=MigrationState.SWITCHED)
    return ledger.get_published(database) or restored


def _reapply_deletions(store: ObjectStore, ledger: Ledger, lease: Lease, leaving: SnapshotVersion,
                       record: MigrationRecord, settings: Settings) -> None:
    """Ids deleted after the switch left the version being replaced (its tombstones say so) and the
    ledger; the restored version still holds them: publish their deletions onto it."""
    manifest = read_version(store, leaving)
    if manifest.tombstones_key is None:
        return
    tombstones = check_tombstones(manifest.tombstones_key, store.get_json(manifest.tombstones_key))
    prefix = f"{leaving.database}/delta/{leaving.database}/rollback-{record.staging.rsplit('+', 1)[-1]}/"
    write_snapshot(store, prefix, [], collection=leaving.database, dimensions=record.from_dimensions,
                   model=record.from_model, profile="flat", deletions=tombstones)
    publish_next_version(store, ledger, lease, database=leaving.database, sources=[prefix], settings=settings)


def _documents(store: ObjectStore, version: SnapshotVersion, ids: Sequence[str], settings: Settings
               ) -> dict[str, str]:
    found: dict[str, str] = {}
    for persist_dir in version_segments(store, version, settings):
        with StoredRecords(persist_dir, version.database) as records:
            found.update(records.revisions(list(ids), key=DOCUMENT_KEY))
    return found
