"""PollBatches for a deletion batch (issue 10; embedding_ingest/submission/deletions.py): no provider to ask.
Its items still DELETING in it become a delta of deletions only (revision = the batch's, so a record
embedded after the deletion wins over it), and the batch goes on through chunks and FinalMerge like
any other. Items that came back meanwhile (re-imported, so no longer DELETING here) are left out.

A metadata batch (issue 23; submission/metadata_updates.py) has no provider either: its items' current
living metadata and metadata_version become a delta of metadata updates only (a version newer than
the batch's is fine: the newest wins), and it goes on the same way."""

from __future__ import annotations

from embedding_ingest.living_keys import living_part
from embedding_ingest.snapshots import write_snapshot
from embedding_ingest.snapshots.metadata_update import MetadataUpdates
from embedding_ingest.snapshots.revisions import revision_of
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import PollResult
from embedding_ingest.steps.keys import delta_prefix
from embedding_ingest.stores.records import BatchStatus, BatchSummary, EmbeddingStatus, ItemKind


def poll_deletions(summary: BatchSummary, ctx: StepContext, kind: ItemKind, base: dict) -> PollResult:
    items = ctx.ledger.find_items(kind, EmbeddingStatus.DELETING, batch_id=summary.batch_id)
    if not items:
        ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.COMPLETED, provider_status="deletion")
        return PollResult(**base, batch_status="completed", action="nothing_to_ingest")
    revision = revision_of(summary.submitted_at, summary.batch_id)
    prefix = delta_prefix(kind.database, summary.batch_id)
    manifest = write_snapshot(ctx.objects, prefix, [], collection=kind.database,
                              dimensions=ctx.provider.dimensions, model=ctx.provider.model, profile="flat",
                              deletions={item.item_id: revision for item in items})
    ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.FINALIZING, provider_status="deletion")
    return PollResult(**base, batch_status="completed", action="process_results", results_count=len(items),
                      delta_id=summary.batch_id, delta_key=prefix, embedding_count=manifest.count,
                      storage="s3_delta")


def parse_metadata_items(summary: BatchSummary) -> dict[str, int]:
    """A metadata batch's `item_id@metadata_version` entries as {item_id: version}."""
    return {item_id: int(version) for item_id, _, version in
            (entry.rpartition("@") for entry in summary.metadata_items)}


def poll_metadata(summary: BatchSummary, ctx: StepContext, kind: ItemKind, base: dict) -> PollResult:
    wanted = parse_metadata_items(summary)
    updates = MetadataUpdates()
    for item in ctx.ledger.get_items(list(wanted)).values():
        if item.embedding_status is not EmbeddingStatus.DELETING:
            updates.add(item.item_id, item.metadata_version, living_part(item.metadata))
    if not updates:
        ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.COMPLETED, provider_status="metadata")
        return PollResult(**base, batch_status="completed", action="nothing_to_ingest")
    prefix = delta_prefix(kind.database, summary.batch_id)
    manifest = write_snapshot(ctx.objects, prefix, [], collection=kind.database,
                              dimensions=ctx.provider.dimensions, model=ctx.provider.model, profile="flat",
                              metadata_updates=updates)
    ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.FINALIZING, provider_status="metadata")
    return PollResult(**base, batch_status="completed", action="process_results", results_count=len(updates),
                      delta_id=summary.batch_id, delta_key=prefix, embedding_count=manifest.count,
                      storage="s3_delta")
