"""Step 2, PollBatches (embedding-line-poll / embedding-word-poll): one batch per Map iteration.

Summary statuses written here:
- provider still working -> the matching active status, provider_status kept verbatim;
- results ingested into a delta -> FINALIZING (still active, so a run that fails to publish is
  picked up again by the next listing); COMPLETED/EXPIRED/CANCELLED come only after publish (mark
  complete). Completed, expired and cancelled batches alike: whatever their output holds is ingested;
- nothing left to ingest -> closed at once (lesson 8); failed -> closed, items released;
- the provider answers 404 for the batch -> still active ("wait") until that has lasted
  NOT_FOUND_POLLS polls and NOT_FOUND_GRACE_SECONDS, then closed FAILED ("not_found"), items released
  (issue 19: a one-off 404 only delays; a batch that vanished must not stall everything).

Every release names its cause (records.ReleaseCause): only a request refused for its content spends an
attempt; everything the provider did or failed to do counts a provider retry (MAX_PROVIDER_RETRIES).
"""

from __future__ import annotations

import time

import orjson
from pydantic import TypeAdapter

from embedding_ingest.metrics import TOKENS_BILLED, record_metric
from embedding_ingest.providers.base import ProviderBatch, ProviderBatchStatus
from embedding_ingest.providers.batch_files import split_lines
from embedding_ingest.providers.exceptions import UnknownProviderBatchError, UnknownProviderFileError
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import PendingBatchRef, PollAction, PollEvent, PollManifest, PollResult
from embedding_ingest.steps.exceptions import BatchTypeMismatchError, StepInputError
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
    ReleaseCause,
)

STEP = "embedding-poll"
POLL_MANIFEST = TypeAdapter(PollManifest)
NOT_FOUND_POLLS = 3  # polls in a row answered 404 ...
NOT_FOUND_GRACE_SECONDS = 600.0  # ... over at least this long, before the batch counts as vanished
NOT_FOUND_STATUS = "not_found"  # provider_status of a batch closed as vanished

_STILL_WORKING = {
    ProviderBatchStatus.VALIDATING: BatchStatus.VALIDATING,
    ProviderBatchStatus.IN_PROGRESS: BatchStatus.IN_PROGRESS,
    ProviderBatchStatus.FINALIZING: BatchStatus.FINALIZING,
    ProviderBatchStatus.CANCELLING: BatchStatus.CANCELING,
}
_CLOSED_ACTIONS: dict[BatchStatus, PollAction] = {
    BatchStatus.COMPLETED: "nothing_to_ingest", BatchStatus.EXPIRED: "nothing_to_ingest",
    BatchStatus.FAILED: "batch_failed", BatchStatus.CANCELLED: "nothing_to_ingest",
}
_CLOSED_EMPTY = {ProviderBatchStatus.EXPIRED: BatchStatus.EXPIRED,
                 ProviderBatchStatus.CANCELLED: BatchStatus.CANCELLED}


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
    try:
        batch = ctx.provider.retrieve(summary.provider_batch_id or "")
    except UnknownProviderBatchError:
        return _not_found(summary, ctx, kind, base, polled_at)
    found = {"not_found_polls": 0, "not_found_since": None} if summary.not_found_polls else {}
    if batch.status in _STILL_WORKING:
        ctx.ledger.update_batch(summary.batch_id, status=_STILL_WORKING[batch.status],
                                provider_status=batch.status.value, polled_at=polled_at, **found)
        return PollResult(**base, batch_status=batch.status.value, action="wait")

    if batch.status is ProviderBatchStatus.FAILED:
        released = _release_failed_batch(ctx, summary, batch, kind)
        ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.FAILED,
                                provider_status=batch.status.value, last_error=_failure_reason(batch),
                                polled_at=polled_at, **found)
        return PollResult(**base, batch_status=batch.status.value, action="batch_failed",
                          released_count=released)

    # completed, expired or cancelled: whatever was paid for is ingested (lesson 10, issue 19).
    outcome = ingest_finished_batch(ctx, summary, batch, kind)
    changes: dict = {"provider_status": batch.status.value, "polled_at": polled_at,
                     "billed_tokens": batch.input_tokens if batch.input_tokens is not None
                     else outcome.billed_tokens, **found,
                     "results_at": summary.results_at or polled_at}  # the first read stays (reruns)
    record_metric(TOKENS_BILLED, changes["billed_tokens"], workflow=kind.value)
    if outcome.unknown_custom_ids:  # kept durably, not only logged (issue 10)
        changes["unknown_custom_ids"] = outcome.unknown_custom_ids
    if outcome.released:
        changes["last_error"] = f"{len(outcome.released)} item(s) released: " + next(
            iter(outcome.released.values()))
    common = {**base, "batch_status": batch.status.value, "results_count": outcome.results_count,
              "released_count": len(outcome.released), **outcome.problems_for_result()}
    if outcome.delta_key is None:
        closed = BatchStatus.EXPIRED if outcome.output_gone else _CLOSED_EMPTY.get(batch.status,
                                                                                    BatchStatus.COMPLETED)
        ctx.ledger.update_batch(summary.batch_id, status=closed, **changes)
        return PollResult(**common, action="nothing_to_ingest")
    ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.FINALIZING, **changes)
    return PollResult(**common, action="process_results", delta_id=summary.batch_id,
                      delta_key=outcome.delta_key, embedding_count=outcome.embedding_count,
                      storage="s3_delta")


