"""A small, real world for step tests: LocalObjectStore, SqliteLedger and LocalBatchProvider under one
temporary directory, plus helpers that put batches into the state each step expects."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from embedding_ingest.backends import LOCAL_DEFAULT_MODEL
from embedding_ingest.config import Settings
from embedding_ingest.providers.batch_files import encode_request
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.receipts.ids import line_item_id, word_item_id
from embedding_ingest.snapshots import iter_pages, materialize
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.poll import poll
from embedding_ingest.stores.local_objects import LocalObjectStore
from embedding_ingest.stores.records import BatchStatus, BatchSummary, EmbeddingItem, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

DIMENSIONS = 16


def make_context(root: Path, **provider_options) -> StepContext:
    """The same layout backends.build_step_context uses for these settings (so a worker process of the
    local backend, pipeline.local_backend.invoke_in_worker, agrees), with a provider that finishes a
    batch on its first retrieve unless a test asks otherwise."""
    settings = Settings(home=root, embedding_dimensions=DIMENSIONS, lock_ttl_seconds=30)
    provider = LocalBatchProvider(root / "provider", model=settings.embedding_model or LOCAL_DEFAULT_MODEL,
                                  dimensions=DIMENSIONS,
                                  polls_per_stage=provider_options.pop("polls_per_stage", 0),
                                  **provider_options)
    return StepContext(objects=LocalObjectStore(settings.objects_dir),
                       ledger=SqliteLedger(settings.ledger_path), provider=provider, settings=settings)


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
                 submitted_at: float | None = None, encoding_format: str = "base64") -> BatchSummary:
    """Claim `items` as one batch and hand it to the provider (what submission does)."""
    ctx.ledger.add_items(items)
    kind = items[0].kind
    batch_id = str(uuid.uuid4())
    summary = BatchSummary(batch_id=batch_id, batch_type=kind.batch_type, status=BatchStatus.PENDING,
                           submitted_at=submitted_at if submitted_at is not None else time.time(),
                           item_count=len(items), model=ctx.provider.model, dimensions=DIMENSIONS)
    ctx.ledger.claim_batch(summary, [i.item_id for i in items])
    jsonl = b"".join(encode_request(i, ctx.provider.model, DIMENSIONS, encoding_format) for i in items)
    accepted = ctx.provider.submit(batch_id, jsonl, metadata or {})
    return ctx.ledger.update_batch(batch_id, provider_batch_id=accepted.provider_batch_id)


def poll_batch(ctx: StepContext, summary: BatchSummary) -> dict:
    return poll({"batch_id": summary.batch_id, "openai_batch_id": summary.provider_batch_id}, ctx)


def polled(ctx: StepContext, count: int, *, kind: ItemKind = ItemKind.LINE,
           metadata: dict | None = None) -> tuple[list[EmbeddingItem], BatchSummary, dict]:
    """A submitted batch of `count` new items, polled once (so it has its delta)."""
    items = make_items(count, kind=kind)
    summary = submit_batch(ctx, items, metadata=metadata)
    return items, summary, poll_batch(ctx, summary)


def filler_poll_results(count: int) -> list[dict]:
    """Poll results of batches still waiting at the provider: weight in the payload, nothing to merge."""
    return [{"batch_id": f"waiting-{n:05d}", "openai_batch_id": f"batch_waiting_{n:05d}",
             "batch_status": "in_progress", "action": "wait", "collection": "lines", "database": "lines"}
            for n in range(count)]


def rewrite_output_file(ctx: StepContext, summary: BatchSummary,
                        edit: Callable[[list[dict]], list[bytes]]) -> None:
    """Damage the provider's real output file on disk (a provider that returns bad lines)."""
    batch = ctx.provider.retrieve(summary.provider_batch_id)
    path = ctx.provider.root / "files" / batch.output_file_id
    assert path.exists(), f"the local provider no longer keeps output files at {path}"
    lines = [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    path.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in edit(lines)))


def snapshot_records(ctx: StepContext, prefix: str, tmp_path: Path, collection: str = "lines") -> dict:
    """id -> (embedding, metadata, document) of the committed snapshot at `prefix`."""
    dest = materialize(ctx.objects, prefix, tmp_path / prefix.replace("/", "_"))
    records = {}
    for page in iter_pages(dest, collection):
        for i, item_id in enumerate(page.ids):
            records[item_id] = (page.embeddings[i].tolist(), page.metadatas[i], page.documents[i])
    return records


def dump(line: dict) -> bytes:
    return json.dumps(line).encode()
