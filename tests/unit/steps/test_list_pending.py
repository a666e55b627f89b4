from __future__ import annotations

import pytest
from steps_world import make_items, submit_batch

from embedding_ingest.steps.contracts import MANIFEST_MAX_INLINE_BATCHES, PollManifest
from embedding_ingest.steps.exceptions import StepInputError
from embedding_ingest.steps.list_pending import list_pending
from embedding_ingest.stores.records import BatchStatus, BatchSummary, BatchType, ItemKind


def test_inline_listing_takes_every_active_status_oldest_first_and_skips_closed(ctx):
    batches = [submit_batch(ctx, make_items(2), submitted_at=1000.0 + n) for n in range(6)]
    statuses = [BatchStatus.FINALIZING, BatchStatus.PENDING, BatchStatus.COMPLETED, BatchStatus.IN_PROGRESS,
                BatchStatus.FAILED, BatchStatus.CANCELING]
    for summary, status in zip(batches, statuses, strict=True):
        ctx.ledger.update_batch(summary.batch_id, status=status)
    submit_batch(ctx, make_items(2, kind=ItemKind.WORD))  # the other workflow's

    result = list_pending({"batch_type": "line", "execution_id": "exec-1"}, ctx)

    active = [b for b, s in zip(batches, statuses, strict=True)
              if s not in (BatchStatus.COMPLETED, BatchStatus.FAILED)]
    assert [b["batch_id"] for b in result["pending_batches"]] == [b.batch_id for b in active]
    assert [b["openai_batch_id"] for b in result["pending_batches"]] == [b.provider_batch_id for b in active]
    assert result["batch_indices"] == [0, 1, 2, 3]
    assert result["total_batches"] == 4
    assert result["use_s3"] is False and result["manifest_s3_key"] is None
    assert result["execution_id"] == "exec-1"


def test_claimed_but_unsubmitted_batches_are_left_to_submission(ctx):
    ctx.ledger.add_items(make_items(1, image="unsent"))
    unsent = BatchSummary(batch_id="unsent-batch", batch_type=BatchType.LINE_EMBEDDING, submitted_at=1.0,
                          item_count=1)
    ctx.ledger.claim_batch(unsent, [make_items(1, image="unsent")[0].item_id])
    sent = submit_batch(ctx, make_items(1))

    result = list_pending({"batch_type": "line", "execution_id": "exec-1"}, ctx)

    assert [b["batch_id"] for b in result["pending_batches"]] == [sent.batch_id]


def test_cap_from_event_or_settings_leaves_the_newest_for_later(ctx):
    batches = [submit_batch(ctx, make_items(1), submitted_at=10.0 + n) for n in range(5)]

    by_event = list_pending({"batch_type": "line", "execution_id": "e", "max_batches": 2}, ctx)
    ctx.settings.max_batches_per_execution = 3
    by_settings = list_pending({"batch_type": "line", "execution_id": "e2", "max_batches": None}, ctx)

    assert [b["batch_id"] for b in by_event["pending_batches"]] == [b.batch_id for b in batches[:2]]
    assert by_settings["total_batches"] == 3


def test_more_than_fifty_batches_go_to_a_manifest_that_a_rerun_rewrites_identically(ctx):
    count = MANIFEST_MAX_INLINE_BATCHES + 1
    batches = [submit_batch(ctx, make_items(1), submitted_at=100.0 + n) for n in range(count)]
    event = {"batch_type": "line", "execution_id": "exec-many"}

    result = list_pending(event, ctx)
    first_bytes = ctx.objects.get_bytes(result["manifest_s3_key"])
    again = list_pending(event, ctx)

    assert result == again
    assert ctx.objects.get_bytes(result["manifest_s3_key"]) == first_bytes
    assert result["use_s3"] is True and result["pending_batches"] is None
    assert result["manifest_s3_key"] == "poll_manifests/exec-many/manifest.json"
    assert result["manifest_s3_bucket"] == ctx.objects.location
    assert result["batch_indices"] == list(range(count))
    manifest = PollManifest.model_validate(ctx.objects.get_json(result["manifest_s3_key"]))
    expected = [(i, b.batch_id) for i, b in enumerate(batches)]
    assert [(e.index, e.batch_id) for e in manifest.batches] == expected
    assert manifest.batch_type is ItemKind.LINE and manifest.total_batches == count


def test_fifty_batches_stay_inline(ctx):
    for n in range(MANIFEST_MAX_INLINE_BATCHES):
        submit_batch(ctx, make_items(1), submitted_at=float(n))

    result = list_pending({"batch_type": "line", "execution_id": "exec-50"}, ctx)

    assert result["use_s3"] is False and len(result["pending_batches"]) == MANIFEST_MAX_INLINE_BATCHES


def test_few_batches_with_a_payload_over_150_kb_go_to_a_manifest(ctx):
    # Ten batches whose (long) provider ids together weigh more than the inline limit.
    long_ref = "x" * 16_000
    for n in range(10):
        summary = submit_batch(ctx, make_items(1), submitted_at=float(n))
        ctx.ledger.update_batch(summary.batch_id, provider_batch_id=summary.provider_batch_id + long_ref)

    result = list_pending({"batch_type": "line", "execution_id": "exec-big"}, ctx)

    assert result["total_batches"] == 10
    assert result["use_s3"] is True and result["pending_batches"] is None
    manifest = ctx.objects.get_json(result["manifest_s3_key"])
    assert all(entry["openai_batch_id"].endswith(long_ref) for entry in manifest["batches"])


@pytest.mark.parametrize("event, field", [
    ({"execution_id": "e"}, "batch_type"),
    ({"batch_type": "receipt", "execution_id": "e"}, "batch_type"),
    ({"batch_type": "line", "execution_id": None}, "execution_id"),
    ({"batch_type": "line", "execution_id": "e", "max_batches": 0}, "max_batches"),
])
def test_bad_event_names_the_field(ctx, event, field):
    with pytest.raises(StepInputError, match=field):
        list_pending(event, ctx)


def test_execution_id_cannot_escape_the_manifest_prefix(ctx):
    with pytest.raises(StepInputError, match="execution_id"):
        list_pending({"batch_type": "line", "execution_id": "../../etc"}, ctx)