def _not_found(summary: BatchSummary, ctx: StepContext, kind: ItemKind, base: dict, polled_at: float
               ) -> PollResult:
    """The provider answers 404 for the batch: wait out a one-off, close a batch that is really gone."""
    polls = summary.not_found_polls + 1
    since = summary.not_found_since or polled_at
    provider_id = summary.provider_batch_id
    if polls < NOT_FOUND_POLLS or polled_at - since < NOT_FOUND_GRACE_SECONDS:
        note = (f"provider {ctx.provider.name} answers 404 for batch {provider_id} ({polls} of "
                f"{NOT_FOUND_POLLS} polls, for {polled_at - since:.0f} of {NOT_FOUND_GRACE_SECONDS:.0f} s); "
                "it is closed as vanished after both")
        ctx.ledger.update_batch(summary.batch_id, not_found_polls=polls, not_found_since=since,
                                last_error=note, polled_at=polled_at)
        return PollResult(**base, batch_status=NOT_FOUND_STATUS, action="wait")
    reason = (f"provider batch {provider_id} vanished (404 on {polls} polls over {polled_at - since:.0f} s); "
              "the request never ran")
    pending = ctx.ledger.find_items(kind, EmbeddingStatus.PENDING, batch_id=summary.batch_id)
    released = ctx.ledger.release_items(summary.batch_id, {i.item_id: reason for i in pending},
                                        cause=ReleaseCause.PROVIDER,
                                        provider_retry_limit=ctx.settings.max_provider_retries)
    ctx.ledger.update_batch(summary.batch_id, status=BatchStatus.FAILED, provider_status=NOT_FOUND_STATUS,
                            not_found_polls=polls, not_found_since=since, last_error=reason,
                            polled_at=polled_at)
    logger.warning("provider batch vanished; items released", extra={"released": released})
    return PollResult(**base, batch_status=NOT_FOUND_STATUS, action="batch_failed", released_count=released)


def _failure_reason(batch: ProviderBatch) -> str:
    details = f": {'; '.join(batch.errors)}" if batch.errors else ""
    return f"provider batch {batch.status.value}{details}"


def _release_failed_batch(ctx: StepContext, summary: BatchSummary, batch: ProviderBatch, kind: ItemKind
                          ) -> int:
    """A batch that failed validation: the requests on the lines its errors name are refused for their
    content (an attempt each); every other request was not at fault (an error without a line, such as a
    queue limit, or a neighbour's bad line failing the whole file): a provider retry each."""
    pending = ctx.ledger.find_items(kind, EmbeddingStatus.PENDING, batch_id=summary.batch_id)
    blamed = _custom_ids_on_lines(ctx, batch) if batch.line_errors else {}
    neighbour = f"{_failure_reason(batch)} (not because of this request)"
    content = {i.item_id: f"provider batch failed: {blamed[i.item_id]}"
               for i in pending if i.item_id in blamed}
    provider = {i.item_id: neighbour for i in pending if i.item_id not in blamed}
    released = 0
    for cause, group in ((ReleaseCause.CONTENT, content), (ReleaseCause.PROVIDER, provider)):
        if group:
            released += ctx.ledger.release_items(summary.batch_id, group, cause=cause,
                                                 provider_retry_limit=ctx.settings.max_provider_retries)
    return released


def _custom_ids_on_lines(ctx: StepContext, batch: ProviderBatch) -> dict[str, str]:
    """custom_id -> error, for the input lines the batch's errors name (the input file streamed once).
    A gone input file names nobody: every request is then treated as not at fault."""
    found: dict[str, str] = {}
    try:
        with ctx.provider.open_file(batch.input_file_id or "") as chunks:
            for line_no, raw in enumerate(split_lines(chunks), start=1):
                if line_no in batch.line_errors:
                    custom_id = _custom_id(raw)
                    if custom_id is not None:
                        found[custom_id] = batch.line_errors[line_no]
    except UnknownProviderFileError:
        logger.warning("input file of a failed batch is gone; no request is blamed",
                       extra={"file_id": batch.input_file_id})
    return found


def _custom_id(raw: bytes) -> str | None:
    try:
        value = orjson.loads(raw).get("custom_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None
