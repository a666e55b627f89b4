"""Submission at OpenAI's real limits: tokens per input and per batch, enqueued budgets per model,
duplicate custom_ids, and dry runs."""

from __future__ import annotations

import pytest

from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.providers.tokens import MAX_INPUT_TOKENS, count_tokens
from embedding_ingest.stores.records import (
    BatchStatus,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)
from embedding_ingest.stores.sqlite_ledger import SqliteLedger
from embedding_ingest.submission.packing import DuplicateCustomIdError, pack_requests
from embedding_ingest.submission.submit import submit


def line(n: int, text: str = "TOTAL 9.00", *, image: str = "img") -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMAGE#{image}#RECEIPT#00001#LINE#{n:05d}", kind=ItemKind.LINE,
                         image_id=image, receipt_number=1, line_id=n, text=text,
                         embed_text=f"<EDGE>\n{text}\n<EDGE>")


TOKENS_PER_LINE = count_tokens(line(0).embed_text)


@pytest.fixture
def ledger(tmp_path):
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield ledger
    ledger.close()


@pytest.fixture
def provider(tmp_path):
    return LocalBatchProvider(tmp_path / "provider", dimensions=8)


def settings(**values) -> Settings:
    return Settings(**values)


def test_a_duplicate_custom_id_is_never_packed_into_one_batch():
    items = [line(1), line(2), line(1)]
    with pytest.raises(DuplicateCustomIdError, match=r"LINE#00001: offered twice"):
        pack_requests(items, "m", max_items=10)


def test_the_token_cap_splits_batches_and_each_batch_records_its_tokens(ledger, provider):
    ledger.add_items([line(n) for n in range(10)])
    report = submit(ItemKind.LINE, ledger, provider, settings=settings(),
                    max_tokens_per_batch=MAX_INPUT_TOKENS, max_items_per_batch=4)
    assert [b.item_count for b in report.batches] == [4, 4, 2]
    assert [b.tokens for b in report.batches] == [n * TOKENS_PER_LINE for n in (4, 4, 2)]
    assert [ledger.get_batch(b.batch_id).tokens for b in report.batches] == [b.tokens for b in report.batches]

    packed = pack_requests([line(n) for n in range(10)], "m", max_items=10, max_tokens=3 * TOKENS_PER_LINE)
    assert len(packed.items) == 3 and packed.tokens == 3 * TOKENS_PER_LINE


def test_a_per_batch_token_cap_below_one_whole_input_is_refused(ledger, provider):
    with pytest.raises(InvalidInputError, match="at least 8,192"):
        submit(ItemKind.LINE, ledger, provider, settings=settings(), max_tokens_per_batch=100)


def test_an_item_imported_before_token_counting_is_cut_to_the_input_limit_when_packed():
    long = line(1, "9" * 40_000)  # 13,334 tokens, no token count recorded
    packed = pack_requests([long], "m", max_items=1)
    (item,) = packed.items
    assert item.truncated and item.tokens == count_tokens(item.embed_text) <= MAX_INPUT_TOKENS
    assert packed.truncated == 1 and packed.tokens == item.tokens


def claim_foreign_batch(ledger, batch_id, *, model, tokens, items, provider_status=None,
                        kind=ItemKind.WORD):
    """A batch of another kind (same org queue) already at the provider."""
    ledger.add_items(items)
    summary = BatchSummary(batch_id=batch_id, batch_type=kind.batch_type, status=BatchStatus.IN_PROGRESS,
                           submitted_at=1.0, item_count=len(items), model=model, tokens=tokens,
                           provider_batch_id=f"batch_{batch_id}", provider_status=provider_status)
    ledger.claim_batch(summary, [i.item_id for i in items])
    ledger.update_batch(batch_id, status=BatchStatus.IN_PROGRESS)


def word(n: int) -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMAGE#other#RECEIPT#00001#LINE#00001#WORD#{n:05d}", kind=ItemKind.WORD,
                         image_id="other", receipt_number=1, line_id=1, word_id=n, text="x", embed_text="x")


