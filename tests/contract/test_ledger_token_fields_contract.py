"""Issue 11's additive fields, the same in every ledger adapter: items keep `tokens`/`truncated`,
batches keep submitted/billed tokens, polled_at and listed_status, and a release may spare attempts."""

from __future__ import annotations

from test_ledger_contract import line, summary

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import EmbeddingStatus, ReleaseCause


def test_items_keep_their_token_count_and_truncation(ledger: Ledger) -> None:
    ledger.add_items([line(1, tokens=8_192, truncated=True), line(2), line(3, tokens=7)])
    got = ledger.get_items([line(n).item_id for n in (1, 2, 3)])
    assert [(got[line(n).item_id].tokens, got[line(n).item_id].truncated) for n in (1, 2, 3)] == [
        (8_192, True), (None, False), (7, False)]
    assert {i.item_id: i.tokens for i in ledger.find_items(line(1).kind, EmbeddingStatus.NONE)}[
        line(1).item_id] == 8_192


def test_batches_keep_tokens_billed_tokens_polled_at_and_listed_status(ledger: Ledger) -> None:
    ledger.add_items([line(1)])
    ledger.claim_batch(summary("b1", 1).model_copy(update={"tokens": 42}), [line(1).item_id])
    assert ledger.get_batch("b1").tokens == 42
    ledger.update_batch("b1", billed_tokens=40, polled_at=1234.5, poll_started_at=1234.5,
                        listed_status="completed")
    got = ledger.get_batch("b1")
    assert (got.tokens, got.billed_tokens, got.polled_at, got.poll_started_at, got.listed_status) == (
        42, 40, 1234.5, 1234.5, "completed")
    # The console's timeline (issue 20): results read, published, in which version.
    assert (got.results_at, got.published_at, got.published_version) == (None, None, None)
    ledger.update_batch("b1", results_at=1234.5, published_at=1240.25, published_version="v1")
    got = ledger.get_batch("b1")
    assert (got.results_at, got.published_at, got.published_version, got.billed_tokens) == (
        1234.5, 1240.25, "v1", 40)


def test_a_release_for_a_provider_reason_spares_the_attempt(ledger: Ledger) -> None:
    ledger.add_items([line(1), line(2)])
    ledger.claim_batch(summary("b1", 2), [line(1).item_id, line(2).item_id])
    assert ledger.release_items("b1", {line(1).item_id: "token_limit_exceeded"},
                                cause=ReleaseCause.PROVIDER) == 1
    assert ledger.release_items("b1", {line(2).item_id: "bad input"}) == 1
    got = ledger.get_items([line(1).item_id, line(2).item_id])
    assert [(i.embedding_status, i.attempts, i.provider_retries, i.batch_id) for i in got.values()] == [
        (EmbeddingStatus.NONE, 0, 1, None), (EmbeddingStatus.NONE, 1, 0, None)]
    # released again (already NONE): nothing changes
    assert ledger.release_items("b1", {line(1).item_id: "again"}, cause=ReleaseCause.PROVIDER) == 0
