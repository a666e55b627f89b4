from __future__ import annotations

import logging

import pytest
from steps_world import (
    DIMENSIONS,
    dump,
    make_items,
    poll_batch,
    rewrite_output_file,
    snapshot_records,
    submit_batch,
)

from embedding_ingest.snapshots import read_manifest
from embedding_ingest.snapshots.revisions import revision_of
from embedding_ingest.steps.exceptions import OffloadedIndexError, StepInputError
from embedding_ingest.steps.poll import poll
from embedding_ingest.stores.records import BatchStatus, EmbeddingStatus, ItemKind


def statuses(ctx, items):
    found = ctx.ledger.get_items([i.item_id for i in items])
    return {item_id: (item.embedding_status, item.last_error) for item_id, item in found.items()}


def test_completed_batch_becomes_one_delta_and_items_stay_pending(ctx, tmp_path):
    items = make_items(5)
    summary = submit_batch(ctx, items)

    result = poll_batch(ctx, summary)

    prefix = f"lines/delta/lines/receipt_lines/{summary.batch_id}/"
    assert result == {
        "batch_id": summary.batch_id, "openai_batch_id": summary.provider_batch_id,
        "batch_status": "completed", "action": "process_results", "results_count": 5,
        "delta_id": summary.batch_id, "delta_key": prefix, "embedding_count": 5, "released_count": 0,
        "storage": "s3_delta", "collection": "lines", "database": "lines", "problem_count": 0,
        "first_problem": None}
    records = snapshot_records(ctx, prefix, tmp_path)
    assert set(records) == {i.item_id for i in items}
    vector, metadata, document = records[items[2].item_id]
    assert document == items[2].text
    # The revision orders this record against other copies of its id (newer submission wins).
    assert metadata == {**items[2].metadata, "model": ctx.provider.model,
                        "revision": revision_of(summary.submitted_at, summary.batch_id),
                        "metadata_version": items[2].metadata_version}  # issue 23
    assert vector == pytest.approx(ctx.provider.embed([items[2].embed_text])[0], abs=1e-6)
    # Not SUCCESS before publish (lesson 7), not COMPLETED before publish either.
    assert {s for s, _ in statuses(ctx, items).values()} == {EmbeddingStatus.PENDING}
    after = ctx.ledger.get_batch(summary.batch_id)
    assert after.status is BatchStatus.FINALIZING and after.provider_status == "completed"


def test_polling_a_completed_batch_twice_gives_the_same_delta(ctx):
    summary = submit_batch(ctx, make_items(4))

    first = poll_batch(ctx, summary)
    manifest = read_manifest(ctx.objects, first["delta_key"])
    second = poll_batch(ctx, summary)

    assert second == first
    assert read_manifest(ctx.objects, first["delta_key"]) == manifest


@pytest.mark.parametrize("polls_per_stage, retrieves_before, expected", [
    (2, 0, ("validating", BatchStatus.VALIDATING)),
    (1, 0, ("in_progress", BatchStatus.IN_PROGRESS)),
    (1, 1, ("finalizing", BatchStatus.FINALIZING)),
])
def test_batches_still_at_the_provider_wait(ctx, polls_per_stage, retrieves_before, expected):
    items = make_items(3)
    summary = submit_batch(ctx, items, metadata={"local_polls_per_stage": str(polls_per_stage)})
    for _ in range(retrieves_before):
        ctx.provider.retrieve(summary.provider_batch_id)

    result = poll_batch(ctx, summary)

    assert (result["action"], result["batch_status"]) == ("wait", expected[0])
    assert result["delta_key"] is None
    after = ctx.ledger.get_batch(summary.batch_id)
    assert (after.status, after.provider_status) == (expected[1], expected[0])
    assert {s for s, _ in statuses(ctx, items).values()} == {EmbeddingStatus.PENDING}


def test_a_batch_cancelled_before_anything_ran_releases_everything_without_spending(ctx):
    items = make_items(4)
    summary = submit_batch(ctx, items, metadata={"local_polls_per_stage": "2"})
    ctx.provider.cancel(summary.provider_batch_id)  # still validating: nothing will run

    waiting = poll_batch(ctx, summary)
    assert (waiting["action"], waiting["batch_status"]) == ("wait", "cancelling")
    assert ctx.ledger.get_batch(summary.batch_id).status is BatchStatus.CANCELING

    done = poll_batch(ctx, summary)

    assert (done["action"], done["batch_status"], done["released_count"]) == (
        "nothing_to_ingest", "cancelled", 4)
    assert ctx.ledger.get_batch(summary.batch_id).status is BatchStatus.CANCELLED
    released = ctx.ledger.get_items([i.item_id for i in items]).values()
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in released} == {
        (EmbeddingStatus.NONE, 0, 1)}
    assert {i.last_error for i in released} == {"batch cancelled before this request ran"}


