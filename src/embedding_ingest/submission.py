"""Submission: claim un-embedded items and send them to the provider as batches.

Crash-safe and concurrency-safe by construction:
- A batch id is derived from its content (kind, item ids and their attempt counts), so two submitters
  that pick the same items compute the same batch, and a rerun after a crash recomputes it.
- Claiming (summary + NONE -> PENDING for every item) is one all-or-nothing ledger operation; a
  submitter that loses a race on any item claims nothing and re-selects.
- A claimed batch without a provider batch id is resumed first on the next run; the provider's submit
  is idempotent on our batch id, so a crash after the provider accepted the batch never creates a second.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from embedding_ingest.exceptions import InvalidInputError, TerminalError
from embedding_ingest.providers.base import (
    MAX_BYTES_PER_BATCH_FILE,
    MAX_REQUESTS_PER_BATCH,
    BatchProvider,
)
from embedding_ingest.providers.batch_files import encode_request
from embedding_ingest.stores.exceptions import ClaimConflictError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    BatchStatus,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)

_BATCH_NAMESPACE = uuid.UUID("5b0f7a52-7d0c-4c55-9a61-2f1f3c1b9e11")
_MAX_CLAIM_RACES = 20


class SubmittedBatch(BaseModel):
    batch_id: str
    provider_batch_id: str
    item_count: int
    bytes: int
    resumed: bool = False


class RefusedBatch(BaseModel):
    batch_id: str
    item_count: int
    reason: str


class SubmitReport(BaseModel):
    kind: ItemKind
    batches: list[SubmittedBatch] = Field(default_factory=list)
    refused: list[RefusedBatch] = Field(default_factory=list)  # the provider said no; items released

    @property
    def items_submitted(self) -> int:
        return sum(batch.item_count for batch in self.batches)


def batch_id_for(kind: ItemKind, items: Sequence[EmbeddingItem]) -> str:
    """Deterministic: the same items at the same attempt count always make the same batch."""
    digest = hashlib.sha256(kind.value.encode())
    for item in sorted(items, key=lambda i: i.item_id):
        digest.update(f"\n{item.item_id}\t{item.attempts}".encode())
    return str(uuid.uuid5(_BATCH_NAMESPACE, digest.hexdigest()))


def pack_requests(items: Sequence[EmbeddingItem], model: str, *, max_items: int,
                  max_bytes: int = MAX_BYTES_PER_BATCH_FILE) -> tuple[list[EmbeddingItem], bytes]:
    """Take the longest prefix of `items` that fits the limits; returns it and its JSONL file."""
    max_items = min(max_items, MAX_REQUESTS_PER_BATCH)
    taken: list[EmbeddingItem] = []
    lines: list[bytes] = []
    size = 0
    for item in items[:max_items]:
        line = encode_request(item, model, None)
        if len(line) > max_bytes:
            raise InvalidInputError(f"item {item.item_id}: request of {len(line)} bytes exceeds the "
                                    f"{max_bytes}-byte batch file limit on its own")
        if size + len(line) > max_bytes:
            break
        taken.append(item)
        lines.append(line)
        size += len(line)
    return taken, b"".join(lines)


def _receipt_refs(items: Sequence[EmbeddingItem]) -> list[str]:
    return sorted({f"{item.image_id}#{item.receipt_number:05d}" for item in items})


def _send(ledger: Ledger, provider: BatchProvider, summary: BatchSummary, jsonl: bytes, item_ids: list[str],
          *, resumed: bool) -> SubmittedBatch | RefusedBatch:
    """Hand a claimed batch to the provider. A terminal refusal (bad input, limits) must not block
    every later submit: the batch is closed FAILED and its items go back to NONE with the reason
    (FAILED after MAX_ATTEMPTS). Transient errors propagate; the claim is resumed next run."""
    try:
        provider_batch = provider.submit(summary.batch_id, jsonl, {
            "batch_id": summary.batch_id, "batch_type": summary.batch_type.value})
    except TerminalError as exc:
        reason = f"provider refused batch {summary.batch_id}: {exc}"
        ledger.release_items(summary.batch_id, dict.fromkeys(item_ids, reason))
        ledger.update_batch(summary.batch_id, status=BatchStatus.FAILED, last_error=reason)
        return RefusedBatch(batch_id=summary.batch_id, item_count=len(item_ids), reason=reason)
    ledger.update_batch(summary.batch_id, provider_batch_id=provider_batch.provider_batch_id,
                        provider_status=provider_batch.status.value,
                        input_file_id=provider_batch.input_file_id)
    return SubmittedBatch(batch_id=summary.batch_id, provider_batch_id=provider_batch.provider_batch_id,
                          item_count=summary.item_count, bytes=len(jsonl), resumed=resumed)


def _resume_unsent(kind: ItemKind, ledger: Ledger, provider: BatchProvider
                   ) -> list[SubmittedBatch | RefusedBatch]:
    """Finish batches a crashed submit claimed but never handed to the provider."""
    resumed = []
    for summary in ledger.list_batches(statuses=[BatchStatus.PENDING], batch_type=kind.batch_type):
        if summary.provider_batch_id is not None:
            continue
        items = ledger.find_items(kind, EmbeddingStatus.PENDING, batch_id=summary.batch_id)
        if not items:
            ledger.update_batch(summary.batch_id, status=BatchStatus.FAILED,
                                last_error="claimed batch has no pending items left; nothing to submit")
            continue
        _, jsonl = pack_requests(items, provider.model, max_items=len(items))
        resumed.append(_send(ledger, provider, summary, jsonl, [i.item_id for i in items], resumed=True))
    return resumed


def submit(kind: ItemKind, ledger: Ledger, provider: BatchProvider, *, max_items_per_batch: int = 1_000,
           max_batches: int | None = None, max_bytes: int = MAX_BYTES_PER_BATCH_FILE,
           on_batch: Callable[[SubmittedBatch], None] | None = None) -> SubmitReport:
    """Submit every NONE item of `kind` (or up to `max_batches` batches)."""
    if max_items_per_batch <= 0:
        raise InvalidInputError(f"max_items_per_batch must be positive, got {max_items_per_batch}")
    report = SubmitReport(kind=kind)

    def record(outcome: SubmittedBatch | RefusedBatch) -> None:
        if isinstance(outcome, RefusedBatch):
            report.refused.append(outcome)
            return
        report.batches.append(outcome)
        if on_batch:
            on_batch(outcome)

    for outcome in _resume_unsent(kind, ledger, provider):
        record(outcome)
    races = 0
    while max_batches is None or len(report.batches) + len(report.refused) < max_batches:
        candidates = ledger.find_items(kind, EmbeddingStatus.NONE, limit=max_items_per_batch)
        if not candidates:
            break
        items, jsonl = pack_requests(candidates, provider.model, max_items=max_items_per_batch,
                                     max_bytes=max_bytes)
        summary = BatchSummary(batch_id=batch_id_for(kind, items), batch_type=kind.batch_type,
                               status=BatchStatus.PENDING, submitted_at=time.time(),
                               item_count=len(items), receipt_refs=_receipt_refs(items),
                               model=provider.model)
        try:
            ledger.claim_batch(summary, [item.item_id for item in items])
        except ClaimConflictError:
            races += 1  # another submitter took some of these; select again
            if races > _MAX_CLAIM_RACES:
                raise
            continue
        record(_send(ledger, provider, ledger.get_batch(summary.batch_id) or summary, jsonl,
                     [item.item_id for item in items], resumed=False))
    return report
