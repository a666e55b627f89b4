from __future__ import annotations

import pytest
from steps_world import filler_poll_results, polled

from embedding_ingest.snapshots.exceptions import VersionNotFoundError
from embedding_ingest.steps.compact import process_chunk
from embedding_ingest.steps.exceptions import StepInputError
from embedding_ingest.steps.final_merge import final_merge
from embedding_ingest.steps.groups import create_chunk_groups
from embedding_ingest.steps.mark_complete import mark_batches_complete
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus


def publish(ctx, execution, *poll_results):
    refs = [{k: p[k] for k in ("batch_id", "delta_key", "embedding_count", "database", "collection")}
            for p in poll_results]
    chunk = process_chunk({"chunk_index": 0, "batch_id": execution, "delta_results": refs}, ctx)
    return final_merge({"batch_id": execution, "database": "lines", "chunk_results": [chunk]},
                       ctx)["final_merge_result"]


def item_statuses(ctx, items):
    return {i.embedding_status for i in ctx.ledger.get_items([i.item_id for i in items]).values()}


def test_published_items_succeed_and_their_batches_close(ctx):
    first_items, first, first_poll = polled(ctx, 3)
    second_items, second, second_poll = polled(ctx, 2)
    merged = publish(ctx, "exec-1", first_poll, second_poll)
    event = {"database": "lines", "snapshot_version": merged["snapshot_version"],
             "poll_results": [first_poll, second_poll, *filler_poll_results(2)]}

    result = mark_batches_complete(event, ctx)["mark_complete_result"]

    assert result == {"batches_marked": 2, "batch_ids": [first.batch_id, second.batch_id], "items_marked": 5,
                      "items_not_published": 0, "incomplete_batch_ids": [],
                      "snapshot_version": merged["snapshot_version"]}
    assert item_statuses(ctx, first_items + second_items) == {EmbeddingStatus.SUCCESS}
    assert {ctx.ledger.get_batch(b.batch_id).status for b in (first, second)} == {BatchStatus.COMPLETED}


def test_marking_twice_is_harmless(ctx):
    items, summary, poll_result = polled(ctx, 3)
    publish(ctx, "exec-1", poll_result)
    event = {"database": "lines", "poll_results": [poll_result]}  # no version: the current one

    first = mark_batches_complete(event, ctx)["mark_complete_result"]
    closed_at = ctx.ledger.get_batch(summary.batch_id).updated_at
    second = mark_batches_complete(event, ctx)["mark_complete_result"]

    assert first["items_marked"] == 3 and second["items_marked"] == 0
    assert second["batches_marked"] == first["batches_marked"] == 1
    assert ctx.ledger.get_batch(summary.batch_id).updated_at == closed_at
    assert item_statuses(ctx, items) == {EmbeddingStatus.SUCCESS}


def test_items_missing_from_the_snapshot_stay_pending_and_keep_their_batch_open(ctx):
    published_items, published, published_poll = polled(ctx, 2)
    late_items, late, late_poll = polled(ctx, 3)
    publish(ctx, "exec-1", published_poll)  # the late batch's delta never made it

    result = mark_batches_complete({"database": "lines", "poll_results": [published_poll, late_poll]},
                                   ctx)["mark_complete_result"]

    assert result["batch_ids"] == [published.batch_id]
    assert result["incomplete_batch_ids"] == [late.batch_id] and result["items_not_published"] == 3
    assert item_statuses(ctx, late_items) == {EmbeddingStatus.PENDING}
    assert ctx.ledger.get_batch(late.batch_id).status is BatchStatus.FINALIZING  # listed again next run


def test_an_expired_batch_closes_as_expired(ctx):
    items, summary, poll_result = polled(ctx, 4, metadata={"local_outcome": "expired"})
    publish(ctx, "exec-1", poll_result)

    mark_batches_complete({"database": "lines", "poll_results": [poll_result]}, ctx)

    assert ctx.ledger.get_batch(summary.batch_id).status is BatchStatus.EXPIRED
    statuses = ctx.ledger.get_items([i.item_id for i in items])
    assert sorted(s.embedding_status for s in statuses.values()) == [EmbeddingStatus.NONE] * 2 + [
        EmbeddingStatus.SUCCESS] * 2


def test_poll_results_offloaded_to_s3_are_read_back(ctx):
    items, summary, poll_result = polled(ctx, 2)
    merged = publish(ctx, "exec-1", poll_result)
    groups = create_chunk_groups({"batch_id": "exec-1", "chunk_results": [
        {"intermediate_key": "intermediate/exec-1/chunk-0/"}],
        "poll_results": [poll_result, *filler_poll_results(400)]}, ctx)["chunk_groups"]
    assert groups["poll_results"] is None

    result = mark_batches_complete({"database": "lines", "snapshot_version": merged["snapshot_version"],
                                    "poll_results": None,
                                    "poll_results_s3_key": groups["poll_results_s3_key"],
                                    "poll_results_s3_bucket": groups["poll_results_s3_bucket"]},
                                   ctx)["mark_complete_result"]

    assert result["batch_ids"] == [summary.batch_id] and result["items_marked"] == 2
    assert item_statuses(ctx, items) == {EmbeddingStatus.SUCCESS}


def test_nothing_published_marks_nothing(ctx):
    items, summary, poll_result = polled(ctx, 2)

    result = mark_batches_complete({"database": "lines", "poll_results": [poll_result]},
                                   ctx)["mark_complete_result"]

    assert (result["batches_marked"], result["items_not_published"]) == (0, 2)
    assert result["snapshot_version"] is None
    assert item_statuses(ctx, items) == {EmbeddingStatus.PENDING}


def test_caught_poll_failures_are_skipped(ctx):
    items, summary, poll_result = polled(ctx, 2)
    publish(ctx, "exec-1", poll_result)
    caught = {"batch_index": 1, "action": "poll_failed", "error": {"Error": "ProviderBatchNotFoundError",
                                                                   "Cause": "..."}}

    result = mark_batches_complete({"database": "lines", "poll_results": [caught, poll_result]},
                                   ctx)["mark_complete_result"]

    assert result["batch_ids"] == [summary.batch_id]


def test_an_unknown_version_or_missing_poll_results_is_refused(ctx):
    _, _, poll_result = polled(ctx, 1)
    with pytest.raises(VersionNotFoundError, match="v-nope"):
        mark_batches_complete({"database": "lines", "snapshot_version": "v-nope",
                               "poll_results": [poll_result]}, ctx)
    with pytest.raises(StepInputError, match="neither poll_results nor poll_results_s3_key"):
        mark_batches_complete({"database": "lines", "poll_results": None, "poll_results_s3_key": None}, ctx)
    with pytest.raises(StepInputError, match="belongs to 'lines', not 'words'"):
        mark_batches_complete({"database": "words", "poll_results": [poll_result]}, ctx)


def test_a_version_pruned_since_the_final_merge_is_checked_against_the_current_one(ctx):
    items, summary, poll_result = polled(ctx, 3)
    ours = publish(ctx, "exec-1", poll_result)["snapshot_version"]
    _, _, later_poll = polled(ctx, 2)
    publish(ctx, "exec-2", later_poll)  # another run publishes on top of ours ...
    ctx.ledger.forget_version("lines", ours)  # ... and prunes our version before we mark

    result = mark_batches_complete({"database": "lines", "snapshot_version": ours,
                                    "poll_results": [poll_result]}, ctx)["mark_complete_result"]

    assert result["batch_ids"] == [summary.batch_id]
    assert item_statuses(ctx, items) == {EmbeddingStatus.SUCCESS}