def test_failed_batch_releases_every_item_with_the_reason(ctx):
    items = make_items(3)
    summary = submit_batch(ctx, items, metadata={"local_outcome": "failed"})

    result = poll_batch(ctx, summary)

    assert (result["action"], result["batch_status"]) == ("batch_failed", "failed")
    assert result["released_count"] == 3
    after = ctx.ledger.get_batch(summary.batch_id)
    assert after.status is BatchStatus.FAILED and "failed" in after.last_error
    for status, reason in statuses(ctx, items).values():
        assert status is EmbeddingStatus.NONE and "provider batch failed" in reason


def test_expired_batch_keeps_what_ran_and_releases_the_rest(ctx, tmp_path):
    items = make_items(6)
    summary = submit_batch(ctx, items, metadata={"local_outcome": "expired"})

    result = poll_batch(ctx, summary)

    assert result["action"] == "process_results" and result["batch_status"] == "expired"
    assert result["embedding_count"] == 3 and result["released_count"] == 3
    kept = set(snapshot_records(ctx, result["delta_key"], tmp_path))
    after = statuses(ctx, items)
    assert {i for i, (s, _) in after.items() if s is EmbeddingStatus.PENDING} == kept
    assert all("expired" in r for s, r in after.values() if s is EmbeddingStatus.NONE)
    assert ctx.ledger.get_batch(summary.batch_id).status is BatchStatus.FINALIZING


def test_requests_in_the_error_file_are_released_and_the_rest_ingested(ctx, tmp_path):
    items = make_items(5)
    failing = [items[1].item_id, items[3].item_id]
    summary = submit_batch(ctx, items, metadata={"local_fail_custom_ids": ",".join(failing)})

    result = poll_batch(ctx, summary)

    assert result["embedding_count"] == 3 and result["released_count"] == 2
    ingested = set(snapshot_records(ctx, result["delta_key"], tmp_path))
    assert ingested == {i.item_id for i in items} - set(failing)
    after = statuses(ctx, items)
    for item_id in failing:
        assert after[item_id][0] is EmbeddingStatus.NONE and after[item_id][1].startswith("error file:")


def test_bad_output_lines_are_rejected_by_line_number_and_the_rest_ingested(ctx, tmp_path, caplog):
    items = make_items(6)
    summary = submit_batch(ctx, items, encoding_format="float")
    ctx.provider.retrieve(summary.provider_batch_id)  # let it finish, then damage its output file
    by_id = {}

    def damage(lines):
        by_id.update({line["custom_id"]: n for n, line in enumerate(lines, start=1)})
        out = [dump(line) for line in lines]
        out[by_id[items[0].item_id] - 1] = b'{"custom_id": "' + items[0].item_id.encode() + b'", "respo'
        wrong_dim = lines[by_id[items[1].item_id] - 1]
        wrong_dim["response"]["body"]["data"][0]["embedding"] = [0.5] * (DIMENSIONS + 1)
        out[by_id[items[1].item_id] - 1] = dump(wrong_dim)
        nan = lines[by_id[items[2].item_id] - 1]
        nan["response"]["body"]["data"][0]["embedding"][0] = float("nan")  # json writes it as NaN
        out[by_id[items[2].item_id] - 1] = dump(nan)
        stranger = dict(lines[by_id[items[3].item_id] - 1], custom_id="IMAGE#nobody#RECEIPT#00001#LINE#00001")
        return [*out, dump(stranger)]

    rewrite_output_file(ctx, summary, damage)

    with caplog.at_level(logging.WARNING, logger="embedding_ingest.steps"):
        result = poll_batch(ctx, summary)

    assert result["results_count"] == 7
    assert result["embedding_count"] == 3 and result["released_count"] == 3
    assert set(snapshot_records(ctx, result["delta_key"], tmp_path)) == {i.item_id for i in items[3:]}
    # The result stays small (it travels in state data): a count and the first problem; the log has all.
    assert result["problem_count"] == 4
    assert result["first_problem"].startswith(f"batch {summary.batch_id} output line ")
    problems = [r.problem for r in caplog.records if r.getMessage() == "rejected output line"]
    assert len(problems) == 4
    assert all(p.startswith(f"batch {summary.batch_id} output line ") for p in problems)
    assert any(f"line {by_id[items[0].item_id]}: malformed JSON" in p for p in problems)
    assert any(f"line {by_id[items[1].item_id]}:" in p and f"expected {DIMENSIONS}" in p for p in problems)
    assert any(f"line {by_id[items[2].item_id]}:" in p and "NaN" in p for p in problems)
    assert any("line 7: unknown custom_id 'IMAGE#nobody" in p for p in problems)
    after = statuses(ctx, items)
    assert after[items[1].item_id][0] is EmbeddingStatus.NONE
    assert f"output line {by_id[items[1].item_id]}" in after[items[1].item_id][1]
    assert after[items[2].item_id][0] is EmbeddingStatus.NONE
    # A line too broken to name its item still releases that item: it is missing from the output.
    assert after[items[0].item_id] == (EmbeddingStatus.NONE, "missing from the output file")
    assert after[items[3].item_id][0] is EmbeddingStatus.PENDING


