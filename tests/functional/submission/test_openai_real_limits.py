"""The issue's 'done when' cases end to end: an input of 12,002 tokens never reaches the provider as
such (yet the line is published), and 70 slow batches do not hold up 120 finished ones."""

from __future__ import annotations

import json
import math

import pytest
from fake_openai import API_KEY, running_fake_openai
from pipeline import make_workspace, receipts_file

from embedding_ingest.providers.tokens import MAX_INPUT_TOKENS, count_tokens
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, EmbeddingStatus, ItemKind
from embedding_ingest.submission.budgets import usage_by_kind

DIGITS = "1234567890" * 1_200  # 12,000 digits = 4,000 cl100k_base tokens


def three_long_rows(tmp_path):
    """One receipt whose three lines are three rows of 12,000 digits: the middle line's input with
    context is 36,002 characters = 12,002 tokens."""
    lines = [{"line_id": n, "text": DIGITS, "bbox": [10, 10 + 40 * n, 400, 30 + 40 * n]} for n in range(3)]
    words = [{"word_id": n, "line_id": n, "text": DIGITS, "bbox": [10, 10 + 40 * n, 400, 30 + 40 * n]}
             for n in range(3)]
    record = {"receipt_id": "long-digits", "width": 500, "height": 200, "lines": lines, "words": words}
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def test_a_12002_token_input_is_fitted_below_8192_before_the_provider_and_published(tmp_path):
    with running_fake_openai(tmp_path / "fake-openai", dimensions=16) as fake:
        fake.set_faults(polls_per_stage=0)
        ws = make_workspace(tmp_path, EMBEDDING_PROVIDER="openai", OPENAI_API_KEY=API_KEY,
                            OPENAI_BASE_URL=fake.base_url, EMBEDDING_MODEL="text-embedding-3-small")
        imported = ws.import_receipts(three_long_rows(tmp_path))
        assert (imported.lines_added, imported.truncated_items) == (3, 1)
        middle = next(i for i in ws.ledger.find_items(ItemKind.LINE, EmbeddingStatus.NONE) if i.line_id == 1)
        assert middle.truncated and middle.tokens == count_tokens(middle.embed_text) <= MAX_INPUT_TOKENS
        assert middle.embed_text.split("\n")[1] == DIGITS  # the context was shortened, not the line

        report = ws.submit(ItemKind.LINE)
        assert report.items_submitted == 3 and report.truncated_items == 1
        # Every request line of every file uploaded to the API, counted with the model's tokenizer.
        uploaded = [fake.engine.file_content(batch["input_file_id"]) for batch in fake.batches_created()]
        inputs = [json.loads(raw)["body"]["input"] for data in uploaded for raw in data.splitlines()]
        assert len(inputs) == 3 and max(count_tokens(text) for text in inputs) <= MAX_INPUT_TOKENS
        assert report.tokens_submitted == sum(count_tokens(text) for text in inputs)

        runs = ws.run_until_idle(ItemKind.LINE)
        assert runs[-1].status.value == "SUCCEEDED"
        assert middle.item_id in ws.published_ids(ItemKind.LINE)
        assert ws.statuses(ItemKind.LINE) == {"SUCCESS": 3}
        (lines, _words) = usage_by_kind(ws.ledger.list_batches(), ws.settings)
        # The provider's usage is what the input file held: billed == submitted, priced at the batch rate.
        assert lines.tokens_billed == lines.tokens_submitted == report.tokens_submitted
        assert lines.cost_usd == pytest.approx(report.tokens_submitted * 0.01 / 1_000_000)


@pytest.mark.slow
def test_seventy_slow_batches_do_not_hold_up_a_hundred_and_twenty_finished_ones(tmp_path):
    slow_ws = make_workspace(tmp_path, LOCAL_PROVIDER_LATENCY_SECONDS=3600)
    slow_ws.import_receipts(receipts_file(tmp_path, 4))
    slow = slow_ws.submit(ItemKind.LINE, max_items_per_batch=1, max_batches=70)
    fast_ws = make_workspace(tmp_path, LOCAL_PROVIDER_LATENCY_SECONDS=0)  # same home, latency read at submit
    fast = fast_ws.submit(ItemKind.LINE, max_items_per_batch=1, max_batches=120)
    assert (len(slow.batches), len(fast.batches)) == (70, 120)
    fast_items = {b.batch_id for b in fast.batches}

    cap = fast_ws.settings.max_batches_per_execution  # 60
    bound = math.ceil(120 / cap) + 2
    executions = 0
    while executions < bound:
        record = fast_ws.run(ItemKind.LINE)
        executions += 1
        assert record.status.value == "SUCCEEDED", record.error
        done = [fast_ws.ledger.get_batch(batch_id).status.value for batch_id in fast_items]
        if set(done) == {"COMPLETED"}:
            break
    assert set(done) == {"COMPLETED"}, f"after {executions} executions: {sorted(set(done))}"
    published = set(fast_ws.published_ids(ItemKind.LINE))
    assert len(published) == 120
    still_active = fast_ws.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES,
                                               batch_type=ItemKind.LINE.batch_type)
    assert {s.batch_id for s in still_active} == {b.batch_id for b in slow.batches}
    assert {s.listed_status for s in still_active} == {"in_progress"}
