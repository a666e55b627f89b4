"""Step 16, MarkBatchesComplete (embedding-mark-batches-complete).

Only what the published snapshot really holds is marked SUCCESS (lesson 7): an id whose published
record carries this batch's revision or a newer one (an older record of a re-embedded item does not
count). A deletion batch's items are forgotten once the published version lacks them (or holds a newer
record). A metadata batch (issue 23) is settled item by item once the published version holds the
item at the batch's metadata version or newer, or no longer holds it (deleted or replaced: its newer
record carries newer metadata). A batch closes only when every item it still has pending is settled.
The rest stays PENDING and is reported, and the batch stays active, so the next execution polls and
publishes it again. Running twice is harmless: the second run finds nothing pending and the
summaries already closed.
"""

from __future__ import annotations

import time

from embedding_ingest.migration.pointers import settling_versions
from embedding_ingest.migration.state import building
from embedding_ingest.snapshots.exceptions import VersionNotFoundError
from embedding_ingest.snapshots.query import published_metadata_versions, published_revisions
from embedding_ingest.snapshots.revisions import revision_of
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import (
    MarkCompleteEvent,
    MarkCompleteOutcome,
    MarkCompleteResult,
    PollResult,
)
from embedding_ingest.steps.exceptions import StepInputError
from embedding_ingest.steps.keys import database_name
from embedding_ingest.steps.logs import logger, step_log_context
from embedding_ingest.steps.offload import load_poll_outcomes, parse_event, successful_polls
from embedding_ingest.steps.poll import kind_of
from embedding_ingest.steps.poll_deletions import parse_metadata_items
from embedding_ingest.stores.exceptions import BatchNotFoundError
from embedding_ingest.stores.records import (
    BatchOperation,
    BatchStatus,
    BatchSummary,
    EmbeddingStatus,
    SnapshotVersion,
)

STEP = "embedding-mark-batches-complete"
# A batch closes with the provider's word for how it ended (a cancelled batch's partial output is
# published like a completed one's: issue 19).
_CLOSED_AS = {"expired": BatchStatus.EXPIRED, "cancelled": BatchStatus.CANCELLED}


def mark_batches_complete(event: dict, ctx: StepContext) -> dict:
    request = parse_event(MarkCompleteEvent, event, STEP)
    database = database_name(request.database)
    outcomes = load_poll_outcomes(ctx.objects, request.poll_results, request.poll_results_s3_key, STEP)
    ingested: dict[str, PollResult] = {}
    for result in successful_polls(outcomes):
        if result.action != "process_results":
            continue  # waiting, failed and empty batches were settled by poll
        if result.database != database:
            raise StepInputError(f"{STEP}: batch {result.batch_id!r} belongs to {result.database!r}, "
                                 f"not {database!r}")
        ingested.setdefault(result.batch_id, result)
    migrating = building(ctx.ledger, database) is not None
    # During a migration the run published to the staging pointer: each batch settles against its own.
    version = ctx.ledger.get_published(database) if migrating else _version(ctx, database,
                                                                           request.snapshot_version)

    reported = (request.snapshot_version if migrating else None) or (version.version if version else None)
    report = MarkCompleteOutcome(batches_marked=0, snapshot_version=reported)
    summaries = {batch_id: _summary(ctx, batch_id) for batch_id in ingested}
    pending = {batch_id: _pending_ids(ctx, summary) for batch_id, summary in summaries.items()}
    against = {batch_id: settling_versions(ctx.ledger, database, summary, version)
               for batch_id, summary in summaries.items()}
    # One lookup in each published snapshot for every batch (opening it per batch cost ~0.2 s each).
    published, versions = _published(ctx, summaries, pending, against)
    for batch_id, result in ingested.items():
        with step_log_context(batch_id=batch_id):
            settled = set(pending[batch_id])
            for settling in against[batch_id]:
                key = settling.version if settling is not None else None
                settled &= _settled(summaries[batch_id], pending[batch_id], published.get(key, {}),
                                    versions.get(key, {}))
            marked, unpublished = _settle_batch(ctx, result, version, summaries[batch_id], pending[batch_id],
                                                settled)
        report.items_marked += marked
        report.items_not_published += unpublished
        if unpublished:
            report.incomplete_batch_ids.append(batch_id)
        else:
            report.batches_marked += 1
            report.batch_ids.append(batch_id)
    logger.info("marked batches complete", extra={
        "database": database, "version": report.snapshot_version, "batches_marked": report.batches_marked,
        "items_marked": report.items_marked, "items_not_published": report.items_not_published,
        "incomplete_batch_ids": report.incomplete_batch_ids})
    return MarkCompleteResult(mark_complete_result=report).model_dump(mode="json")