def test_submit_stops_before_a_batch_would_pass_the_enqueued_token_budget(ledger, provider):
    # Another kind's batch of the same model holds 1,000 tokens of a 1,000 + 5 lines budget.
    claim_foreign_batch(ledger, "held", model=provider.model, tokens=1_000, items=[word(1)])
    ledger.add_items([line(n) for n in range(12)])
    budget = settings(OPENAI_ENQUEUED_TOKEN_LIMIT=1_000 + 5 * TOKENS_PER_LINE)
    report = submit(ItemKind.LINE, ledger, provider, settings=budget, max_items_per_batch=2)
    assert [b.item_count for b in report.batches] == [2, 2, 1]  # the last batch shrinks to fit
    assert report.items_waiting_for_budget == 7 and report.budget_exhausted == "OPENAI_ENQUEUED_TOKEN_LIMIT"
    assert report.enqueued_before.tokens == 1_000
    assert ledger.count_items(ItemKind.LINE)[EmbeddingStatus.NONE] == 7

    # Once the provider reports that batch finished it stops counting: the rest goes out.
    ledger.update_batch("held", listed_status="completed")
    again = submit(ItemKind.LINE, ledger, provider, settings=budget, max_items_per_batch=10)
    assert again.items_submitted == 7 and again.items_waiting_for_budget == 0
    assert again.enqueued_before.tokens == 5 * TOKENS_PER_LINE  # only our own 5 lines still count


def test_another_models_batches_do_not_count(ledger, provider):
    claim_foreign_batch(ledger, "other-model", model="text-embedding-3-large", tokens=10**9, items=[word(1)])
    ledger.add_items([line(n) for n in range(3)])
    report = submit(ItemKind.LINE, ledger, provider, settings=settings(OPENAI_ENQUEUED_TOKEN_LIMIT=10_000))
    assert report.items_submitted == 3 and report.items_waiting_for_budget == 0


def test_the_enqueued_request_budget_counts_requests(ledger, provider):
    claim_foreign_batch(ledger, "held", model=provider.model, tokens=0, items=[word(n) for n in range(3)])
    ledger.add_items([line(n) for n in range(10)])
    report = submit(ItemKind.LINE, ledger, provider, settings=settings(OPENAI_ENQUEUED_REQUEST_LIMIT=7),
                    max_items_per_batch=3)
    assert [b.item_count for b in report.batches] == [3, 1]
    assert report.items_waiting_for_budget == 6
    assert report.budget_exhausted == "OPENAI_ENQUEUED_REQUEST_LIMIT"


def test_a_dry_run_plans_the_same_batches_prices_them_and_changes_nothing(ledger, provider, tmp_path):
    ledger.add_items([line(n) for n in range(25)])
    prices = settings(OPENAI_BATCH_PRICES={"text-embedding-3-small": 0.01})
    planned = submit(ItemKind.LINE, ledger, provider, settings=prices, max_items_per_batch=10, dry_run=True)
    assert planned.dry_run and [b.item_count for b in planned.batches] == [10, 10, 5]
    assert all(b.provider_batch_id is None for b in planned.batches)
    assert planned.tokens_submitted == 25 * TOKENS_PER_LINE
    assert planned.priced_as == "text-embedding-3-small"  # the local model is priced as OpenAI's
    assert planned.estimated_cost_usd == pytest.approx(25 * TOKENS_PER_LINE * 0.01 / 1_000_000)
    assert ledger.count_items(ItemKind.LINE) == {EmbeddingStatus.NONE: 25, EmbeddingStatus.PENDING: 0,
                                                 EmbeddingStatus.SUCCESS: 0, EmbeddingStatus.FAILED: 0,
                                                 EmbeddingStatus.DELETING: 0}
    assert ledger.list_batches() == [] and provider.engine.list_batches() == []

    real = submit(ItemKind.LINE, ledger, provider, settings=prices, max_items_per_batch=10)
    assert [(b.batch_id, b.tokens) for b in real.batches] == [(b.batch_id, b.tokens) for b in planned.batches]


def test_a_dry_run_reports_what_waits_for_budget_too(ledger, provider):
    ledger.add_items([line(n) for n in range(10)])
    report = submit(ItemKind.LINE, ledger, provider, dry_run=True, max_items_per_batch=4,
                    settings=settings(OPENAI_ENQUEUED_TOKEN_LIMIT=6 * TOKENS_PER_LINE))
    assert [b.item_count for b in report.batches] == [4, 2] and report.items_waiting_for_budget == 4
