"""`batches reset` as a library function (the CLI and the web console call it): set batch summaries'
status, and really let go of a batch reset to a closed status (issue 19).

Closing a batch by hand (FAILED, CANCELLED, EXPIRED, COMPLETED) used to leave its items PENDING under a
batch nothing polls any more, so the next `submit` sent 0. Now its PENDING items go back to NONE for a
provider reason (no attempt spent; records.ReleaseCause), so the next submit sends them again. If the
provider still runs the batch, it is cancelled there first (best effort: a batch the provider no longer
knows, or that has just finished, is simply let go), so it is not paid for twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel

from embedding_ingest.exceptions import EmbeddingIngestError
from embedding_ingest.providers.base import BatchProvider
from embedding_ingest.stores.exceptions import BatchNotFoundError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    ACTIVE_BATCH_STATUSES,
    DEFAULT_MAX_PROVIDER_RETRIES,
    BatchOperation,
    BatchStatus,
    BatchType,
    EmbeddingStatus,
    ItemKind,
    ReleaseCause,
)

log = logging.getLogger(__name__)


class BatchReset(BaseModel):
    """What resetting one batch did."""

    batch_id: str
    status: BatchStatus
    released: int = 0  # PENDING items sent back to NONE (closed statuses only)
    cancelled_at_provider: bool = False
    note: str | None = None  # why the provider was not asked, or what it said


def reset_batches(ledger: Ledger, provider: BatchProvider | None, batch_ids: Sequence[str],
                  status: BatchStatus, *, provider_retry_limit: int = DEFAULT_MAX_PROVIDER_RETRIES
                  ) -> list[BatchReset]:
    """Set each batch's status. To a closed status: cancel it at `provider` if it still runs there
    (best effort; None: do not ask), then release its PENDING items (provider cause). Raises
    BatchNotFoundError for an unknown id before changing anything."""
    summaries = []
    for batch_id in batch_ids:
        summary = ledger.get_batch(batch_id)
        if summary is None:
            raise BatchNotFoundError(batch_id)
        summaries.append(summary)
    done = []
    for summary in summaries:
        outcome = BatchReset(batch_id=summary.batch_id, status=status)
        closing = status not in ACTIVE_BATCH_STATUSES
        if closing and summary.operation is BatchOperation.EMBED and summary.provider_batch_id:
            outcome.cancelled_at_provider, outcome.note = _cancel(provider, summary.provider_batch_id)
        ledger.update_batch(summary.batch_id, status=status)
        if closing and summary.operation is BatchOperation.EMBED:
            kind = ItemKind.LINE if summary.batch_type is BatchType.LINE_EMBEDDING else ItemKind.WORD
            pending = ledger.find_items(kind, EmbeddingStatus.PENDING, batch_id=summary.batch_id)
            reason = f"batch {summary.batch_id} reset to {status.value} by hand"
            outcome.released = ledger.release_items(summary.batch_id, {i.item_id: reason for i in pending},
                                                    cause=ReleaseCause.PROVIDER,
                                                    provider_retry_limit=provider_retry_limit)
        done.append(outcome)
    return done


def _cancel(provider: BatchProvider | None, provider_batch_id: str) -> tuple[bool, str | None]:
    if provider is None:
        return False, "provider not asked"
    try:  # no retrieve first: with the local provider a retrieve is a poll that moves the batch on
        batch = provider.cancel(provider_batch_id)
    except EmbeddingIngestError as exc:  # best effort (finished, unknown, unreachable): the reset goes on
        log.warning("could not cancel provider batch %s: %s", provider_batch_id, exc)
        return False, f"not cancelled at the provider: {exc}"
    return True, f"{batch.status.value} at the provider"
