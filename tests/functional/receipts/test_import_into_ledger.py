"""import_receipts against the real SQLite ledger: good records land, bad ones are reported, and a
second import of the same file adds nothing."""

import json

import pytest

from embedding_ingest.receipts.importer import ImportReport, import_receipts
from embedding_ingest.stores.records import BatchSummary, BatchType, EmbeddingStatus, ItemKind
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

BAD_RECORDS = [
    b'{"receipt_id": "broken-json", "width": 10',
    json.dumps({"receipt_id": "bad-box", "width": 100, "height": 100,
                "lines": [{"line_id": 0, "text": "X", "bbox": [10, 10, 500, 20]}], "words": []}).encode(),
    json.dumps({"receipt_id": "orphan-word", "width": 100, "height": 100,
                "lines": [{"line_id": 0, "text": "X", "bbox": [10, 10, 50, 20]}],
                "words": [{"word_id": 0, "line_id": 3, "text": "X", "bbox": [10, 10, 50, 20]}]}).encode(),
]


@pytest.fixture
def ledger(tmp_path):
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield ledger
    ledger.close()


def raw_texts_by_id(path, count: int) -> tuple[dict[str, str], dict[str, str]]:
    """({line id: text}, {word id: text}) of the first `count` records, straight from the JSON (ids
    spelled as the reference defines them; every SROIE record is receipt 1 of its image)."""
    lines, words = {}, {}
    for record in map(json.loads, path.read_text(encoding="utf-8").splitlines()[:count]):
        receipt = f"IMAGE#{record['receipt_id']}#RECEIPT#00001"
        lines.update({f"{receipt}#LINE#{line['line_id']:05d}": line["text"] for line in record["lines"]})
        words.update({f"{receipt}#LINE#{word['line_id']:05d}#WORD#{word['word_id']:05d}": word["text"]
                      for word in record["words"]})
    return lines, words


def test_good_records_import_and_bad_ones_are_reported(sroie_slice, ledger):
    path = sroie_slice(5, BAD_RECORDS)
    report = import_receipts(path, ledger)
    raw_lines, raw_words = raw_texts_by_id(path, 5)
    raw_lines["IMAGE#orphan-word#RECEIPT#00001#LINE#00000"] = "X"  # its line is good; its word is not

    # A broken record is rejected; a bad box or an orphan word skips only that item (issue 10).
    assert (report.records_read, report.receipts_imported, report.receipts_rejected) == (8, 7, 1)
    assert (report.lines_added, report.words_added, report.items_already_present) == (
        len(raw_lines), len(raw_words), 0)
    assert [(e.line_number, e.receipt_id, e.field) for e in report.errors] == [(6, None, "<record>")]
    assert [(s.line_number, s.receipt_id, s.field) for s in report.skipped_items] == [
        (7, "bad-box", "lines[0].bbox"), (8, "orphan-word", "words[0].line_id")]
    assert report.items_skipped == 2

    for kind, raw in ((ItemKind.LINE, raw_lines), (ItemKind.WORD, raw_words)):
        stored = ledger.find_items(kind, EmbeddingStatus.NONE)
        assert {item.item_id: item.text for item in stored} == raw, kind


def test_second_import_adds_nothing(sroie_slice, ledger):
    path = sroie_slice(60)  # more than one ledger write per import
    first = import_receipts(path, ledger)
    second = import_receipts(path, ledger)
    assert first.lines_added > 0 and first.words_added > 0 and first.items_already_present == 0
    assert (second.lines_added, second.words_added) == (0, 0)
    assert second.items_already_present == first.lines_added + first.words_added
    assert second.receipts_imported == first.receipts_imported == 60
    counts = ledger.count_items()
    assert counts[EmbeddingStatus.NONE] == first.lines_added + first.words_added


def test_reimport_leaves_items_already_in_progress_untouched(sroie_slice, ledger):
    path = sroie_slice(1)
    import_receipts(path, ledger)
    (pending,) = ledger.find_items(ItemKind.LINE, EmbeddingStatus.NONE, limit=1)
    ledger.claim_batch(BatchSummary(batch_id="b-1", batch_type=BatchType.LINE_EMBEDDING, submitted_at=1.0,
                                    item_count=1), [pending.item_id])
    import_receipts(path, ledger)
    again = ledger.get_items([pending.item_id])[pending.item_id]
    assert (again.embedding_status, again.batch_id) == (EmbeddingStatus.PENDING, "b-1")


def test_report_serialises_with_stable_keys(sroie_slice, ledger):
    report = import_receipts(sroie_slice(2, BAD_RECORDS[:1]), ledger)
    data = json.loads(report.model_dump_json())
    assert list(data) == ["source_file", "records_read", "receipts_imported", "receipts_rejected",
                          "duplicate_records", "lines_added", "words_added", "items_already_present",
                          "errors", "tokens", "truncated_items", "lines_changed", "words_changed",
                          "lines_requeued_by_neighbours", "words_requeued_by_neighbours", "lines_removed",
                          "words_removed", "receipts_deleted", "sync_deletions_refused", "items_skipped",
                          "boxes_clamped", "skipped_items", "clamped_boxes", "lines_metadata_changed",
                          "words_metadata_changed", "items_relabelled", "items_place_changed",
                          "items_section_changed"]
    assert list(data["errors"][0]) == ["line_number", "receipt_id", "field", "problem", "message"]
    assert data["errors"][0]["message"].startswith("line 3 (receipt id unreadable): <record>: not valid JSON")
    assert ImportReport.model_validate_json(report.model_dump_json()) == report
