"""Step 1, ListPendingBatches: which submitted batches this execution polls.

Every *active* status is listed, oldest first (lesson 1), capped per execution (lesson 2); the list
goes to a manifest object when it is too big to travel inline.
"""

from __future__ import annotations

from datetime import UTC, datetime

from embedding_ingest.contracts import (
    INLINE_PAYLOAD_LIMIT,
    MANIFEST_MAX_INLINE_BATCHES,
    ListPendingEvent,
    ListPendingResult,
    ManifestEntry,
    PendingBatchRef,
    PollManifest,
    payload_size,
)
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.exceptions import StepInputError
from embedding_ingest.steps.keys import poll_manifest_key
from embedding_ingest.steps.logs import logger
from embedding_ingest.steps.offload import parse_event
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, BatchSummary

STEP = "embedding-list-pending"


def list_pending(event: dict, ctx: StepContext) -> dict:
    request = parse_event(ListPendingEvent, event, STEP)
    if request.max_batches is not None and request.max_batches < 1:
        raise StepInputError(f"{STEP}: max_batches must be at least 1, got {request.max_batches}")
    cap = request.max_batches if request.max_batches is not None else ctx.settings.max_batches_per_execution
    manifest_key = poll_manifest_key(request.execution_id)

    active = ctx.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES,
                                     batch_type=request.batch_type.batch_type)
    # A summary without a provider id was claimed but never accepted by the provider; submission
    # resumes it, polling cannot.
    submitted = [s for s in active if s.provider_batch_id]
    chosen = submitted[:cap]
    refs = [PendingBatchRef(batch_id=s.batch_id, openai_batch_id=s.provider_batch_id or "") for s in chosen]

    result = ListPendingResult(pending_batches=refs, batch_indices=list(range(len(refs))), use_s3=False,
                               manifest_s3_key=None, manifest_s3_bucket=None,
                               execution_id=request.execution_id, total_batches=len(refs))
    if len(refs) > MANIFEST_MAX_INLINE_BATCHES or payload_size(result) > INLINE_PAYLOAD_LIMIT:
        manifest = PollManifest(
            execution_id=request.execution_id, created_at=_as_of(chosen), total_batches=len(refs),
            batch_type=request.batch_type,
            batches=[ManifestEntry(index=i, **ref.model_dump()) for i, ref in enumerate(refs)])
        ctx.objects.put_json(manifest_key, manifest.model_dump(mode="json"))
        result = result.model_copy(update={"pending_batches": None, "use_s3": True,
                                           "manifest_s3_key": manifest_key,
                                           "manifest_s3_bucket": ctx.objects.location})

    logger.info("listed pending batches", extra={
        "batch_type": request.batch_type.value, "active": len(active), "without_provider_id":
        len(active) - len(submitted), "taken": len(refs), "left_for_later": len(submitted) - len(refs),
        "use_s3": result.use_s3})
    return result.model_dump(mode="json")


def _as_of(batches: list[BatchSummary]) -> str:
    """The manifest's created_at is the time of the newest change it reflects, not the wall clock, so
    rerunning over an unchanged ledger writes identical bytes."""
    newest = max((s.updated_at or s.submitted_at for s in batches), default=0.0)
    return datetime.fromtimestamp(newest, UTC).isoformat().replace("+00:00", "Z")
