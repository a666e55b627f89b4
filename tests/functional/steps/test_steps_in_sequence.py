"""The steps run in workflow order by hand (no engine) over real receipts, until a snapshot is
published: what the line workflow does, step by step, with every port real."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pipeline import receipts_file

from embedding_ingest.backends import LOCAL_DEFAULT_MODEL
from embedding_ingest.config import Settings
from embedding_ingest.consumer import Snapshot
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.receipts.importer import import_receipts
from embedding_ingest.snapshots import iter_published_pages
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.contracts import GROUPING_THRESHOLD_CHUNKS
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.local_objects import LocalObjectStore
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger
from embedding_ingest.submission.submit import submit

RECEIPT_COUNT = 5


@pytest.fixture
def ctx(tmp_path: Path):
    settings = Settings(home=tmp_path, embedding_model=LOCAL_DEFAULT_MODEL, embedding_dimensions=64)
    # polls_per_stage=1: each poll moves a batch one status on, as a slow provider would.
    provider = LocalBatchProvider(tmp_path / "provider", model=LOCAL_DEFAULT_MODEL, dimensions=64,
                                  polls_per_stage=1)
    context = StepContext(objects=LocalObjectStore(settings.objects_dir),
                          ledger=SqliteLedger(settings.ledger_path), provider=provider, settings=settings)
    yield context
    context.ledger.close()


def call(name: str, event: dict, ctx: StepContext) -> dict:
    return HANDLERS[name](event, ctx)


def run_line_execution(name: str, ctx: StepContext) -> dict:
    """One execution of the line workflow, following the reference's states and Choice rules."""
    listed = call("embedding-list-pending", {"batch_type": "line", "execution_id": name}, ctx)
    if listed["total_batches"] == 0:
        return {"outcome": "no_batches"}
    poll_results = [call("embedding-line-poll", {
        "batch_index": index, "manifest_s3_key": listed["manifest_s3_key"],
        "manifest_s3_bucket": listed["manifest_s3_bucket"], "pending_batches": listed["pending_batches"],
        "skip_sqs_notification": True}, ctx) for index in listed["batch_indices"]]

    split_event = {"batch_id": name, "poll_results": poll_results}
    chunked = call("embedding-split-chunks", split_event, ctx)["chunked_data"]
    if chunked["total_chunks"] == 0:
        return {"outcome": "no_chunks", "listed": listed, "poll_results": poll_results}
    if chunked["use_s3"]:
        load_event = {"operation": "load_chunks_from_s3", "batch_id": name,
                      "chunks_s3_key": chunked["chunks_s3_key"],
                      "chunks_s3_bucket": chunked["chunks_s3_bucket"]}
        chunked = call("embedding-split-chunks", load_event, ctx)["chunked_data"]
    chunk_results = [call("embedding-vector-compact", chunk, ctx) for chunk in chunked["chunks"]]

    poll_state = {"poll_results": poll_results, "poll_results_s3_key": None, "poll_results_s3_bucket": None}
    to_publish = chunk_results
    if chunked["total_chunks"] > GROUPING_THRESHOLD_CHUNKS:
        created = call("embedding-create-chunk-groups", {"batch_id": name, "chunk_results": chunk_results,
                                                         "group_size": 10, **poll_state}, ctx)["chunk_groups"]
        loaded = call("embedding-create-chunk-groups", {
            "operation": "load_groups_from_s3", "batch_id": name, "groups_s3_key": created["groups_s3_key"],
            "groups_s3_bucket": created["groups_s3_bucket"], "poll_results": created["poll_results"],
            "poll_results_s3_key": created["poll_results_s3_key"],
            "poll_results_s3_bucket": created["poll_results_s3_bucket"]}, ctx)["chunk_groups"]
        to_publish = [call("embedding-vector-compact", {"operation": "merge_chunk_group", **group}, ctx)
                      for group in loaded["groups"]]
        poll_state = {k: loaded[k] for k in poll_state}

    final_event = {"batch_id": name, "operation": "final_merge", "database": "lines",
                   "chunk_results": to_publish, **poll_state}
    merged = call("embedding-vector-compact", final_event, ctx)
    marked = call("embedding-mark-batches-complete", {
        "database": "lines", "snapshot_version": merged["final_merge_result"]["snapshot_version"],
        **poll_state}, ctx)
    return {"outcome": "published", "listed": listed, "chunked": chunked, "poll_results": poll_results,
            "to_publish": to_publish, **merged, **marked}


def test_real_receipts_go_from_submission_to_a_queryable_published_snapshot(ctx, tmp_path):
    report = import_receipts(receipts_file(tmp_path, RECEIPT_COUNT), ctx.ledger)
    assert report.receipts_imported == RECEIPT_COUNT and report.lines_added > 200
    # Small batches, so this run has more than 50 of them (manifest) and more than 4 chunks (groups).
    submitted = submit(ItemKind.LINE, ctx.ledger, ctx.provider, max_items_per_batch=5)
    submitted_ids = {i.item_id for i in ctx.ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING)}
    assert len(submitted.batches) > 50 and len(submitted_ids) == report.lines_added

    runs = [run_line_execution(f"exec-{n}", ctx) for n in range(1, 4)]

    # validating -> in_progress, then -> finalizing: both executions wait; nothing vanishes (lesson 1).
    for early in runs[:2]:
        assert early["outcome"] == "no_chunks"
        assert early["listed"]["total_batches"] == len(submitted.batches)
        assert {p["action"] for p in early["poll_results"]} == {"wait"}
    final = runs[2]
    assert final["outcome"] == "published"
    assert final["listed"]["use_s3"] is True
    assert final["chunked"]["total_chunks"] > GROUPING_THRESHOLD_CHUNKS
    assert all(ref["intermediate_key"].endswith("/merged/") for ref in final["to_publish"])
    result = final["final_merge_result"]
    assert result["total_embeddings"] == result["added_embeddings"] == len(submitted_ids)
    assert final["mark_complete_result"]["batches_marked"] == len(submitted.batches)

    version = ctx.ledger.get_published("lines")
    published: dict[str, np.ndarray] = {}
    for page in iter_published_pages(ctx.objects, version, ctx.settings):
        published.update(zip(page.ids, page.embeddings, strict=True))
    assert set(published) == submitted_ids
    assert {i.embedding_status for i in ctx.ledger.get_items(sorted(submitted_ids)).values()} == {
        EmbeddingStatus.SUCCESS}
    assert {s.status for s in ctx.ledger.list_batches()} == {BatchStatus.COMPLETED}

    # A line's own vector finds that line first (pick one whose vector no other line shares).
    shared = Counter(vector.tobytes() for vector in published.values())
    line_id = next(i for i, vector in sorted(published.items()) if shared[vector.tobytes()] == 1)
    with Snapshot(ItemKind.LINE, store=ctx.objects, ledger=ctx.ledger, settings=ctx.settings) as snapshot:
        got = snapshot.query(query_embeddings=published[line_id], n_results=3)
    assert got["ids"][0][0] == line_id
    assert got["documents"][0][0] == ctx.ledger.get_items([line_id])[line_id].text

    # Nothing is left to do: the next execution finds no batches.
    assert run_line_execution("exec-4", ctx) == {"outcome": "no_batches"}
