"""Bad input: each gets a clear error naming the thing that is wrong, nothing already published is
lost, and the rest proceeds. Provider output is tampered with where the local provider keeps it,
exactly as a broken or hostile Batch API would hand it over."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pipeline import Workspace, make_workspace, receipts_file
from provider_files import read_file
from published_checks import assert_nothing_marked_early
from scenarios import submit_in_batches

from embedding_ingest.metrics import POLL_FAILURES, metrics_sink
from embedding_ingest.providers.base import ProviderBatch
from embedding_ingest.snapshots import read_version
from embedding_ingest.stores.records import BatchStatus, BatchSummary, EmbeddingStatus, ItemKind

KIND = ItemKind.LINE


def published_then_two_batches(tmp_path: Path) -> tuple[Workspace, set[str], BatchSummary, BatchSummary]:
    """Receipt 0 published; receipt 1 submitted as two batches, `bad` and `good` (their items are
    `items_of` them now; released items leave their batch)."""
    ws = make_workspace(tmp_path)
    ws.import_receipts(receipts_file(tmp_path, 1, start=0))
    submit_in_batches(ws, KIND, 1)
    assert ws.run(KIND).status.value == "SUCCEEDED"
    published = set(ws.published_ids(KIND))
    ws.import_receipts(receipts_file(tmp_path, 1, start=1))
    submit_in_batches(ws, KIND, 2)
    bad, good = ws.ledger.list_batches(statuses=[BatchStatus.PENDING], batch_type=KIND.batch_type)
    return ws, published, bad, good


def finished(ws: Workspace, summary: BatchSummary) -> ProviderBatch:
    """Let the provider finish the batch now, so its files exist to be tampered with."""
    batch = ws.ctx.provider.retrieve(summary.provider_batch_id)
    assert batch.status.value == "completed" and batch.output_file_id
    return batch


def rewrite_output(ws: Workspace, summary: BatchSummary,
                   change: Callable[[list[bytes]], list[bytes]]) -> None:
    path = ws.ctx.provider.root / "files" / finished(ws, summary).output_file_id
    lines = path.read_bytes().splitlines(keepends=True)
    path.chmod(0o644)
    path.write_bytes(b"".join(change(lines)))


def with_embedding(line: bytes, edit: Callable[[list[float]], list[float]]) -> bytes:
    """The line with its embedding edited, in the format it came in (base64 float32 or numbers)."""
    record = json.loads(line)
    data = record["response"]["body"]["data"][0]
    if isinstance(data["embedding"], str):
        values = np.frombuffer(base64.b64decode(data["embedding"]), dtype="<f4").tolist()
        data["embedding"] = base64.b64encode(np.asarray(edit(values), dtype="<f4").tobytes()).decode()
    else:
        data["embedding"] = edit(data["embedding"])
    return json.dumps(record).encode() + b"\n"  # json writes NaN as the bare token NaN


def poll_result(ws: Workspace, record, batch_id: str) -> dict:
    return next(r for r in ws.output(record)["poll_results"] if r.get("batch_id") == batch_id)


def items_of(ws: Workspace, summary: BatchSummary) -> set[str]:
    return {i.item_id for status in EmbeddingStatus
            for i in ws.ledger.find_items(KIND, status, batch_id=summary.batch_id)}


def assert_rest_proceeded(ws: Workspace, before: set[str], good: BatchSummary) -> set[str]:
    """Earlier publishes kept, the good batch published and closed; returns what is published."""
    now = set(ws.published_ids(KIND))
    assert before <= now, "something already published was lost"
    assert items_of(ws, good) <= now
    assert ws.ledger.get_batch(good.batch_id).status is BatchStatus.COMPLETED
    assert_nothing_marked_early(ws, KIND)
    return now


def released(ws: Workspace) -> dict[str, str]:
    return {i.item_id: i.last_error or "" for i in ws.ledger.find_items(KIND, EmbeddingStatus.NONE)}


def test_malformed_output_lines_release_their_items_with_the_line_named(tmp_path: Path) -> None:
    ws, before, bad, good = published_then_two_batches(tmp_path)
    asked = items_of(ws, bad)
    rewrite_output(ws, bad, lambda lines: [lines[0], b'{"custom_id": "x", broken\n', *lines[2:]])
    record = ws.run(KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    result = poll_result(ws, record, bad.batch_id)
    assert result["released_count"] == 1
    assert result["problem_count"] == 1
    assert result["first_problem"].startswith(f"batch {bad.batch_id} output line 2: malformed JSON")
    now = assert_rest_proceeded(ws, before, good)
    assert len(released(ws)) == 1 and set(released(ws)) == asked - now, "each item published or released"


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda vector: vector[:-1], "embedding has 15 dimensions, expected 16"),
    (lambda vector: [float("nan"), *vector[1:]], "non-finite values (NaN or infinity)"),
], ids=["wrong-dimension", "nan"])
def test_a_bad_embedding_is_rejected_and_its_item_released(tmp_path: Path, edit, problem: str) -> None:
    ws, before, bad, good = published_then_two_batches(tmp_path)
    asked = items_of(ws, bad)
    victim = json.loads(read_file(ws.ctx.provider, finished(ws, bad).output_file_id).splitlines()[2])
    rewrite_output(ws, bad, lambda lines: [*lines[:2], with_embedding(lines[2], edit), *lines[3:]])
    record = ws.run(KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    reason = released(ws)[victim["custom_id"]]
    assert "output line 3" in reason and victim["custom_id"] in reason and problem in reason
    now = assert_rest_proceeded(ws, before, good)
    assert asked - now == {victim["custom_id"]}
    assert ws.ledger.get_batch(bad.batch_id).status is BatchStatus.COMPLETED


def test_a_truncated_output_file_keeps_what_is_whole_and_releases_the_rest(tmp_path: Path) -> None:
    ws, before, bad, good = published_then_two_batches(tmp_path)
    asked = items_of(ws, bad)
    rewrite_output(ws, bad, lambda lines: [lines[0], lines[1][:40]])
    record = ws.run(KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    result = poll_result(ws, record, bad.batch_id)
    assert result["embedding_count"] == 1 and result["released_count"] == len(asked) - 1
    assert result["problem_count"] == 1 and "output line 2: malformed JSON" in result["first_problem"]
    now = assert_rest_proceeded(ws, before, good)
    assert len(asked & now) == 1 and set(released(ws)) == asked - now
    # Released items are not lost: the next submit and run publish them.
    ws.submit(KIND)
    assert ws.run(KIND).status.value == "SUCCEEDED"
    assert asked <= set(ws.published_ids(KIND))


def test_a_missing_output_file_releases_its_items_for_free_and_the_rest_proceeds(tmp_path: Path) -> None:
    ws, before, bad, good = published_then_two_batches(tmp_path)
    asked = items_of(ws, bad)
    file_id = finished(ws, bad).output_file_id
    for path in (ws.ctx.provider.root / "files").glob(f"{file_id}*"):
        path.unlink()
    counted = []
    with metrics_sink(lambda name, value, workflow: counted.append((name, value))):
        record = ws.run(KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    assert poll_result(ws, record, bad.batch_id)["released_count"] == len(asked)
    assert not [name for name, _ in counted if name == POLL_FAILURES]  # handled, not a poll failure
    assert_rest_proceeded(ws, before, good)
    back = ws.ledger.get_items(sorted(asked)).values()  # issue 19: a gone file is no item's fault
    assert {(i.embedding_status, i.attempts, i.provider_retries) for i in back} == {
        (EmbeddingStatus.NONE, 0, 1)}
    assert all(i.last_error.startswith("output file gone (404") for i in back)
    assert ws.ledger.get_batch(bad.batch_id).status is BatchStatus.EXPIRED


def test_a_summary_naming_an_unknown_provider_batch_is_reported_and_the_rest_proceeds(tmp_path: Path) -> None:
    ws, before, bad, good = published_then_two_batches(tmp_path)
    ws.ledger.update_batch(bad.batch_id, provider_batch_id="batch_nobodyknows")
    record = ws.run(KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    result = poll_result(ws, record, bad.batch_id)
    assert (result["action"], result["batch_status"]) == ("wait", "not_found")  # a one-off 404 only delays
    summary = ws.ledger.get_batch(bad.batch_id)
    assert "batch_nobodyknows" in (summary.last_error or ""), "the batch itself says what is wrong"
    assert len(ws.ledger.find_items(KIND, EmbeddingStatus.PENDING, batch_id=bad.batch_id)) == bad.item_count
    assert_rest_proceeded(ws, before, good)


def test_a_corrupt_published_archive_is_named_and_nothing_published_is_lost(tmp_path: Path) -> None:
    ws, before, bad, good = published_then_two_batches(tmp_path)
    current = ws.ledger.get_published(KIND.database)
    segment = read_version(ws.objects, current).segments[0]
    archive = next(i.key for i in ws.objects.list(segment.key) if i.key.endswith(".tar"))
    path = ws.settings.objects_dir / archive
    original = path.read_bytes()
    path.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1100]) + original[1100:])
    shutil.rmtree(ws.settings.cache_dir)  # a fresh host: the base must come from the object store

    record = ws.run(KIND)
    assert record.status.value == "FAILED"
    assert archive in (record.cause or ""), f"the error does not name the corrupt object: {record.cause}"
    assert ws.ledger.get_published(KIND.database) == current, "the pointer moved to a broken base"
    waiting = {i.item_id for i in ws.ledger.find_items(KIND, EmbeddingStatus.PENDING)}
    submitted = items_of(ws, bad) | items_of(ws, good)
    assert waiting == submitted, "the new items are neither marked nor lost"

    path.write_bytes(original)  # the archive restored (from a backup, or a replica)
    assert ws.run(KIND).status.value == "SUCCEEDED"
    assert set(ws.published_ids(KIND)) == before | submitted
    assert ws.statuses(KIND) == {"SUCCESS": len(before | submitted)}


def test_receipts_with_bad_geometry_or_duplicate_ids_are_refused_by_name_and_the_rest_imported(
        tmp_path: Path) -> None:
    good, bent, other = (json.loads(line) for line in
                         receipts_file(tmp_path, 3, start=10).read_text().splitlines())
    bent["lines"][2]["bbox"] = [10, 10, bent["width"] + 50, 20]  # right edge far outside the image
    twin = json.loads(json.dumps(good))
    twin["lines"][0]["text"] += " (edited)"  # the same receipt_id again, with other content
    other["lines"][1]["line_id"] = other["lines"][0]["line_id"]  # a line id used twice
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, bent, twin, other)) + "\n")

    ws = make_workspace(tmp_path)
    report = ws.import_receipts(path)
    # The bent box costs only its line (issue 10); conflicting and duplicate ids reject the record.
    assert (report.records_read, report.receipts_imported, report.receipts_rejected) == (4, 2, 2)
    messages = "\n".join(str(error) for error in report.errors)
    (skipped,) = report.skipped_items
    assert str(skipped).startswith(f"line 2 (receipt {bent['receipt_id']!r}): lines[2].bbox")
    assert "outside the" in skipped.problem
    assert f"line 3 (receipt {good['receipt_id']!r}): receipt_id" in messages
    assert "already read at line 1 with different content" in messages
    assert f"line 4 (receipt {other['receipt_id']!r}): lines[1].line_id: duplicate line_id" in messages
    expected = len(good["lines"]) + len(bent["lines"]) - 1  # the good receipt (first version) + bent's rest
    assert len(ws.item_ids(KIND)) == expected

    ws.submit(KIND)
    assert ws.run(KIND).status.value == "SUCCEEDED"
    assert len(set(ws.published_ids(KIND))) == expected