def test_nothing_left_to_ingest_closes_the_batch_at_once(ctx):
    items = make_items(2)
    summary = submit_batch(ctx, items, metadata={"local_fail_custom_ids": ",".join(i.item_id for i in items)})

    result = poll_batch(ctx, summary)
    again = poll_batch(ctx, summary)

    assert result["action"] == "nothing_to_ingest" and result["delta_key"] is None
    assert result["released_count"] == 2
    assert ctx.ledger.get_batch(summary.batch_id).status is BatchStatus.COMPLETED
    assert again["action"] == "nothing_to_ingest"  # closed: a rerun changes nothing


def test_an_unknown_provider_batch_waits_and_records_the_404(ctx):
    summary = submit_batch(ctx, make_items(1))
    ctx.ledger.update_batch(summary.batch_id, provider_batch_id="batch_doesnotexist")

    result = poll({"batch_id": summary.batch_id, "openai_batch_id": "batch_doesnotexist"}, ctx)

    assert (result["action"], result["batch_status"]) == ("wait", "not_found")
    after = ctx.ledger.get_batch(summary.batch_id)
    assert "answers 404 for batch batch_doesnotexist (1 of 3 polls" in after.last_error
    assert after.status is BatchStatus.PENDING and after.not_found_polls == 1


def test_batch_is_found_inline_or_through_the_manifest(ctx):
    from embedding_ingest.steps.list_pending import list_pending

    batches = [submit_batch(ctx, make_items(1), submitted_at=float(n)) for n in range(52)]
    listed = list_pending({"batch_type": "line", "execution_id": "exec-m"}, ctx)
    via_manifest = poll({"batch_index": 51, "manifest_s3_key": listed["manifest_s3_key"],
                         "manifest_s3_bucket": listed["manifest_s3_bucket"], "pending_batches": None}, ctx)
    inline = poll({"batch_index": 1, "manifest_s3_key": None, "manifest_s3_bucket": None,
                   "pending_batches": [{"batch_id": b.batch_id, "openai_batch_id": b.provider_batch_id}
                                       for b in batches[:2]]}, ctx)

    assert via_manifest["batch_id"] == batches[51].batch_id
    assert inline["batch_id"] == batches[1].batch_id
    with pytest.raises(OffloadedIndexError, match="holds 52 entries; index 52"):
        poll({"batch_index": 52, "manifest_s3_key": listed["manifest_s3_key"]}, ctx)


def test_event_must_name_a_batch_that_matches_the_ledger(ctx):
    summary = submit_batch(ctx, make_items(1))
    with pytest.raises(StepInputError, match="batch_index is required"):
        poll({"pending_batches": [], "batch_index": None}, ctx)
    with pytest.raises(StepInputError, match="was submitted as provider batch"):
        poll({"batch_id": summary.batch_id, "openai_batch_id": "batch_other"}, ctx)


def test_word_batches_land_in_the_words_delta(ctx, tmp_path):
    items = make_items(3, kind=ItemKind.WORD)
    summary = submit_batch(ctx, items)

    result = poll_batch(ctx, summary)

    assert result["delta_key"] == f"words/delta/words/receipt_words/{summary.batch_id}/"
    assert (result["collection"], result["database"]) == ("words", "words")
    assert set(snapshot_records(ctx, result["delta_key"], tmp_path, "words")) == {i.item_id for i in items}
