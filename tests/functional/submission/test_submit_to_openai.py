"""Submission against the OpenAI Batch API (real SDK, the fake server over HTTP): a batch the provider
refuses is closed with its reason and does not block the batches after it."""

from __future__ import annotations

import pytest
from fake_openai import running_fake_openai
from tenacity import wait_none

from embedding_ingest.providers.openai_batch import OpenAIBatchProvider
from embedding_ingest.stores.records import BatchStatus, EmbeddingItem, EmbeddingStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger
from embedding_ingest.submission.submit import submit


def line(n: int) -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMAGE#img#RECEIPT#00001#LINE#{n:05d}", kind=ItemKind.LINE, image_id="img",
                         receipt_number=1, line_id=n, text=f"line {n}",
                         embed_text=f"<EDGE>\nline {n}\n<EDGE>")


@pytest.fixture
def fake(tmp_path):
    with running_fake_openai(tmp_path / "fake-openai") as server:
        yield server


@pytest.fixture
def provider(fake):
    client = fake.client()
    yield OpenAIBatchProvider(client, model="text-embedding-3-small", dimensions=16, max_attempts=2,
                              wait=wait_none())
    client.close()


def test_a_refused_batch_is_closed_with_its_reason_and_the_next_ones_go_through(tmp_path, fake, provider):
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    ledger.add_items([line(n) for n in range(6)])
    fake.fail_next(1, status=400, method="POST", path="/v1/files")  # the first upload is rejected

    report = submit(ItemKind.LINE, ledger, provider, max_items_per_batch=3)

    assert len(report.refused) == 1 and report.refused[0].item_count == 3
    assert "400" in report.refused[0].reason or "refused" in report.refused[0].reason
    refused = ledger.get_batch(report.refused[0].batch_id)
    assert refused.status is BatchStatus.FAILED and refused.provider_batch_id is None
    # The refused items went back to NONE with the reason and were sent again in a new batch (attempt 2).
    assert sum(b.item_count for b in report.batches) == 6
    pending = {i.item_id: i for i in ledger.find_items(ItemKind.LINE, EmbeddingStatus.PENDING)}
    assert len(pending) == 6
    retried = [i for i in pending.values() if i.attempts == 1]
    assert len(retried) == 3 and all("refused" in (i.last_error or "") for i in retried)
    assert len(fake.batches_created()) == len(report.batches) == 2
