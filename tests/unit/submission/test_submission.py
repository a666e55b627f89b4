"""Submission: packing under the Batch API limits, deterministic batches, resume after a crash."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.providers.local import LocalBatchProvider
from embedding_ingest.stores.records import (
    BatchStatus,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)
from embedding_ingest.stores.sqlite_ledger import SqliteLedger
from embedding_ingest.submission.submit import batch_id_for, pack_requests, submit


def line(n: int, text: str = "TOTAL 9.00") -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMAGE#img#RECEIPT#00001#LINE#{n:05d}", kind=ItemKind.LINE, image_id="img",
                         receipt_number=1, line_id=n, text=text, embed_text=f"<EDGE>\n{text}\n<EDGE>")


@pytest.fixture
def ledger(tmp_path):
    return SqliteLedger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def provider(tmp_path):
    return LocalBatchProvider(tmp_path / "provider", dimensions=8)


def test_packing_stops_at_the_item_limit_and_at_the_byte_limit():
    items = [line(n) for n in range(10)]
    packed = pack_requests(items, "m", max_items=4)
    assert [i.line_id for i in packed.items] == [0, 1, 2, 3] and packed.jsonl.count(b"\n") == 4

    one_line = len(pack_requests(items[:1], "m", max_items=1).jsonl)
    packed = pack_requests(items, "m", max_items=10, max_bytes=3 * one_line + 5)
    assert len(packed.items) == 3 and len(packed.jsonl) <= 3 * one_line + 5


def test_the_batch_api_request_limit_caps_any_requested_size():
    items = [line(n, "X").model_copy(update={"tokens": 5}) for n in range(50_001)]
    packed = pack_requests(items, "m", max_items=10_000_000)
    assert len(packed.items) == 50_000 and packed.jsonl.count(b"\n") == 50_000  # the Batch API's per-file cap


def test_a_request_larger_than_a_whole_batch_file_is_named():
    with pytest.raises(InvalidInputError, match=r"LINE#00007.*exceeds"):
        pack_requests([line(7, "x" * 500)], "m", max_items=1, max_bytes=100)


def test_batch_ids_are_derived_from_content_and_attempts():
    items = [line(1), line(2)]
    assert batch_id_for(ItemKind.LINE, items) == batch_id_for(ItemKind.LINE, list(reversed(items)))
    retried = [items[0].model_copy(update={"attempts": 1}), items[1]]
    assert batch_id_for(ItemKind.LINE, retried) != batch_id_for(ItemKind.LINE, items)
    assert batch_id_for(ItemKind.WORD, items) != batch_id_for(ItemKind.LINE, items)


def test_submit_covers_every_item_exactly_once_and_a_rerun_adds_nothing(ledger, provider):
    ledger.add_items([line(n) for n in range(25)])
    report = submit(ItemKind.LINE, ledger, provider, max_items_per_batch=10)
    assert [b.item_count for b in report.batches] == [10, 10, 5]
    claimed = [i.item_id for b in report.batches
               for i in ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id=b.batch_id)]
    assert sorted(claimed) == sorted(line(n).item_id for n in range(25))
    for sent in report.batches:
        summary = ledger.get_batch(sent.batch_id)
        assert summary.status is BatchStatus.PENDING and summary.provider_batch_id == sent.provider_batch_id
    assert submit(ItemKind.LINE, ledger, provider, max_items_per_batch=10).batches == []


def test_a_claim_left_by_a_crashed_submit_is_sent_once_on_the_next_run(ledger, provider):
    items = [line(n) for n in range(4)]
    ledger.add_items(items)
    stored = [ledger.get_items([i.item_id])[i.item_id] for i in items]
    batch_id = batch_id_for(ItemKind.LINE, stored)
    ledger.claim_batch(BatchSummary(batch_id=batch_id, batch_type=ItemKind.LINE.batch_type,
                                    submitted_at=time.time(), item_count=4), [i.item_id for i in items])
    # The crash happened here: claimed, never handed to the provider.
    report = submit(ItemKind.LINE, ledger, provider)
    assert [(b.batch_id, b.resumed, b.item_count) for b in report.batches] == [(batch_id, True, 4)]
    assert ledger.get_batch(batch_id).provider_batch_id == report.batches[0].provider_batch_id
    again = submit(ItemKind.LINE, ledger, provider)
    assert again.batches == []


def test_concurrent_submits_never_put_an_item_in_two_batches(ledger, provider):
    ledger.add_items([line(n) for n in range(60)])
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(submit, ItemKind.LINE, ledger, provider, max_items_per_batch=size)
                   for size in (7, 11, 13)]
        # .result re-raises a submitter's exception here instead of losing it in its thread.
        reports = [future.result(timeout=120) for future in futures]
    # A submitter may resume a batch another one claimed and is still sending; the provider must
    # then hand back the same provider batch, not a second one.
    sent_as: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for sent in (sent for report in reports for sent in report.batches):
        sent_as.setdefault(sent.batch_id, set()).add(sent.provider_batch_id)
        counts[sent.batch_id] = sent.item_count
    assert all(len(provider_ids) == 1 for provider_ids in sent_as.values()), sent_as
    assert sum(counts.values()) == 60
    owner: dict[str, str] = {}
    for summary in ledger.list_batches():
        for item in ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING, batch_id=summary.batch_id):
            assert owner.setdefault(item.item_id, summary.batch_id) == summary.batch_id
    assert len(owner) == 60
    assert ledger.count_items(ItemKind.LINE)[EmbeddingStatus.NONE] == 0
