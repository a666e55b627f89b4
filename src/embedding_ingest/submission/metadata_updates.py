"""Queueing metadata updates (issue 23): items whose living metadata changed while their text did not
(stores/receipt_sync.py, labels/apply.py) reach the published version in *metadata batches*, through
the same workflows as deletion batches (submission/deletions.py), with no provider call and no token.

A metadata batch is a BatchSummary with operation=metadata, provider_batch_id "metadata:{batch_id}"
and its items as "item_id@metadata_version". PollBatches writes the items' current living metadata
into a delta (steps/poll_deletions.py), FinalMerge applies it under the lock
(snapshots/metadata_update.py), MarkBatchesComplete closes the batch once the published version
holds every item at that version or newer (or no longer holds it).

Only published items (SUCCESS) are queued: an item being embedded carries its metadata with its
embedding, and one still PENDING is queued by the first queue run after it is published.
"""

from __future__ import annotations

import time

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    BatchOperation,
    BatchStatus,
    BatchSummary,
    EmbeddingStatus,
    ItemKind,
)
from embedding_ingest.submission.deletions import batch_id_of

# Ids and versions travel in the batch summary (a DynamoDB item holds at most 400 KB): 2,000 entries
# of ~60 bytes stay near 120 KB.
MAX_METADATA_PER_BATCH = 2_000
METADATA_PROVIDER_PREFIX = "metadata:"


def metadata_batch_id(kind: ItemKind, entries: list[str]) -> str:
    """Deterministic: the same (id, version) pairs always make the same batch (a rerun re-finds it)."""
    return batch_id_of("metadata", kind, entries)


def queue_metadata_updates(kind: ItemKind, ledger: Ledger) -> list[BatchSummary]:
    """Put every published item of `kind` with an unqueued metadata change into a metadata batch
    (several above MAX_METADATA_PER_BATCH). Safe to run again and after a crash."""
    waiting = [item for item in ledger.find_metadata_pending(kind)
               if item.embedding_status is EmbeddingStatus.SUCCESS]
    queued = []
    for start in range(0, len(waiting), MAX_METADATA_PER_BATCH):
        group = waiting[start:start + MAX_METADATA_PER_BATCH]
        entries = [f"{item.item_id}@{item.metadata_version}" for item in group]
        batch_id = metadata_batch_id(kind, entries)
        summary = BatchSummary(
            batch_id=batch_id, batch_type=kind.batch_type, status=BatchStatus.PENDING,
            provider_batch_id=f"{METADATA_PROVIDER_PREFIX}{batch_id}", provider_status="metadata",
            submitted_at=time.time(), item_count=len(group), operation=BatchOperation.METADATA,
            receipt_refs=sorted({f"{i.image_id}#{i.receipt_number:05d}" for i in group}),
            metadata_items=entries, tokens=0)
        ledger.claim_metadata(summary, [(item.item_id, item.metadata_version) for item in group])
        queued.append(ledger.get_batch(batch_id) or summary)
    return queued
