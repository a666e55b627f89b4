"""Step 1, ListPendingBatches: which submitted batches this execution polls.

Every *active* status is considered (lesson 1), capped per execution (lesson 2); the list goes to a
manifest object when it is too big to travel inline.

No head-of-line blocking: which active batches this execution polls is not "the oldest N". One
listing call (OpenAI `GET /v1/batches`, paginated; the local provider answers the same call) refreshes
the provider's status of every active batch, and the batches it newly reports finished (completed,
failed, expired, cancelled) are taken first; the rest follow least recently polled first (never polled
first, then by `polled_at`, which the poll step stamps); a batch another execution is polling right
now (poll_started_at after its last polled_at) goes last. So a finished batch waits at most until the
next execution, and while no new batches finish, every active batch is polled at least once every
ceil(active / cap) executions. If the listing fails, the order falls back to least recently polled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from embedding_ingest.exceptions import TransientError
from embedding_ingest.metrics import BATCHES_ACTIVE, record_metric
from embedding_ingest.providers.base import FINISHED_PROVIDER_STATUSES
from embedding_ingest.providers.exceptions import ProviderRequestError
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import (
    INLINE_PAYLOAD_LIMIT,
    MANIFEST_MAX_INLINE_BATCHES,
    ListPendingEvent,
    ListPendingResult,
    ManifestEntry,
    PendingBatchRef,
    PollManifest,
    payload_size,
)
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
    newly_finished, submitted = _refresh(ctx, submitted)
    now = time.time()
    chosen = sorted(submitted, key=lambda s: (_in_flight(s, now), s.batch_id not in newly_finished,
                                              s.polled_at is not None, s.polled_at or 0.0, s.submitted_at,
                                              s.batch_id))[:cap]
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

    record_metric(BATCHES_ACTIVE, len(active), workflow=request.batch_type.value)
    logger.info("listed pending batches", extra={
        "batch_type": request.batch_type.value, "active": len(active), "newly_finished": len(newly_finished),
        "without_provider_id":
        len(active) - len(submitted), "taken": len(refs), "left_for_later": len(submitted) - len(refs),
        "use_s3": result.use_s3})
    return result.model_dump(mode="json")


_FINISHED = frozenset(status.value for status in FINISHED_PROVIDER_STATUSES)
# A poll runs at most the poll Lambda's timeout (aws/function_table.py): a poll started longer ago died.
POLL_IN_FLIGHT_SECONDS = 900


def _in_flight(summary: BatchSummary, now: float) -> bool:
    """Another execution is polling it right now (started, not finished, not given up on): taking it
    too would only ingest the same results twice, so it goes last."""
    started = summary.poll_started_at
    return (started is not None and (summary.polled_at is None or started > summary.polled_at)
            and now - started < POLL_IN_FLIGHT_SECONDS)
# Provider batches are created after our claim; clocks and whole-second created_at need a margin.
_LISTING_MARGIN_SECONDS = 3600


def _refresh(ctx: StepContext, submitted: Sequence[BatchSummary]) -> tuple[set[str], list[BatchSummary]]:
    """(batch_ids the provider's listing reports finished that no poll has seen finished yet, the
    summaries as now stored). The listing's status is kept as listed_status (budgets read it)."""
    if not submitted:
        return set(), []
    by_provider_id = {s.provider_batch_id: s for s in submitted}
    oldest = min(s.submitted_at for s in submitted) - _LISTING_MARGIN_SECONDS
    try:
        listed = ctx.provider.list_batches(created_after=oldest)
    except (TransientError, ProviderRequestError) as exc:  # polling works without it, just less fairly
        logger.warning("provider batch listing failed; polling least recently polled first",
                       extra={"error": str(exc)})
        return set(), list(submitted)
    finished = set()
    current = {s.batch_id: s for s in submitted}
    for batch in listed:
        summary = by_provider_id.get(batch.provider_batch_id)
        if summary is None:
            continue
        if batch.finished and summary.provider_status not in _FINISHED:
            finished.add(summary.batch_id)
        if summary.listed_status != batch.status.value:
            current[summary.batch_id] = ctx.ledger.update_batch(summary.batch_id,
                                                                listed_status=batch.status.value)
    return finished, list(current.values())


def _as_of(batches: list[BatchSummary]) -> str:
    """The manifest's created_at is the time of the newest change it reflects, not the wall clock, so
    rerunning over an unchanged ledger writes identical bytes."""
    newest = max((s.updated_at or s.submitted_at for s in batches), default=0.0)
    return datetime.fromtimestamp(newest, UTC).isoformat().replace("+00:00", "Z")
