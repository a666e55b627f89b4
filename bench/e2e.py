"""Figures 1 and 5: a full local ingestion (completed batches -> published snapshot, as the CLI runs
it) against a one-pass upsert of the same vectors into a fresh quality collection; and, from the set-up
of the same run, the throughput of submission and of the local provider."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path

from common import Figure, make_workspace, rate, receipts_file, stopwatch
from embedding_ingest.snapshots import chroma_io, iter_published_pages
from embedding_ingest.stores.records import ExecutionStatus, ItemKind

ITEMS_PER_BATCH = 1000
RECEIPTS = 400  # the whole SROIE test file (tests/data): 22,227 lines, 47,150 words


def _kind_for(count: int) -> ItemKind:
    return ItemKind.LINE if count <= 22_000 else ItemKind.WORD


def stage_spans(events) -> dict[str, float]:
    """Seconds from a state's first entry to its last exit (Map iterations overlap, so spans do too)."""
    first: dict[str, float] = {}
    last: dict[str, float] = defaultdict(float)
    for event in events:
        name = (event.details or {}).get("name")
        if not name:
            continue
        if event.type.endswith("StateEntered"):
            first.setdefault(name, event.timestamp)
        elif event.type.endswith("StateExited"):
            last[name] = max(last[name], event.timestamp)
    return {name: round(last[name] - start, 2) for name, start in first.items() if name in last}


def run(work: Path, *, count: int, dimensions: int) -> list[Figure]:
    if count % ITEMS_PER_BATCH:
        raise ValueError(f"the end-to-end count must be a multiple of {ITEMS_PER_BATCH}, got {count}")
    kind = _kind_for(count)
    ws = make_workspace(work, dimensions=dimensions, polls_per_stage=0)
    ws.import_receipts(receipts_file(work, RECEIPTS))

    with stopwatch() as submit_time:
        report = ws.submit(kind, max_items_per_batch=ITEMS_PER_BATCH, max_batches=count // ITEMS_PER_BATCH)
    if report.items_submitted != count:
        raise RuntimeError(f"submitted {report.items_submitted} {kind.value} items, wanted {count}")

    # The provider finishes each batch at its first poll; do that (and read the files) before the clock
    # starts, so the ingestion below starts from completed batches.
    provider = ws.ctx.provider
    with stopwatch() as provider_time:
        for batch in report.batches:
            done = provider.retrieve(batch.provider_batch_id)
            if done.output_file_id is None:
                raise RuntimeError(f"local provider left batch {batch.provider_batch_id} without output")
            with provider.open_file(done.output_file_id) as chunks:
                for _ in chunks:
                    pass

    with stopwatch() as ingest_time:
        record = ws.run_pooled(kind, name="bench-e2e")
    if record.status is not ExecutionStatus.SUCCEEDED:
        raise RuntimeError(f"end-to-end run ended {record.status}: {record.error} {record.cause}")
    spans = stage_spans(ws.ledger.get_events(record.execution_arn))

    version = ws.ledger.get_published(kind.database)
    assert version is not None
    if version.count != count:
        raise RuntimeError(f"published {version.count} embeddings, submitted {count}")
    pages = list(iter_published_pages(ws.objects, version, ws.settings, page_size=5000))

    baseline_dir = Path(tempfile.mkdtemp(dir=work, prefix="baseline-")) / "chroma"
    with stopwatch() as baseline_time, chroma_io.open_client(baseline_dir) as client:
        col = chroma_io.create_collection(client, kind.database, "quality", ws.settings)
        written = chroma_io.upsert_pages(client, col, pages, dimensions=dimensions, where="baseline")
        del col
    if len(written) != count:
        raise RuntimeError(f"baseline wrote {len(written)} embeddings, expected {count}")

    ratio = ingest_time[0] / baseline_time[0]
    return [
        Figure("e2e_ratio", ratio, "x", target=1.15, baseline=baseline_time[0],
               detail=f"{count:,} x {dimensions}-d {kind.value}s in {len(report.batches)} batches: "
                      f"ingest {ingest_time[0]:.1f}s vs one-pass upsert {baseline_time[0]:.1f}s",
               extra={"e2e_seconds": ingest_time[0], "baseline_seconds": baseline_time[0],
                      "stage_seconds": spans}),
        Figure("submit_items_per_s", rate(count, submit_time[0]), "items/s",
               detail=f"{count:,} items claimed and sent in {len(report.batches)} batches"),
        Figure("local_provider_items_per_s", rate(count, provider_time[0]), "items/s",
               detail=f"{count:,} x {dimensions}-d encoded, written and read back"),
    ]
