"""Queueing deletions (issue 10): items that left their receipts travel to the published version in
*deletion batches*, through the same workflows as embedding batches.

A deletion batch is a BatchSummary with operation=delete. It needs no provider: its
`provider_batch_id` is "deletion:{batch_id}", so ListPendingBatches lists it like any submitted
batch; PollBatches writes its ids into a delta as deletions (steps/poll_deletions.py); FinalMerge
applies them under the lock (snapshots/revisions.py); MarkBatchesComplete forgets the items once the
published version no longer holds them, and closes the batch.
"""

from __future__ import annotations

import hashlib
import time
import uuid

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    BatchOperation,
    BatchStatus,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)

_NAMESPACE = uuid.UUID("2f6c1b9e-0d4a-4f3e-9b1a-7c52d3e8a410")
MAX_DELETIONS_PER_BATCH = 10_000  # keeps one delta's deletions file small (~1 MB of ids)
DELETION_PROVIDER_PREFIX = "deletion:"


def deletion_batch_id(kind: ItemKind, item_ids: list[str]) -> str:
    """Deterministic: the same ids always make the same deletion batch (a rerun re-finds it)."""
    return batch_id_of("delete", kind, item_ids)


def batch_id_of(operation: str, kind: ItemKind, entries: list[str]) -> str:
    """The id of a batch no provider makes (deletions; metadata updates, issue 23): a uuid5 of the
    operation, the kind and the sorted entries, so the same entries always make the same batch."""
    digest = hashlib.sha256(f"{operation}\n{kind.value}".encode())
    for entry in sorted(entries):
        digest.update(f"\n{entry}".encode())
    return str(uuid.uuid5(_NAMESPACE, digest.hexdigest()))


def queue_deletions(kind: ItemKind, ledger: Ledger) -> list[BatchSummary]:
    """Put every DELETING item of `kind` not yet in a deletion batch into one (several when there are
    more than MAX_DELETIONS_PER_BATCH). Safe to run again and after a crash."""
    waiting: list[EmbeddingItem] = [item for item in ledger.find_items(kind, EmbeddingStatus.DELETING)
                                    if item.batch_id is None]
    queued = []
    for start in range(0, len(waiting), MAX_DELETIONS_PER_BATCH):
        ids = [item.item_id for item in waiting[start:start + MAX_DELETIONS_PER_BATCH]]
        batch_id = deletion_batch_id(kind, ids)
        summary = BatchSummary(
            batch_id=batch_id, batch_type=kind.batch_type, status=BatchStatus.PENDING,
            provider_batch_id=f"{DELETION_PROVIDER_PREFIX}{batch_id}", provider_status="deletion",
            submitted_at=time.time(), item_count=len(ids), operation=BatchOperation.DELETE,
            receipt_refs=sorted({f"{i.image_id}#{i.receipt_number:05d}"
                                 for i in waiting[start:start + MAX_DELETIONS_PER_BATCH]}))
        ledger.claim_deletions(summary, ids)
        queued.append(ledger.get_batch(batch_id) or summary)
    return queued