def _published(ctx: StepContext, summaries: dict[str, BatchSummary], pending: dict[str, list[str]],
               against: dict[str, list[SnapshotVersion | None]]
               ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, int]]]:
    """Per version id: {id: revision} of the pending ids of embedding and deletion batches, and {id:
    metadata_version} of those of metadata batches (issue 23), each version asked once."""
    wanted: dict[str, tuple[SnapshotVersion, list[str], list[str]]] = {}
    for batch_id, settling in against.items():
        metadata = summaries[batch_id].operation is BatchOperation.METADATA
        for version in settling:
            if version is not None:
                entry = wanted.setdefault(version.version, (version, [], []))
                entry[2 if metadata else 1].extend(pending[batch_id])
    revisions = {key: published_revisions(ctx.objects, version, ids, ctx.settings) if ids else {}
                 for key, (version, ids, _) in wanted.items()}
    versions = {key: published_metadata_versions(ctx.objects, version, ids, ctx.settings) if ids else {}
                for key, (version, _, ids) in wanted.items()}
    return revisions, versions


def _version(ctx: StepContext, database: str, wanted: str | None) -> SnapshotVersion | None:
    if wanted is None:
        return ctx.ledger.get_published(database)
    for version in ctx.ledger.list_versions(database):
        if version.version == wanted:
            return version
    # Pruned since our final merge (other runs published more than SNAPSHOT_VERSIONS_KEPT versions in
    # between). Checking ids against the current version is safe: only ids really published are marked.
    current = ctx.ledger.get_published(database)
    if current is None:
        raise VersionNotFoundError(database, wanted)
    logger.warning("published version was pruned; checking the current one",
                   extra={"database": database, "wanted": wanted, "current": current.version})
    return current


def _summary(ctx: StepContext, batch_id: str) -> BatchSummary:
    summary = ctx.ledger.get_batch(batch_id)
    if summary is None:
        raise BatchNotFoundError(batch_id)
    return summary


def _pending_ids(ctx: StepContext, summary: BatchSummary) -> list[str]:
    """Items the batch still has to settle: PENDING ones, DELETING ones of a deletion batch, or the
    items of a metadata batch."""
    if summary.operation is BatchOperation.METADATA:
        return sorted(parse_metadata_items(summary))
    kind = kind_of(summary.batch_type)
    status = (EmbeddingStatus.DELETING if summary.operation is BatchOperation.DELETE
              else EmbeddingStatus.PENDING)
    # The batch's own items only, lean (one query by batch, no full item built: ~20,000 items per run)
    return [i.item_id for i in ctx.ledger.find_lean_items(kind, summary.batch_id, (status,))]


def _settled(summary: BatchSummary, pending: list[str], published: dict[str, str],
             versions: dict[str, int]) -> set[str]:
    """Which pending ids the published version settles (snapshots/revisions.py)."""
    if summary.operation is BatchOperation.METADATA:
        wanted = parse_metadata_items(summary)
        return {i for i in pending if i not in versions or versions[i] >= wanted[i]}
    revision = revision_of(summary.submitted_at, summary.batch_id)
    if summary.operation is BatchOperation.DELETE:
        return {i for i in pending if i not in published or published[i] > revision}
    # "" is a record published before revisions existed: it is this batch's (nothing re-embeds it).
    return {i for i in pending if i in published and (published[i] >= revision or published[i] == "")}


def _settle_batch(ctx: StepContext, result: PollResult, version: SnapshotVersion | None,
                  summary: BatchSummary, pending: list[str], present: set[str]) -> tuple[int, int]:
    """(items settled, items still not published); closes the summary when none are left."""
    if not present:
        marked = 0
    elif summary.operation is BatchOperation.DELETE:
        marked = ctx.ledger.forget_deleted(result.batch_id, sorted(present))
    elif summary.operation is BatchOperation.METADATA:
        marked = len(present)  # nothing to record per item: its version was marked queued when claimed
    else:
        marked = ctx.ledger.mark_items_succeeded(result.batch_id, sorted(present))
    unpublished = sorted(set(pending) - present)
    if unpublished:
        logger.warning("items not in the published snapshot stay PENDING", extra={
            "count": len(unpublished), "sample": unpublished[:5],
            "version": version.version if version else None})
        return marked, len(unpublished)
    closed = _CLOSED_AS.get(result.batch_status, BatchStatus.COMPLETED)
    if summary.status is not closed:
        ctx.ledger.update_batch(result.batch_id, status=closed, published_at=time.time(),
                                published_version=version.version if version else None)
    return marked, 0
