"""A backlog of 2,000 one-line batches (the original's stuck-for-weeks case, lesson 2): an execution
takes only its cap, oldest first, stays under the payload limit everywhere, and loses nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from e2e_history import active_batches, assert_within_payload_limit, history, task_output
from pipeline import make_workspace, receipts_file

from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ExecutionStatus, ItemKind

LINE = ItemKind.LINE
BACKLOG = 2_000


@pytest.mark.slow
def test_a_backlog_of_2000_batches_is_taken_a_capped_slice_at_a_time_and_none_is_lost(tmp_path):
    ws = make_workspace(tmp_path)
    cap = ws.settings.max_batches_per_execution
    ws.import_receipts(receipts_file(tmp_path, 40))
    report = ws.submit(LINE, max_items_per_batch=1, max_batches=BACKLOG)
    assert len(report.batches) == BACKLOG
    submitted = ws.item_ids(LINE, EmbeddingStatus.PENDING)
    oldest_first = [b.batch_id for b in ws.ledger.list_batches(batch_type=LINE.batch_type)]

    record = ws.run(LINE)

    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    events = history(ws, record)
    assert_within_payload_limit(events)
    listed = task_output(events, "ListPendingBatches")
    assert (listed["total_batches"], listed["use_s3"]) == (cap, True)  # capped, listed via a manifest
    output = ws.output(record)
    assert sorted(output["mark_complete_result"]["batch_ids"]) == sorted(oldest_first[:cap])
    assert output["final_merge_result"]["total_embeddings"] == cap

    # The rest of the backlog is still active and still owns its items: nothing lost, nothing skipped.
    assert [b.batch_id for b in active_batches(ws, LINE)] == oldest_first[cap:]
    assert ws.statuses(LINE)["SUCCESS"] == cap
    assert ws.statuses(LINE)["PENDING"] == BACKLOG - cap
    accounted = ws.item_ids(LINE, EmbeddingStatus.SUCCESS) | ws.item_ids(LINE, EmbeddingStatus.PENDING)
    assert accounted == submitted

    # A further run (here with a small cap of its own) goes on with the next-oldest batches.
    next_slice = 10
    follow_up = ws.run(LINE, definition=build_definition("line", local_resource_arn, max_batches=next_slice))

    assert follow_up.status is ExecutionStatus.SUCCEEDED, (follow_up.error, follow_up.cause)
    assert sorted(ws.output(follow_up)["mark_complete_result"]["batch_ids"]) == sorted(
        oldest_first[cap:cap + next_slice])
    published = ws.published_ids(LINE)
    assert len(published) == len(set(published)) == cap + next_slice
    statuses = Counter(b.status for b in ws.ledger.list_batches(batch_type=LINE.batch_type))
    assert statuses == Counter({BatchStatus.COMPLETED: cap + next_slice,
                                BatchStatus.PENDING: BACKLOG - cap - next_slice})
