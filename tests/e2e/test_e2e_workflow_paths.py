"""The real line and word workflows, end to end on the local engine over real SROIE receipts: every
path of the state machine, judged by what a user sees (published ids, statuses, execution output and
the GetExecutionHistory-shaped events)."""

from __future__ import annotations

import json

import pytest
from e2e_history import (
    history,
    states_entered,
    task_output,
    top_level_path,
)
from pipeline import make_workspace, receipts_file
from published_checks import assert_published_exactly_once

import embedding_ingest.steps.chunks as chunk_step
from asl_local.limits import MAX_PAYLOAD_BYTES
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.steps.contracts import INLINE_PAYLOAD_LIMIT, POLL_RESULTS_INLINE_LIMIT
from embedding_ingest.stores.records import EmbeddingStatus, ExecutionStatus, ItemKind

LINE, WORD = ItemKind.LINE, ItemKind.WORD


def state_names(kind: ItemKind) -> set[str]:
    return set(build_definition(kind.value, local_resource_arn)["States"])


def test_no_pending_batches_succeeds_doing_nothing(tmp_path):
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 2))  # items exist, but nothing was submitted

    record = ws.run(LINE)

    assert record.status is ExecutionStatus.SUCCEEDED
    assert top_level_path(history(ws, record), state_names(LINE)) == [
        "ListPendingBatches", "CheckPendingBatches", "NoPendingBatches"]
    assert ws.ledger.get_published("lines") is None and ws.published_ids(LINE) == []
    assert list(ws.objects.list("")) == []  # no manifest, delta or snapshot written
    assert set(ws.statuses(LINE)) == {"NONE"}
    assert ws.ledger.list_batches() == []


def test_few_chunks_go_straight_to_the_final_merge_and_publish_every_line_once(tmp_path):
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 3))
    report = ws.submit(LINE, max_items_per_batch=8)
    submitted = ws.item_ids(LINE, EmbeddingStatus.PENDING)
    assert 10 < len(report.batches) <= 40  # 2-4 chunks of 10 deltas

    record = ws.run(LINE)

    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    path = top_level_path(history(ws, record), state_names(LINE))
    assert "PrepareFinalMerge" in path and "CreateChunkGroups" not in path
    assert path[-3:] == ["FinalMerge", "MarkBatchesComplete", "IngestionSucceeded"]
    assert_published_exactly_once(ws, LINE, submitted)
    output = ws.output(record)
    assert list(output)[-2:] == ["final_merge_result", "mark_complete_result"]
    assert output["final_merge_result"]["total_embeddings"] == len(ws.published_ids(LINE)) == len(submitted)
    marked = output["mark_complete_result"]
    assert sorted(marked["batch_ids"]) == sorted(b.batch_id for b in report.batches)
    assert marked["items_marked"] == len(submitted)


