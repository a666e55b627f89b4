"""LOCAL_PROVIDER_LATENCY_SECONDS: local batches finish by the clock, like OpenAI's, whoever looks."""

from __future__ import annotations

import time

from embedding_ingest.providers.local import LocalBatchProvider


def provider(tmp_path, latency):
    return LocalBatchProvider(tmp_path / "provider", dimensions=8, latency_seconds=latency)


def test_latency_zero_is_done_at_the_first_poll(tmp_path, make_requests):
    local = provider(tmp_path, 0)
    batch = local.submit("b", make_requests(2), {})
    assert local.retrieve(batch.provider_batch_id).status.value == "completed"


def test_a_batch_keeps_the_latency_read_when_it_was_submitted(tmp_path, make_requests):
    slow = provider(tmp_path, 3600).submit("slow", make_requests(2), {})
    fast_reader = provider(tmp_path, 0)  # same provider directory, another setting now
    for _ in range(5):  # polls alone never finish it
        assert fast_reader.retrieve(slow.provider_batch_id).status.value == "in_progress"
    listed = {b.provider_batch_id: b.status.value for b in fast_reader.list_batches(created_after=0)}
    assert listed == {slow.provider_batch_id: "in_progress"}


def test_the_listing_shows_a_batch_finished_once_its_time_has_come(tmp_path, make_requests):
    # The engine's clock (its injectable `now`) is held still, then moved 2.1 s on instead of sleeping
    # (created_at has whole-second resolution, as OpenAI's, so 1 s of latency is due within 2 s); held
    # still, a slow submit on a loaded machine cannot make the batch due before the first look.
    local = provider(tmp_path, 1)
    clock = [float(int(time.time()))]
    local.engine.now = lambda: clock[0]
    batch = local.submit("b", make_requests(3), {})
    assert [b.status.value for b in local.list_batches(created_after=0)] == ["in_progress"]
    clock[0] += 2.1
    (listed,) = local.list_batches(created_after=0)
    assert listed.status.value == "completed" and listed.request_counts.completed == 3
    assert local.retrieve(batch.provider_batch_id).output_file_id == listed.output_file_id
