"""Issue 19's ledger rules, the same in every adapter: a provider-side failure never spends one of an
item's attempts but is counted and bounded, a release that spends nothing still gives the next batch a
new id, and FAILED or SUCCESS items can be queued again (items requeue, model migration)."""

from __future__ import annotations

from test_ledger_contract import ids, line, summary

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import MAX_ATTEMPTS, BatchStatus, EmbeddingStatus, ItemKind, ReleaseCause
from embedding_ingest.submission.submit import next_batch_id


def claim_next(ledger: Ledger, item_ids: list[str]) -> str:
    """Claim items as submit does: the batch id derived from the items as they stand now."""
    items = list(ledger.get_items(item_ids).values())
    batch_id = next_batch_id(ledger, ItemKind.LINE, items)
    ledger.claim_batch(summary(batch_id, len(items)), item_ids)
    return batch_id


def test_provider_failures_never_fail_an_item_before_their_own_bound(ledger: Ledger) -> None:
    ledger.add_items([line(0)])
    for n in range(MAX_ATTEMPTS + 2):  # more provider failures than an item has attempts
        batch_id = claim_next(ledger, ids(0))
        assert ledger.release_items(batch_id, {ids(0)[0]: f"batch expired ({n})"},
                                    cause=ReleaseCause.PROVIDER, provider_retry_limit=10) == 1
    item = ledger.get_items(ids(0))[ids(0)[0]]
    assert (item.embedding_status, item.attempts, item.provider_retries) == (
        EmbeddingStatus.NONE, 0, MAX_ATTEMPTS + 2)
    assert ledger.provider_retry_counts(ItemKind.LINE) == {"items": 1, "retries": MAX_ATTEMPTS + 2,
                                                           "failed": 0}


def test_past_the_provider_retry_bound_the_item_fails_saying_how_to_release_it(ledger: Ledger) -> None:
    ledger.add_items([line(0), line(1)])
    for _ in range(3):
        batch_id = claim_next(ledger, ids(0))
        ledger.release_items(batch_id, {ids(0)[0]: "batch cancelled before this request ran"},
                             cause=ReleaseCause.PROVIDER, provider_retry_limit=2)
    item = ledger.get_items(ids(0))[ids(0)[0]]
    assert (item.embedding_status, item.attempts, item.provider_retries) == (EmbeddingStatus.FAILED, 0, 3)
    assert item.last_error.startswith("gave up after 3 provider-side failures (MAX_PROVIDER_RETRIES=2)")
    assert "batch cancelled before this request ran" in item.last_error
    assert "`embedding-ingest items requeue line --failed`" in item.last_error
    assert ledger.provider_retry_counts(ItemKind.LINE) == {"items": 0, "retries": 0, "failed": 1}

    assert ledger.requeue_items(ItemKind.LINE, EmbeddingStatus.FAILED, "requeued by hand") == 1
    item = ledger.get_items(ids(0))[ids(0)[0]]
    assert (item.embedding_status, item.attempts, item.provider_retries, item.batch_id, item.last_error) == (
        EmbeddingStatus.NONE, 0, 0, None, "requeued by hand")
    assert ledger.requeue_items(ItemKind.LINE, EmbeddingStatus.FAILED, "again") == 0


def test_after_a_release_that_spends_no_attempt_the_next_batch_is_a_new_one(ledger: Ledger) -> None:
    """Issue 19's latent bug: the batch id hashed only (item, attempts, content), so a free release
    recomputed the closed batch's id: SQLite overwrote its summary, DynamoDB left the items PENDING
    under the FAILED summary, which nothing polls."""
    ledger.add_items([line(0), line(1)])
    first = claim_next(ledger, ids(0, 1))
    ledger.release_items(first, dict.fromkeys(ids(0, 1), "token_limit_exceeded"), cause=ReleaseCause.PROVIDER)
    ledger.update_batch(first, status=BatchStatus.FAILED, last_error="queue full")

    second = claim_next(ledger, ids(0, 1))
    assert second != first
    assert ledger.get_batch(first).status is BatchStatus.FAILED  # the closed batch is kept as it was
    assert ledger.get_batch(first).last_error == "queue full"
    assert ledger.get_batch(second).status is BatchStatus.PENDING
    assert {i.batch_id for i in ledger.get_items(ids(0, 1)).values()} == {second}
    assert {i.item_id for i in ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id=second)} \
        == set(ids(0, 1))


def test_requeue_moves_success_items_back_in_chunks(ledger: Ledger) -> None:
    ledger.add_items([line(n) for n in range(5)])
    batch_id = claim_next(ledger, ids(0, 1, 2, 3))
    ledger.mark_items_succeeded(batch_id, ids(0, 1, 2, 3))
    reason = "re-embed for migration"
    assert ledger.requeue_items(ItemKind.LINE, EmbeddingStatus.SUCCESS, reason, limit=3) == 3
    assert ledger.requeue_items(ItemKind.LINE, EmbeddingStatus.SUCCESS, reason, limit=3) == 1
    assert ledger.count_items(ItemKind.LINE)[EmbeddingStatus.NONE] == 5
    assert {i.last_error for i in ledger.find_items(ItemKind.LINE, EmbeddingStatus.NONE)} == {reason, None}
    ledger.update_batch(batch_id, status=BatchStatus.COMPLETED)
    again = claim_next(ledger, ids(0, 1, 2, 3))  # counters reset: the same items as the closed batch
    assert again != batch_id and ledger.get_batch(batch_id).status is BatchStatus.COMPLETED
    assert {i.batch_id for i in ledger.get_items(ids(0, 1, 2, 3)).values()} == {again}
