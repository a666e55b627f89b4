from __future__ import annotations

import dataclasses
import threading

import pytest
from refusing_store import RefusingObjectStore
from steps_world import polled

from embedding_ingest.pipeline.policies import LOCK_BUSY_ERROR
from embedding_ingest.snapshots import (
    ids_present,
    pointer_key,
    publish_next_version,
    read_manifest,
    versions_prefix,
)
from embedding_ingest.steps.compact import process_chunk
from embedding_ingest.steps.exceptions import EmbeddingCountMismatchError, StepInputError
from embedding_ingest.steps.final_merge import final_merge
from embedding_ingest.steps.lease import LOCK_WAIT_INTERVAL_SECONDS, HeldLock
from embedding_ingest.stores.exceptions import (
    CorruptObjectError,
    LockNotAcquiredError,
    StaleFencingTokenError,
)


def chunk_result(ctx, index, *poll_results):
    refs = [{"batch_id": p["batch_id"], "delta_key": p["delta_key"], "embedding_count": p["embedding_count"],
             "database": "lines", "collection": "lines"} for p in poll_results]
    return process_chunk({"chunk_index": index, "batch_id": "exec-1", "delta_results": refs}, ctx)


@pytest.fixture
def two_chunks(ctx):
    batches = [polled(ctx, n) for n in (3, 2, 4)]
    chunks = [chunk_result(ctx, 0, batches[0][2], batches[1][2]), chunk_result(ctx, 1, batches[2][2])]
    return [i.item_id for items, _, _ in batches for i in items], chunks


def wait_until(condition, attempts: int = 400) -> None:
    """Wait for the heartbeat thread to do something (bounded, so a broken heartbeat fails, not hangs)."""
    for _ in range(attempts):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError("the heartbeat thread never got there")


def merge_event(chunks, **extra):
    return {"batch_id": "exec-1", "operation": "final_merge", "database": "lines", "chunk_results": chunks,
            "poll_results": None, "poll_results_s3_key": None, "poll_results_s3_bucket": None, **extra}


def test_final_merge_publishes_every_intermediate_under_the_lock(ctx, two_chunks):
    item_ids, chunks = two_chunks

    result = final_merge(merge_event(chunks), ctx)["final_merge_result"]

    current = ctx.ledger.get_published("lines")
    assert result["statusCode"] == 200 and result["snapshot_key"] == "lines/snapshot/latest/"
    assert result["snapshot_version"] == current.version
    assert result["total_embeddings"] == result["added_embeddings"] == 9 == current.count
    assert ids_present(ctx.objects, current, item_ids, ctx.settings) == set(item_ids)
    assert ctx.ledger.current_lease("lines") is None  # released


def test_what_failed_after_the_publish_is_in_the_result(ctx, two_chunks):
    """The publish stands; the pointer mirror and pruning that failed after it are in the result."""
    item_ids, chunks = two_chunks
    refusing = RefusingObjectStore(ctx.objects.root, refuse_writes=[pointer_key("lines")],
                                   refuse_deletes=[versions_prefix("lines")])
    keep_one = dataclasses.replace(ctx, objects=refusing,
                                   settings=ctx.settings.model_copy(update={"snapshot_versions_kept": 1}))
    first = final_merge(merge_event(chunks), keep_one)["final_merge_result"]
    items, _, later = polled(ctx, 5)
    more = process_chunk({"chunk_index": 0, "batch_id": "exec-2", "delta_results": [
        {k: later[k] for k in ("batch_id", "delta_key", "embedding_count", "database", "collection")}]}, ctx)

    second = final_merge({**merge_event([more]), "batch_id": "exec-2"}, keep_one)["final_merge_result"]

    assert first["prune_error"] is None  # one version: nothing to prune yet
    mirror_error = f"could not write {pointer_key('lines')}: PermissionError"
    assert first["mirror_error"].startswith(mirror_error) and second["mirror_error"].startswith(mirror_error)
    assert second["prune_error"].startswith("pruning lines after publish failed: PermissionError")
    assert (second["snapshot_version"], second["total_embeddings"]) == (
        ctx.ledger.get_published("lines").version, len(item_ids) + len(items))


def test_final_merge_twice_publishes_nothing_new(ctx, two_chunks):
    _, chunks = two_chunks

    first = final_merge(merge_event(chunks), ctx)["final_merge_result"]
    second = final_merge(merge_event(chunks), ctx)["final_merge_result"]

    assert second["snapshot_version"] == first["snapshot_version"]
    assert second["total_embeddings"] == first["total_embeddings"]
    assert second["message"].startswith("Already published")
    assert len(ctx.ledger.list_versions("lines")) == 1


def test_a_second_run_adds_to_the_published_snapshot(ctx, two_chunks):
    item_ids, chunks = two_chunks
    final_merge(merge_event(chunks), ctx)
    items, _, later = polled(ctx, 5)
    more = process_chunk({"chunk_index": 0, "batch_id": "exec-2", "delta_results": [
        {k: later[k] for k in ("batch_id", "delta_key", "embedding_count", "database", "collection")}]}, ctx)

    result = final_merge({**merge_event([more]), "batch_id": "exec-2"}, ctx)["final_merge_result"]

    assert (result["total_embeddings"], result["added_embeddings"]) == (14, 5)
    current = ctx.ledger.get_published("lines")
    every = item_ids + [i.item_id for i in items]
    assert ids_present(ctx.objects, current, every, ctx.settings) == set(every)


