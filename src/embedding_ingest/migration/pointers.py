"""Which pointer a run's publish goes to, and which settles a batch, during a model migration.

Outside a migration everything goes to the live pointer, as always. While one is BUILDING:
- records (all of the target model: submit refuses any other) go to the staging pointer only, so
  queries keep answering from the old version; a changed receipt's new text reaches readers at the
  switch;
- what every reader must see at once goes to both pointers: deletions and issue 23's metadata updates
  (`to_both_pointers`);
- once the staging version holds every item, the same FinalMerge switches the live pointer to it
  (migration/switch.py): it already holds the lock and may move pointers, so MarkBatchesComplete then
  settles the run's batches against the switched live version.
Everything runs under the database's one lock, which the caller holds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from embedding_ingest.config import Settings
from embedding_ingest.migration.state import building
from embedding_ingest.migration.switch import try_switch
from embedding_ingest.snapshots import PublishOutcome, publish_next_version
from embedding_ingest.stores.ports import Ledger, ObjectStore
from embedding_ingest.stores.records import BatchOperation, BatchSummary, Lease, SnapshotVersion

log = logging.getLogger(__name__)


def publish_run(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str, sources: Sequence[str],
                settings: Settings) -> PublishOutcome:
    """FinalMerge's publish of a run's intermediates (publish_next_version's contract). Returns the
    outcome of the pointer that received the records."""
    migration = building(ledger, database)
    if migration is None:
        return publish_next_version(store, ledger, lease, database=database, sources=sources,
                                    settings=settings)
    outcome = publish_next_version(store, ledger, lease, database=database, sources=sources,
                                   settings=settings, pointer=migration.staging)
    to_both_pointers(store, ledger, lease, database=database, sources=sources, settings=settings)
    check = try_switch(store, ledger, lease, migration.kind, settings)
    log.info("migration of %s: %s", migration.kind.value,
             "switched to the new version" if check.switched else f"waiting for {check.waiting_for}")
    return outcome


def to_both_pointers(store: ObjectStore, ledger: Ledger, lease: Lease, *, database: str,
                     sources: Sequence[str], settings: Settings) -> None:
    """The hook for changes that must reach the live pointer during a migration as well as the staging
    one (which publish_run already gave them): the sources' deletions and metadata updates (issue 23;
    records=False leaves out the sources' records, of the new model). A rerun applies nothing twice
    (revisions.py)."""
    if ledger.get_published(database) is None:
        return
    publish_next_version(store, ledger, lease, database=database, sources=sources, settings=settings,
                         records=False)


def settling_versions(ledger: Ledger, database: str, summary: BatchSummary,
                      live: SnapshotVersion | None) -> list[SnapshotVersion | None]:
    """The versions that must hold a batch's outcome before it settles: its records' pointer for an
    embedding batch (staging while a migration builds with the batch's model), every pointer for a
    deletion or metadata batch (an id leaves, or its metadata changes, for every reader)."""
    migration = building(ledger, database)
    if migration is None:
        return [live]
    staging = ledger.get_published(database, pointer=migration.staging)
    if summary.operation in (BatchOperation.DELETE, BatchOperation.METADATA):
        return [live, staging]
    target = (migration.to_model, migration.to_dimensions)
    return [staging] if (summary.model, summary.dimensions) == target else [live]