@pytest.mark.slow
def test_many_chunks_take_every_s3_offload_branch_and_the_hierarchical_merge(tmp_path, monkeypatch):
    """267 one-line batches; one execution takes the 250 oldest (the hard cap): a manifest (> 50
    batches), poll results over 100 KB, 25 chunks in 3 groups (groups always go to S3). The next
    execution takes the remaining 17.

    The chunk list alone cannot honestly pass its 150 KB threshold: each chunk entry is a subset of a
    poll result, and poll results stay in the state, so the chunk list reaches 150 KB only after the
    state is over 256 KB. The last assertion proves that from this run's own sizes; the threshold the
    split step reads is lowered (the only constant patched) so the LoadChunksFromS3 branch runs too."""
    monkeypatch.setattr(chunk_step, "INLINE_PAYLOAD_LIMIT", 16 * 1024)
    ws = make_workspace(tmp_path, MAX_BATCHES_PER_EXECUTION=250)
    ws.import_receipts(receipts_file(tmp_path, 5))
    report = ws.submit(LINE, max_items_per_batch=1)
    submitted = ws.item_ids(LINE, EmbeddingStatus.PENDING)
    assert len(report.batches) == len(submitted) == 267

    record = ws.run(LINE, name="line-offload")

    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    events = history(ws, record)
    assert top_level_path(events, state_names(LINE)) == [
        "ListPendingBatches", "CheckPendingBatches", "NormalizePendingBatches", "PollBatches",
        "SplitIntoChunks", "CheckChunksSource", "LoadChunksFromS3", "NormalizeChunkData",
        "ProcessChunksInParallel", "GroupChunksForMerge", "CheckChunkGroupCount", "CreateChunkGroups",
        "CheckChunkGroupsSource", "LoadChunkGroupsFromS3", "MergeChunkGroupsInParallel",
        "PrepareHierarchicalFinalMerge", "FinalMerge", "MarkBatchesComplete", "IngestionSucceeded"]
    entered = states_entered(events)
    assert (entered.count("PollBatch"), entered.count("ProcessChunk"), entered.count("MergeChunkGroup")) == (
        250, 25, 3)

    listed = task_output(events, "ListPendingBatches")
    assert (listed["use_s3"], listed["pending_batches"]) == (True, None)
    assert listed["manifest_s3_key"] == "poll_manifests/line-offload/manifest.json"
    assert len(ws.objects.get_json(listed["manifest_s3_key"])["batches"]) == 250
    chunked = task_output(events, "SplitIntoChunks")["chunked_data"]
    assert chunked["use_s3"] and chunked["chunks_s3_key"] == "chunks/line-offload/chunks.json"
    groups = task_output(events, "CreateChunkGroups")["chunk_groups"]
    assert (groups["use_s3"], groups["total_groups"], groups["poll_results"]) == (True, 3, None)
    assert groups["poll_results_s3_key"] == "chunk_groups/line-offload/poll_results.json"
    assert len(ws.objects.get_json(groups["poll_results_s3_key"])) == 250

    output = ws.output(record)
    assert output["final_merge_result"]["total_embeddings"] == 250
    assert output["mark_complete_result"]["batches_marked"] == 250
    assert len(ws.item_ids(LINE, EmbeddingStatus.PENDING)) == 17  # left for the next run, not lost
    rest = ws.run(LINE, name="line-offload-rest")
    assert rest.status is ExecutionStatus.SUCCEEDED, (rest.error, rest.cause)
    assert_published_exactly_once(ws, LINE, submitted)

    poll_bytes = len(json.dumps(output["poll_results"], separators=(",", ":")))
    chunk_bytes = len(json.dumps(ws.objects.get_json(chunked["chunks_s3_key"]), separators=(",", ":")))
    assert poll_bytes > POLL_RESULTS_INLINE_LIMIT
    assert INLINE_PAYLOAD_LIMIT * poll_bytes / chunk_bytes > MAX_PAYLOAD_BYTES


def test_word_workflow_runs_its_own_states_and_publishes_every_word_once(tmp_path):
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 2, start=10))
    ws.submit(WORD, max_items_per_batch=40)
    submitted = ws.item_ids(WORD, EmbeddingStatus.PENDING)

    record = ws.run(WORD)

    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    assert record.execution_arn.split(":")[-2] == "word-ingest"
    path = top_level_path(history(ws, record), state_names(WORD))
    assert path[:4] == ["ListPendingWordBatches", "CheckPendingWordBatches", "NormalizePendingWordBatches",
                        "PollWordBatches"]
    assert path[-3:] == ["WordFinalMerge", "MarkWordBatchesComplete", "WordIngestionSucceeded"]
    assert_published_exactly_once(ws, WORD, submitted)
    assert ws.published_ids(LINE) == []  # the line snapshot is untouched
    assert ws.output(record)["final_merge_result"]["snapshot_key"] == "words/snapshot/latest/"


def test_process_pool_run_publishes_the_same_ids_as_an_in_process_run(tmp_path):
    kind = LINE
    in_process = make_workspace(tmp_path / "threads", MAX_BATCHES_PER_EXECUTION=100)
    pooled = make_workspace(tmp_path / "pool", MAX_BATCHES_PER_EXECUTION=100)  # one run takes them all
    for ws in (in_process, pooled):
        ws.import_receipts(receipts_file(tmp_path, 2, start=20))
        ws.submit(kind, max_items_per_batch=2)  # > 40 batches, > 4 chunks: groups merge in workers too
    submitted = pooled.item_ids(kind, EmbeddingStatus.PENDING)

    threads_record = in_process.run(kind)
    pool_record = pooled.run_pooled(kind)

    assert (threads_record.status, pool_record.status) == (ExecutionStatus.SUCCEEDED,) * 2, pool_record.cause
    assert "MergeChunkGroupsInParallel" in states_entered(history(pooled, pool_record))
    assert_published_exactly_once(pooled, kind, submitted)
    assert sorted(pooled.published_ids(kind)) == sorted(in_process.published_ids(kind))
