"""A small, real world for step tests: LocalObjectStore, SqliteLedger and LocalBatchProvider under one
temporary directory, plus helpers that put batches into the state each step expects."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from embedding_ingest.config import Settings
from embedding_ingest.providers.batch_files import encode_request
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.receipts.ids import line_item_id, word_item_id
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.poll import poll
from embedding_ingest.stores.local_objects import LocalObjectStore
from embedding_ingest.stores.records import BatchStatus, BatchSummary, EmbeddingItem, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

DIMENSIONS = 16


def make_context(root: Path, **provider_options) -> StepContext:
    settings = Settings(home=root, embedding_dimensions=DIMENSIONS, lock_ttl_seconds=30)
    provider = LocalBatchProvider(root / "provider", dimensions=DIMENSIONS, polls_per_stage=0,
                                  **provider_options)
    return StepContext(objects=LocalObjectStore(root / "objects"), ledger=SqliteLedger(root / "ledger.db"),
                       provider=provider, settings=settings)


def make_items(count: int, *, kind: ItemKind = ItemKind.LINE,
               image: str | None = None) -> list[EmbeddingItem]:
    image = image or uuid.uuid4().hex[:12]
    items = []
    for n in range(count):
        item_id = (line_item_id(image, 1, n) if kind is ItemKind.LINE
                   else word_item_id(image, 1, n // 3, n % 3))
        items.append(EmbeddingItem(item_id=item_id, kind=kind, image_id=image, receipt_number=1, line_id=n,
                                   word_id=None if kind is ItemKind.LINE else n % 3,
                                   text=f"TOTAL {n}.50", embed_text=f"TOTAL {n}.50 RM",
                                   metadata={"image_id": image, "line_id": n}))
    return items


def submit_batch(ctx: StepContext, items: Sequence[EmbeddingItem], *, metadata: dict | None = None,
                 submitted_at: float | None = None) -> BatchSummary:
    """Claim `items` as one batch and hand it to the provider (what submission does)."""
    ctx.ledger.add_items(items)
    kind = items[0].kind
    batch_id = str(uuid.uuid4())
    summary = BatchSummary(batch_id=batch_id, batch_type=kind.batch_type, status=BatchStatus.PENDING,
                           submitted_at=submitted_at if submitted_at is not None else time.time(),
                           item_count=len(items), model=ctx.provider.model)
    ctx.ledger.claim_batch(summary, [i.item_id for i in items])
    jsonl = b"".join(encode_request(i, ctx.provider.model, None) for i in items)
    accepted = ctx.provider.submit(batch_id, jsonl, metadata or {})
    return ctx.ledger.update_batch(batch_id, provider_batch_id=accepted.provider_batch_id)


def poll_batch(ctx: StepContext, summary: BatchSummary) -> dict:
    return poll({"batch_id": summary.batch_id, "openai_batch_id": summary.provider_batch_id}, ctx)


def finish_at_provider(ctx: StepContext, summary: BatchSummary) -> str:
    """Drive the provider batch to its end without our poll step; returns its final status."""
    return ctx.provider.retrieve(summary.provider_batch_id).status.value


def rewrite_output_file(ctx: StepContext, summary: BatchSummary,
                        edit: Callable[[list[dict]], list[bytes]]) -> None:
    """Damage the provider's real output file on disk (a provider that returns bad lines)."""
    batch = ctx.provider.retrieve(summary.provider_batch_id)
    path = ctx.provider.root / "files" / batch.output_file_id
    assert path.exists(), f"the local provider no longer keeps output files at {path}"
    lines = [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    path.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in edit(lines)))


def dump(line: dict) -> bytes:
    return json.dumps(line).encode()
