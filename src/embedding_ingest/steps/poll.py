"""Step 2, PollBatches (embedding-line-poll / embedding-word-poll): one batch per Map iteration.

Summary statuses written here:
- provider still working -> the matching active status, provider_status kept verbatim;
- results ingested into a delta -> FINALIZING (still active, so a run that fails to publish is
  picked up again by the next listing); COMPLETED/EXPIRED come only after publish (mark complete);
- nothing left to ingest -> closed at once (lesson 8); failed/cancelled -> closed, items released.
"""

from __future__ import annotations

import time

from pydantic import TypeAdapter

from embedding_ingest.metrics import TOKENS_BILLED, record_metric
from embedding_ingest.providers.base import QUEUE_LIMIT_ERROR_CODES, ProviderBatch, ProviderBatchStatus
from embedding_ingest.providers.exceptions import UnknownProviderBatchError, UnknownProviderFileError
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import PendingBatchRef, PollAction, PollEvent, PollManifest, PollResult
from embedding_ingest.steps.exceptions import (
    BatchTypeMismatchError,
    ProviderBatchNotFoundError,
    StepInputError,
)
from embedding_ingest.steps.logs import logger, step_log_context
from embedding_ingest.steps.offload import parse_event, pick, read_offloaded
from embedding_ingest.steps.poll_deletions import poll_deletions, poll_metadata
from embedding_ingest.steps.poll_ingest import ingest_finished_batch
from embedding_ingest.stores.exceptions import BatchNotFoundError
from embedding_ingest.stores.records import (
    ACTIVE_BATCH_STATUSES,
    BatchOperation,
    BatchStatus,
    BatchSummary,
    BatchType,
    EmbeddingStatus,
    ItemKind,
)

STEP = "embedding-poll"
POLL_MANIFEST = TypeAdapter(PollManifest)

_STILL_WORKING = {
    ProviderBatchStatus.VALIDATING: BatchStatus.VALIDATING,
    ProviderBatchStatus.IN_PROGRESS: BatchStatus.IN_PROGRESS,
    ProviderBatchStatus.FINALIZING: BatchStatus.FINALIZING,
    ProviderBatchStatus.CANCELLING: BatchStatus.CANCELING,
}
_GAVE_UP = {ProviderBatchStatus.FAILED: BatchStatus.FAILED,
            ProviderBatchStatus.CANCELLED: BatchStatus.CANCELLED}
_CLOSED_ACTIONS: dict[BatchStatus, PollAction] = {
    BatchStatus.COMPLETED: "nothing_to_ingest", BatchStatus.EXPIRED: "nothing_to_ingest",
    BatchStatus.FAILED: "batch_failed", BatchStatus.CANCELLED: "batch_failed",
}


def kind_of(batch_type: BatchType) -> ItemKind:
    return ItemKind.LINE if batch_type is BatchType.LINE_EMBEDDING else ItemKind.WORD


def resolve_batch(request: PollEvent, ctx: StepContext) -> PendingBatchRef:
    """The batch this iteration polls: from the manifest, the inline list, or the event itself."""
    if request.manifest_s3_key:
        manifest = read_offloaded(ctx.objects, request.manifest_s3_key, POLL_MANIFEST)
        entry = pick(manifest.batches, _index(request), request.manifest_s3_key)
        return PendingBatchRef(batch_id=entry.batch_id, openai_batch_id=entry.openai_batch_id)
    if request.pending_batches is not None:
        return pick(request.pending_batches, _index(request), "pending_batches")
    if request.batch_id and request.openai_batch_id:
        return PendingBatchRef(batch_id=request.batch_id, openai_batch_id=request.openai_batch_id)
    raise StepInputError(f"{STEP}: the event needs manifest_s3_key or pending_batches with batch_index, "
                         "or batch_id with openai_batch_id")


def _index(request: PollEvent) -> int:
    if request.batch_index is None:
        raise StepInputError(f"{STEP}: batch_index is required with manifest_s3_key or pending_batches")
    return request.batch_index


def poll(event: dict, ctx: StepContext, *, expected_kind: ItemKind | None = None) -> dict:
    """Poll one batch; `expected_kind` (set by the line/word Lambda names) refuses the other kind."""
    request = parse_event(PollEvent, event, STEP)
    ref = resolve_batch(request, ctx)
    with step_log_context(batch_id=ref.batch_id, provider_batch_id=ref.openai_batch_id):
        summary = ctx.ledger.get_batch(ref.batch_id)
        if summary is None:
            raise BatchNotFoundError(ref.batch_id)
        if expected_kind is not None and kind_of(summary.batch_type) is not expected_kind:
            raise BatchTypeMismatchError(f"batch {ref.batch_id!r} is a {summary.batch_type.value} batch; "
                                         f"the {expected_kind.value} workflow cannot poll it")
        if summary.provider_batch_id != ref.openai_batch_id:
            raise StepInputError(f"{STEP}: batch {ref.batch_id!r} was submitted as provider batch "
                                 f"{summary.provider_batch_id!r}, not {ref.openai_batch_id!r}")
        result = _poll_summary(summary, ctx)
        logger.info("polled batch", extra={"action": result.action, "batch_status": result.batch_status,
                                            "embedding_count": result.embedding_count,
                                            "released_count": result.released_count})
        return result.model_dump(mode="json")


