"""Submission: claim un-embedded items and send them to the provider as batches.

Crash-safe and concurrency-safe by construction:
- A batch id is derived from its content (kind, item ids and their attempt counts), so two submitters
  that pick the same items compute the same batch, and a rerun after a crash recomputes it.
- Claiming (summary + NONE -> PENDING for every item) is one all-or-nothing ledger operation; a
  submitter that loses a race on any item claims nothing and re-selects.
- A claimed batch without a provider batch id is resumed first on the next run; the provider's submit
  is idempotent on our batch id, so a crash after the provider accepted the batch never creates a second.

Within OpenAI's real limits (issue 11): every input <= 8,192 tokens, per-batch caps (requests, bytes,
MAX_TOKENS_PER_BATCH), and per-model budgets across batches still at the provider
(OPENAI_ENQUEUED_TOKEN_LIMIT / OPENAI_ENQUEUED_REQUEST_LIMIT, see budgets.py). `submit` is the one
entry point (CLI, demo, the scheduler's Lambda); its budgets come from Settings.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError, TerminalError
from embedding_ingest.providers.base import MAX_BYTES_PER_BATCH_FILE, BatchProvider, ProviderBatch
from embedding_ingest.providers.exceptions import ProviderAccountError, UnknownProviderFileError
from embedding_ingest.providers.models import request_dimensions
from embedding_ingest.providers.tokens import MAX_INPUT_TOKENS
from embedding_ingest.stores.exceptions import ClaimConflictError
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import (
    ACTIVE_BATCH_STATUSES,
    BatchOperation,
    BatchStatus,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)
from embedding_ingest.submission.budgets import Enqueued, enqueued_for, price_per_million
from embedding_ingest.submission.deletions import queue_deletions
from embedding_ingest.submission.metadata_updates import queue_metadata_updates
from embedding_ingest.submission.model_guard import check_submit_model
from embedding_ingest.submission.packing import PackedBatch, pack_requests

log = logging.getLogger(__name__)
_BATCH_NAMESPACE = uuid.UUID("5b0f7a52-7d0c-4c55-9a61-2f1f3c1b9e11")
_MAX_CLAIM_RACES = 20

__all__ = ["SubmitReport", "SubmittedBatch", "batch_id_for", "pack_requests", "submit"]


class SubmittedBatch(BaseModel):
    batch_id: str
    provider_batch_id: str | None  # None in a dry run: nothing was sent
    item_count: int
    bytes: int
    tokens: int = 0  # cl100k_base input tokens of its requests
    truncated: int = 0  # items whose text was shortened to the 8,192-token input limit
    resumed: bool = False


class RefusedBatch(BaseModel):
    batch_id: str
    item_count: int
    reason: str


class SubmitReport(BaseModel):
    kind: ItemKind
    model: str = ""
    dry_run: bool = False
    batches: list[SubmittedBatch] = Field(default_factory=list)
    refused: list[RefusedBatch] = Field(default_factory=list)  # the provider said no; items released
    items_waiting_for_budget: int = 0  # left NONE because another batch would exceed a queue budget
    budget_exhausted: str | None = None  # which one: OPENAI_ENQUEUED_TOKEN_LIMIT or ..._REQUEST_LIMIT
    enqueued_before: Enqueued | None = None  # what the provider held for this model when we started
    token_budget: int = 0
    request_budget: int = 0
    price_per_million_usd: float = 0.0
    priced_as: str = ""  # the model whose batch price estimated_cost_usd uses
    deletion_batches: list[str] = Field(default_factory=list)  # issue 10: removals queued (deletions.py)
    metadata_batches: list[str] = Field(default_factory=list)  # issue 23: metadata updates queued

    @property
    def items_submitted(self) -> int:
        return sum(batch.item_count for batch in self.batches)

    @property
    def tokens_submitted(self) -> int:
        return sum(batch.tokens for batch in self.batches)

    @property
    def truncated_items(self) -> int:
        return sum(batch.truncated for batch in self.batches)

    @property
    def estimated_cost_usd(self) -> float:
        return self.tokens_submitted * self.price_per_million_usd / 1_000_000

    def totals(self) -> dict:
        """The derived figures, for output next to the batches."""
        return {"items_submitted": self.items_submitted, "tokens_submitted": self.tokens_submitted,
                "truncated_items": self.truncated_items,
                "estimated_cost_usd": round(self.estimated_cost_usd, 6)}


def batch_id_for(kind: ItemKind, items: Sequence[EmbeddingItem]) -> str:
    """Deterministic: the same items at the same attempt and provider-retry counts (and the same
    content: a changed item re-embedded is a new batch, not the old one again) always make the same
    batch. Both counters count: a release that spends no attempt must still give the next batch a new id
    (issue 19), else it would collide with the closed one."""
    digest = hashlib.sha256(kind.value.encode())
    for item in sorted(items, key=lambda i: i.item_id):
        retries = f"\tp{item.provider_retries}" if item.provider_retries else ""  # ids of before stay put
        digest.update(f"\n{item.item_id}\t{item.attempts}{retries}".encode())
        if item.content_hash is not None:
            digest.update(f"\t{item.content_hash}".encode())
    return str(uuid.uuid5(_BATCH_NAMESPACE, digest.hexdigest()))


def next_batch_id(ledger: Ledger, kind: ItemKind, items: Sequence[EmbeddingItem]) -> str:
    """batch_id_for, or the first of its successors (one more "generation" hashed in) that names no
    closed batch: items queued again with counters reset (`items requeue`, a migration, a receipt
    deleted and re-added) would otherwise compute the id of the batch that embedded them before, and a
    claim under a closed batch is polled by nothing. Deterministic for a given ledger state, so racing
    submitters and a rerun after a crash still agree (an active batch of that id is the rerun's)."""
    batch_id = batch_id_for(kind, items)
    for generation in range(1, 1000):
        existing = ledger.get_batch(batch_id)
        if existing is None or existing.status in ACTIVE_BATCH_STATUSES:
            return batch_id
        batch_id = str(uuid.uuid5(_BATCH_NAMESPACE, f"{batch_id}\ngeneration {generation}"))
    raise InvalidInputError(f"no free batch id for {len(items)} {kind.value} items after 1000 tries")


def _receipt_refs(items: Sequence[EmbeddingItem]) -> list[str]:
    return sorted({f"{item.image_id}#{item.receipt_number:05d}" for item in items})


def _send(ledger: Ledger, provider: BatchProvider, summary: BatchSummary, packed: PackedBatch,
          *, resumed: bool) -> SubmittedBatch | RefusedBatch:
    """Hand a claimed batch to the provider: upload its input once (the file id is kept on the summary,
    so a create that fails transiently is resumed without a second upload; again only if the provider
    lost the file), then create the batch. An account error (quota, a refused key) propagates with the
    claim left as it is: nothing was the items' fault. Any other terminal refusal (bad input, limits)
    must not block every later submit: the batch is closed FAILED and its items go back to NONE with
    the reason (FAILED after MAX_ATTEMPTS). Transient errors propagate; the claim is resumed next run."""
    metadata = {"batch_id": summary.batch_id, "batch_type": summary.batch_type.value}
    try:
        provider_batch = provider.find_live(summary.batch_id) if resumed else None
        if provider_batch is None:
            provider_batch = _create(ledger, provider, summary, packed, metadata)
    except ProviderAccountError as exc:  # the next submit resumes the claim (and reuses its upload)
        ledger.update_batch(summary.batch_id, last_error=f"not sent yet: {exc}")
        raise
    except TerminalError as exc:
        reason = f"provider refused batch {summary.batch_id}: {exc}"
        ledger.release_items(summary.batch_id, dict.fromkeys(packed.item_ids, reason))
        ledger.update_batch(summary.batch_id, status=BatchStatus.FAILED, last_error=reason)
        return RefusedBatch(batch_id=summary.batch_id, item_count=len(packed.items), reason=reason)
    ledger.update_batch(summary.batch_id, provider_batch_id=provider_batch.provider_batch_id,
                        provider_status=provider_batch.status.value,
                        input_file_id=provider_batch.input_file_id)
    return SubmittedBatch(batch_id=summary.batch_id, provider_batch_id=provider_batch.provider_batch_id,
                          item_count=summary.item_count, bytes=len(packed.jsonl), tokens=packed.tokens,
                          truncated=packed.truncated, resumed=resumed)


def _create(ledger: Ledger, provider: BatchProvider, summary: BatchSummary, packed: PackedBatch,
            metadata: dict[str, str]) -> ProviderBatch:
    file_id = summary.input_file_id
    for upload_again in (False, True):
        if file_id is None or upload_again:
            file_id = provider.upload(summary.batch_id, packed.jsonl)
            ledger.update_batch(summary.batch_id, input_file_id=file_id)
        try:
            return provider.create(summary.batch_id, file_id, metadata)
        except UnknownProviderFileError:
            if upload_again:
                raise
            log.warning("input file %s of batch %s is gone at the provider; uploading it again", file_id,
                        summary.batch_id)
    raise AssertionError("unreachable")


def _resume_unsent(kind: ItemKind, ledger: Ledger, provider: BatchProvider
                   ) -> list[SubmittedBatch | RefusedBatch]:
    """Finish batches a crashed (or refused-for-now) submit claimed but never handed to the provider
    (their tokens are already counted as enqueued), with the width and format they were claimed with."""
    resumed = []
    for summary in ledger.list_batches(statuses=[BatchStatus.PENDING], batch_type=kind.batch_type):
        if summary.provider_batch_id is not None or summary.operation is not BatchOperation.EMBED:
            continue
        items = ledger.find_items(kind, EmbeddingStatus.PENDING, batch_id=summary.batch_id)
        if not items:
            ledger.update_batch(summary.batch_id, status=BatchStatus.FAILED,
                                last_error="claimed batch has no pending items left; nothing to submit")
            continue
        model = summary.model or provider.model
        dimensions = summary.dimensions or provider.dimensions
        packed = pack_requests(items, model, max_items=len(items),
                               dimensions=request_dimensions(model, dimensions))
        resumed.append(_send(ledger, provider, summary, packed, resumed=True))
    return resumed


def submit(kind: ItemKind, ledger: Ledger, provider: BatchProvider, *, settings: Settings | None = None,
           max_items_per_batch: int | None = None, max_batches: int | None = None,
           max_bytes: int = MAX_BYTES_PER_BATCH_FILE, max_tokens_per_batch: int | None = None,
           dry_run: bool = False, on_batch: Callable[[SubmittedBatch], None] | None = None) -> SubmitReport:
    """Submit every NONE item of `kind` (or up to `max_batches` batches) within every cap and budget.

    Per batch: `max_items_per_batch` (default MAX_ITEMS_PER_BATCH, at most 50,000), `max_bytes`
    (200 MB), `max_tokens_per_batch` (default MAX_TOKENS_PER_BATCH). Across batches of the provider's
    model still at the provider: OPENAI_ENQUEUED_TOKEN_LIMIT and OPENAI_ENQUEUED_REQUEST_LIMIT; the
    first batch that would pass either is not made and the report counts the items left waiting.
    `dry_run` plans the same batches (items, tokens, estimated cost) and changes nothing.
    Raises ModelChangeError when the provider's model or width is not the kind's (model_guard.py),
    InvalidInputError for a non-positive cap; provider transient errors propagate."""
    settings = settings or Settings()
    max_items = max_items_per_batch or settings.max_items_per_batch
    token_cap = max_tokens_per_batch or settings.max_tokens_per_batch
    if max_items <= 0:
        raise InvalidInputError(f"max_items_per_batch must be positive, got {max_items}")
    if token_cap < MAX_INPUT_TOKENS:  # else an item of 8,192 tokens could never be packed
        raise InvalidInputError(f"max_tokens_per_batch must be at least {MAX_INPUT_TOKENS:,} (one whole "
                                f"input), got {token_cap:,}")
    check_submit_model(kind, ledger, provider.model, provider.dimensions)  # before anything is claimed
    price, priced_as = price_per_million(provider.model, settings)
    enqueued = enqueued_for(ledger, provider.model)
    report = SubmitReport(kind=kind, model=provider.model, dry_run=dry_run,
                          enqueued_before=enqueued.model_copy(),
                          token_budget=settings.openai_enqueued_token_limit,
                          request_budget=settings.openai_enqueued_request_limit,
                          price_per_million_usd=price, priced_as=priced_as)
    if not dry_run:  # deletions waiting for a batch (a crash after import, say) go too (issue 10)
        report.deletion_batches = [summary.batch_id for summary in queue_deletions(kind, ledger)]
        # issue 23: metadata changes of items published since (or left by a crash) go too
        report.metadata_batches = [summary.batch_id for summary in queue_metadata_updates(kind, ledger)]

    def record(outcome: SubmittedBatch | RefusedBatch) -> None:
        if isinstance(outcome, RefusedBatch):
            report.refused.append(outcome)
            return
        report.batches.append(outcome)
        if on_batch:
            on_batch(outcome)

    if not dry_run:
        for outcome in _resume_unsent(kind, ledger, provider):
            record(outcome)
    pool = ledger.find_items(kind, EmbeddingStatus.NONE) if dry_run else None
    planned = 0  # dry run: items of `pool` already planned into batches
    races = 0
    while max_batches is None or len(report.batches) + len(report.refused) < max_batches:
        if pool is not None:
            candidates = pool[planned:planned + max_items]
        else:
            candidates = ledger.find_items(kind, EmbeddingStatus.NONE, limit=max_items)
        if not candidates:
            break
        room_tokens = settings.openai_enqueued_token_limit - enqueued.tokens
        room_requests = settings.openai_enqueued_request_limit - enqueued.requests
        packed = pack_requests(candidates, provider.model, max_items=min(max_items, max(room_requests, 0)),
                               dimensions=request_dimensions(provider.model, provider.dimensions),
                               max_bytes=max_bytes, max_tokens=min(token_cap, room_tokens))
        if not packed.items:
            report.budget_exhausted = ("OPENAI_ENQUEUED_REQUEST_LIMIT" if room_requests <= 0
                                       else "OPENAI_ENQUEUED_TOKEN_LIMIT")
            report.items_waiting_for_budget = (len(pool) - planned if pool is not None else
                                               ledger.count_items(kind).get(EmbeddingStatus.NONE, 0))
            break
        summary = BatchSummary(batch_id=next_batch_id(ledger, kind, packed.items), batch_type=kind.batch_type,
                               status=BatchStatus.PENDING, submitted_at=time.time(),
                               item_count=len(packed.items), receipt_refs=_receipt_refs(packed.items),
                               model=provider.model, dimensions=provider.dimensions, tokens=packed.tokens)
        if pool is not None:
            planned += len(packed.items)
            outcome: SubmittedBatch | RefusedBatch = SubmittedBatch(
                batch_id=summary.batch_id, provider_batch_id=None, item_count=len(packed.items),
                bytes=len(packed.jsonl), tokens=packed.tokens, truncated=packed.truncated)
        else:
            try:
                claimed = ledger.claim_batch(summary, packed.item_ids)
            except ClaimConflictError:
                claimed = False  # another submitter took some of these
            if claimed is False:
                # Lost to another submitter: it took some of these items, or packed exactly these into
                # the same deterministic batch id a moment earlier (then the claim is already made, and
                # sending it too would bill every item twice). Select again.
                races += 1
                if races > _MAX_CLAIM_RACES:
                    raise ClaimConflictError(f"{kind.value} submit lost {races} claims in a row to other "
                                             "submitters; run it again")
                continue
            outcome = _send(ledger, provider, ledger.get_batch(summary.batch_id) or summary, packed,
                            resumed=False)
        if isinstance(outcome, SubmittedBatch):
            enqueued.tokens += packed.tokens
            enqueued.requests += len(packed.items)
        record(outcome)
    return report