def test_a_busy_lock_raises_a_transient_error_and_publishes_nothing(ctx, two_chunks):
    _, chunks = two_chunks
    ctx.ledger.acquire_lock("lines", "someone-else", 60)

    with pytest.raises(LockNotAcquiredError, match="someone-else") as busy:
        final_merge(merge_event(chunks), ctx)

    assert ctx.ledger.get_published("lines") is None
    # What the workflow sees: a transient error under the very name its lock-wait Retry matches.
    assert busy.value.transient and type(busy.value).__name__ == LOCK_BUSY_ERROR
    assert "last heartbeat 20" in str(busy.value) and "by the holder's clock" in str(busy.value)


def test_the_retries_of_one_execution_take_over_a_lease_unchanged_for_a_whole_lease(ctx, two_chunks):
    """Each invocation is one look, each Retry wait (LOCK_WAIT_INTERVAL_SECONDS) its clock: a 300 s lease
    left unchanged is taken over at the fourth look (after 3 waits), with a larger fencing token."""
    _, chunks = two_chunks
    dead = ctx.ledger.acquire_lock("lines", "crashed-merge", 300)
    looks = 0
    while True:
        looks += 1
        try:
            result = final_merge(merge_event(chunks), ctx)["final_merge_result"]
            break
        except LockNotAcquiredError as busy:
            unchanged = (looks - 1) * LOCK_WAIT_INTERVAL_SECONDS
            assert f"unchanged here for {unchanged} s of its 300 s lease" in str(busy)
    assert looks == 1 + 300 // LOCK_WAIT_INTERVAL_SECONDS
    assert ctx.ledger.get_published("lines").fencing_token > dead.fencing_token
    assert result["added_embeddings"] > 0


def test_a_holder_that_renews_between_looks_is_never_taken_over(ctx, two_chunks):
    _, chunks = two_chunks
    holder = ctx.ledger.acquire_lock("lines", "live-merge", 300)
    for _ in range(10):
        with pytest.raises(LockNotAcquiredError, match="unchanged here for 0 s"):
            final_merge(merge_event(chunks), ctx)
        holder = ctx.ledger.heartbeat(holder)
    assert ctx.ledger.current_lease("lines") == holder


def test_a_failing_merge_raises_and_releases_the_lock(ctx, two_chunks):
    _, chunks = two_chunks
    archive = read_manifest(ctx.objects, chunks[1]["intermediate_key"]).archive_key
    ctx.objects.put_bytes(archive, b"garbage")

    with pytest.raises(CorruptObjectError, match=archive):
        final_merge(merge_event(chunks), ctx)

    assert ctx.ledger.get_published("lines") is None
    assert ctx.ledger.current_lease("lines") is None


def test_a_wrong_reported_count_raises_instead_of_returning_an_error(ctx, two_chunks):
    _, chunks = two_chunks
    chunks[0] = dict(chunks[0], total_embeddings=chunks[0]["total_embeddings"] + 1)

    with pytest.raises(EmbeddingCountMismatchError, match="expected 6 embeddings, found 5"):
        final_merge(merge_event(chunks), ctx)
    assert ctx.ledger.get_published("lines") is None


@pytest.mark.parametrize("chunks", [None, []])
def test_nothing_to_merge_is_an_input_error(ctx, chunks):
    with pytest.raises(StepInputError, match="chunk_results"):
        final_merge(merge_event(chunks), ctx)


def test_the_heartbeat_renews_the_lease(ctx):
    with HeldLock(ctx.ledger, "lines", "owner-a", lease_seconds=0.3) as held:
        first = held.lease
        wait_until(lambda: held.beats >= 2 or held.lost is not None)
        current = ctx.ledger.current_lease("lines")
        assert held.lost is None
        assert (current.owner, current.fencing_token) == ("owner-a", first.fencing_token)
        assert current.rvn != first.rvn  # what a waiter watches: it moved, so the holder lives
    assert ctx.ledger.current_lease("lines") is None


def test_a_lease_taken_over_by_another_writer_is_refused_and_not_released(ctx, two_chunks):
    _, chunks = two_chunks
    with HeldLock(ctx.ledger, "lines", "owner-a", lease_seconds=0.3) as held:
        stale = held.lease
        ctx.ledger.release_lock(stale)  # e.g. an operator broke the lock; then another writer took it
        ctx.ledger.acquire_lock("lines", "owner-b", 60)
        wait_until(lambda: held.lost is not None)
        with pytest.raises(StaleFencingTokenError):
            publish_next_version(ctx.objects, ctx.ledger, held.lease, database="lines",
                                 sources=[c["intermediate_key"] for c in chunks], settings=ctx.settings)
    assert ctx.ledger.current_lease("lines").owner == "owner-b"
    assert ctx.ledger.get_published("lines") is None