def _poll_summary(summary: BatchSummary, ctx: StepContext) -> PollResult:
    kind = kind_of(summary.batch_type)
    base = {"batch_id": summary.batch_id, "openai_batch_id": summary.provider_batch_id,
            "collection": kind.database, "database": kind.database}
    if summary.status not in ACTIVE_BATCH_STATUSES:
        # Already closed by an earlier poll or mark-complete: a rerun changes nothing.
        return PollResult(**base, batch_status=summary.provider_status or summary.status.value.lower(),
                          action=_CLOSED_ACTIONS[summary.status])

    if summary.operation is BatchOperation.DELETE:  # issue 10: no provider batch behind it
        return poll_deletions(summary, ctx, kind, base)
    if summary.operation is BatchOperation.METADATA:  # issue 23: nor behind this one
        return poll_metadata(summary, ctx, kind, base)
    # ListPendingBatches polls the least recently polled first and leaves a poll in flight alone.
    polled_at = time.time()
    ctx.ledger.update_batch(summary.batch_id, poll_started_at=polled_at)
    batch = _retrieve(summary, ctx, polled_at)
    if batch.status in _STILL_WORKING:
        ctx.ledger.update_batch(summary.batch_id, status=_STILL_WORKING[batch.status],
                                provider_status=batch.status.value, polled_at=polled_at)
        return PollResult(**base, batch_status=batch.status.value, action="wait")

    if batch.status in _GAVE_UP:
        details = f": {'; '.join(batch.errors)}" if batch.errors else ""
        reason = f"provider batch {batch.status.value}{details}"
        # Refused for a full queue (token_limit_exceeded...), not for its content: the items did
        # nothing wrong, so they go back without spending an attempt and the next submit retries.
        queue_limit = bool(QUEUE_LIMIT_ERROR_CODES.intersection(batch.error_codes))
        pending = ctx.ledger.find_items(kind, EmbeddingStatus.PENDING, batch_id=summary.batch_id)
        released = ctx.ledger.release_items(summary.batch_id, {i.item_id: reason for i in pending},
                                            spend_attempt=not queue_limit)
        ctx.ledger.update_batch(summary.batch_id, status=_GAVE_UP[batch.status],
                                provider_status=batch.status.value, last_error=reason, polled_at=polled_at)
        return PollResult(**base, batch_status=batch.status.value, action="batch_failed",
                          released_count=released)

    # completed or expired: whatever was paid for is ingested (lesson 10).
    try:
        outcome = ingest_finished_batch(ctx, summary, batch, kind)
    except UnknownProviderFileError as exc:
        # The batch stays active for the next run; its summary says why it is stuck meanwhile.
        ctx.ledger.update_batch(summary.batch_id, last_error=f"provider batch {batch.provider_batch_id} is "
                                f"{batch.status.value} but its results cannot be read: {exc}",
                                polled_at=polled_at)
        raise
    changes: dict = {"provider_status": batch.status.value, "polled_at": polled_at,
                     "billed_tokens": outcome.billed_tokens}
    record_metric(TOKENS_BILLED, outcome.billed_tokens, workflow=kind.value)
    if outcome.unknown_custom_ids:  # kept durably, not only logged (issue 10)
        changes["unknown_custom_ids"] = outcome.unknown_custom_ids
    if outcome.released:
        changes["last_error"] = f"{len(outcome.released)} item(s) released: " + next(
            iter(outcome.released.values()))
    common = {**base, "batch_status": batch.status.value, "results_count": outcome.results_count,
              "released_count": len(outcome.released), **outcome.problems_for_result()}
    if outcome.delta_key is None:
        closed = BatchStatus.EXPIRED if batch.status is ProviderBatchStatus.EXPIRED else BatchStatus.COMPLETED
        ctx.ledger.update_batch(summary.batch_id, status=closed, **changes)
        return PollResult(**common, action="nothing_to_ingest")
    ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.FINALIZING, **changes)
    return PollResult(**common, action="process_results", delta_id=summary.batch_id,
                      delta_key=outcome.delta_key, embedding_count=outcome.embedding_count,
                      storage="s3_delta")


def _retrieve(summary: BatchSummary, ctx: StepContext, polled_at: float) -> ProviderBatch:
    provider_id = summary.provider_batch_id or ""
    try:
        return ctx.provider.retrieve(provider_id)
    except UnknownProviderBatchError as exc:
        error = ProviderBatchNotFoundError(summary.batch_id, provider_id, ctx.provider.name)
        ctx.ledger.update_batch(summary.batch_id, last_error=str(error), polled_at=polled_at)
        raise error from exc
