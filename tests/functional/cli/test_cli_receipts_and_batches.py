"""receipts import, submit, batches list/reset and status, through the real command line."""

from __future__ import annotations

import json
from collections import Counter

from pipeline import SROIE_RECEIPTS, receipts_file

from embedding_ingest.stores.records import EmbeddingStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

EXIT_SOME_REJECTED = 3


def item_counts(cli) -> dict[str, dict[str, int]]:
    """`status`, without the statuses no item is in."""
    return {kind: {s: n for s, n in by.items() if n} for kind, by in cli.json("status")["items"].items()}


def test_import_reports_the_bad_record_by_line_receipt_and_field_and_keeps_the_good_ones(cli, tmp_path):
    records = SROIE_RECEIPTS.read_text(encoding="utf-8").splitlines()[:3]
    broken = json.loads(records[1])
    broken["lines"][2]["line_id"] = broken["lines"][0]["line_id"]  # a record-level fault
    source = tmp_path / "receipts.jsonl"
    source.write_text("\n".join([records[0], json.dumps(broken), records[2]]) + "\n", encoding="utf-8")

    first = cli.json("receipts", "import", str(source), code=EXIT_SOME_REJECTED)

    assert (first["records_read"], first["receipts_imported"], first["receipts_rejected"]) == (3, 2, 1)
    assert [(e["line_number"], e["receipt_id"], e["field"]) for e in first["errors"]] == [
        (2, "sroie-001", "lines[2].line_id")]
    assert "duplicate line_id" in first["errors"][0]["problem"]
    good_lines = sum(len(json.loads(r)["lines"]) for r in (records[0], records[2]))
    good_words = sum(len(json.loads(r)["words"]) for r in (records[0], records[2]))
    assert (first["lines_added"], first["words_added"]) == (good_lines, good_words)
    assert item_counts(cli) == {"line": {"NONE": good_lines}, "word": {"NONE": good_words}}

    again = cli.json("receipts", "import", str(source), code=EXIT_SOME_REJECTED)

    assert (again["lines_added"], again["words_added"]) == (0, 0)
    assert again["items_already_present"] == good_lines + good_words
    assert item_counts(cli) == {"line": {"NONE": good_lines}, "word": {"NONE": good_words}}


def test_submit_puts_every_line_and_word_in_exactly_one_listed_batch(cli, tmp_path):
    imported = cli.json("receipts", "import", str(receipts_file(tmp_path, 20)))
    expected = {ItemKind.LINE: imported["lines_added"], ItemKind.WORD: imported["words_added"]}

    submitted = {kind: cli.json("submit", kind.value, "--max-items-per-batch", "300") for kind in ItemKind}
    listed = cli.json("batches", "list")["batches"]

    assert {kind: s["items_submitted"] for kind, s in submitted.items()} == expected
    ledger = SqliteLedger(cli.home / "ledger.sqlite3")
    try:
        for kind in ItemKind:
            batches = {b["batch_id"]: b for b in listed if b["batch_type"] == kind.batch_type.value}
            assert set(batches) == {b["batch_id"] for b in submitted[kind]["batches"]}
            assert all(b["status"] == "PENDING" and b["provider_batch_id"] for b in batches.values())
            # Each item belongs to one batch (its batch_id) and each batch counts exactly its items.
            owners = Counter(i.batch_id for i in ledger.find_items(kind, EmbeddingStatus.PENDING))
            assert owners == Counter({batch_id: b["item_count"] for batch_id, b in batches.items()})
            assert sum(owners.values()) == expected[kind]
    finally:
        ledger.close()
    assert item_counts(cli) == {"line": {"PENDING": expected[ItemKind.LINE]},
                                           "word": {"PENDING": expected[ItemKind.WORD]}}
    assert cli.json("submit", "line")["items_submitted"] == 0  # nothing left to submit


def test_batches_reset_sets_the_status_of_chosen_batches_and_list_filters_by_it(cli, tmp_path):
    cli.json("receipts", "import", str(receipts_file(tmp_path, 2)))
    cli.json("submit", "line", "--max-items-per-batch", "40")
    batch_ids = [b["batch_id"] for b in cli.json("batches", "list", "--type", "line")["batches"]]
    assert len(batch_ids) >= 3

    reset = cli.json("batches", "reset", "--status", "FAILED", "--ids", batch_ids[0], "--ids", batch_ids[1])

    assert {key: reset[key] for key in ("status", "batch_ids", "count")} == {
        "status": "FAILED", "batch_ids": batch_ids[:2], "count": 2}
    # closed by hand: cancelled at the provider and their items back to NONE for the next submit (issue 19)
    assert reset["items_released"] == 80 and all(b["cancelled_at_provider"] for b in reset["batches"])
    failed = cli.json("batches", "list", "--status", "FAILED")
    assert (failed["count"], [b["batch_id"] for b in failed["batches"]]) == (2, batch_ids[:2])

    back = cli.json("batches", "reset", "--status", "PENDING", "--from-status", "FAILED")

    assert sorted(back["batch_ids"]) == sorted(batch_ids[:2])
    assert cli.json("batches", "list", "--status", "PENDING")["count"] == len(batch_ids)
