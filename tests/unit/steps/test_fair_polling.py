"""ListPendingBatches without head-of-line blocking, and polls that release queue-limit refusals
without spending an attempt."""

from __future__ import annotations

import logging
import math
import time

from steps_world import make_items, poll_batch, submit_batch

from embedding_ingest.providers.exceptions import ProviderTransientError
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.list_pending import list_pending
from embedding_ingest.stores.records import EmbeddingStatus

SLOW = {"local_latency_seconds": "3600"}
FAST = {"local_latency_seconds": "0"}


def listed(ctx, cap: int) -> list[str]:
    result = list_pending({"batch_type": "line", "execution_id": "exec", "max_batches": cap}, ctx)
    return [ref["batch_id"] for ref in result["pending_batches"]]


def test_batches_the_provider_reports_finished_come_before_older_unfinished_ones(ctx):
    slow = [submit_batch(ctx, make_items(1), metadata=SLOW, submitted_at=1000.0 + n) for n in range(3)]
    fast = [submit_batch(ctx, make_items(1), metadata=FAST, submitted_at=2000.0 + n) for n in range(2)]

    assert listed(ctx, 2) == [b.batch_id for b in fast]
    # The listing's view is written back, so budgets see what the provider finished.
    assert [ctx.ledger.get_batch(b.batch_id).listed_status for b in fast] == ["completed", "completed"]
    assert {ctx.ledger.get_batch(b.batch_id).listed_status for b in slow} == {"in_progress"}


def test_every_active_batch_is_polled_within_ceil_active_over_cap_executions(ctx):
    batches = [submit_batch(ctx, make_items(1), metadata=SLOW, submitted_at=1000.0 + n) for n in range(7)]
    cap = 3
    rounds = math.ceil(len(batches) / cap)
    polled_in: dict[str, list[int]] = {b.batch_id: [] for b in batches}
    for execution in range(2 * rounds):
        for batch_id in listed(ctx, cap):
            polled_in[batch_id].append(execution)
            poll_batch(ctx, ctx.ledger.get_batch(batch_id))
    for batch_id, executions in polled_in.items():
        gaps = [b - a for a, b in zip([-1, *executions], executions, strict=False)]
        assert executions and max(gaps) <= rounds, (batch_id, executions)


def test_the_oldest_batches_no_longer_block_newer_finished_ones_across_executions(ctx):
    slow = [submit_batch(ctx, make_items(1), metadata=SLOW, submitted_at=1000.0 + n) for n in range(4)]
    fast = [submit_batch(ctx, make_items(1), metadata=FAST, submitted_at=2000.0 + n) for n in range(4)]
    seen: list[str] = []
    for _ in range(2):
        for batch_id in listed(ctx, 2):
            seen.append(batch_id)
            poll_batch(ctx, ctx.ledger.get_batch(batch_id))
    assert seen == [b.batch_id for b in fast]
    assert {ctx.ledger.get_batch(b.batch_id).listed_status for b in slow} == {"in_progress"}


class ListingDown:
    """The real provider, except that its listing call fails (an outage of GET /v1/batches)."""

    def __init__(self, provider):
        self._provider = provider

    def __getattr__(self, name):
        return getattr(self._provider, name)

    def list_batches(self, *, created_after):
        raise ProviderTransientError("OpenAI batch list still failing after 5 attempts")


def test_a_failing_listing_falls_back_to_least_recently_polled(ctx, caplog):
    batches = [submit_batch(ctx, make_items(1), metadata=FAST, submitted_at=1000.0 + n) for n in range(3)]
    poll_batch(ctx, batches[0])
    down = StepContext(objects=ctx.objects, ledger=ctx.ledger, provider=ListingDown(ctx.provider),
                       settings=ctx.settings)
    caplog.set_level(logging.WARNING)
    assert listed(down, 2) == [batches[1].batch_id, batches[2].batch_id]
    assert "listing failed" in caplog.text


def test_a_queue_limit_refusal_releases_items_without_spending_an_attempt(ctx):
    items = make_items(3)
    summary = submit_batch(ctx, items, metadata={"local_outcome": "failed",
                                                 "local_failure_code": "token_limit_exceeded"})
    result = poll_batch(ctx, summary)
    assert result["action"] == "batch_failed" and result["released_count"] == 3
    released = ctx.ledger.get_items([i.item_id for i in items]).values()
    assert {(i.embedding_status, i.attempts, i.batch_id) for i in released} == {
        (EmbeddingStatus.NONE, 0, None)}
    assert all("token_limit_exceeded" in i.last_error for i in released)


def test_a_batch_failed_for_its_content_spends_an_attempt_of_the_item_on_the_named_line_only(ctx):
    items = make_items(3)
    items[1] = items[1].model_copy(update={"embed_text": ""})  # the API refuses an empty input
    summary = submit_batch(ctx, items)
    result = poll_batch(ctx, summary)
    assert (result["action"], result["released_count"]) == ("batch_failed", 3)
    released = ctx.ledger.get_items([i.item_id for i in items])
    culprit = released[items[1].item_id]
    assert (culprit.attempts, culprit.provider_retries) == (1, 0)
    assert "line 2: invalid_request: body.input must be a non-empty string" in culprit.last_error
    for neighbour in (items[0], items[2]):  # failed with the file, not for what they asked
        item = released[neighbour.item_id]
        assert (item.embedding_status, item.attempts, item.provider_retries) == (EmbeddingStatus.NONE, 0, 1)
        assert "not because of this request" in item.last_error


def test_a_batch_error_naming_no_line_spends_no_attempt_whatever_its_code(ctx):
    items = make_items(2)
    summary = submit_batch(ctx, items, metadata={"local_outcome": "failed",
                                                 "local_failure_code": "some_new_queue_limit"})
    poll_batch(ctx, summary)
    released = ctx.ledger.get_items([i.item_id for i in items]).values()
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in released} == {
        (EmbeddingStatus.NONE, 0, 1)}


def test_a_batch_another_execution_is_polling_right_now_goes_last(ctx):
    finished = [submit_batch(ctx, make_items(1), metadata=FAST, submitted_at=1000.0 + n) for n in range(2)]
    # Execution A started polling the first one and has not finished: B takes the other first.
    ctx.ledger.update_batch(finished[0].batch_id, poll_started_at=time.time())
    assert listed(ctx, 1) == [finished[1].batch_id]
    # A poll that started longer ago than a poll can run died: that batch is fair game again.
    ctx.ledger.update_batch(finished[0].batch_id, poll_started_at=time.time() - 3600)
    assert listed(ctx, 1) == [finished[0].batch_id]
