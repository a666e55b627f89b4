"""Every Ledger syncs receipts the same way (issue 10): new, changed, unchanged and vanished items;
the receipts it holds; deletion batches; and an import that fails after any of its writes leaves only
whole receipts, which rerunning completes. Runs against SQLite and DynamoDB (moto's server)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from pipeline import receipts_file

from embedding_ingest.receipts.ids import MAX_IMAGE_ID_BYTES
from embedding_ingest.receipts.importer import import_receipts
from embedding_ingest.stores import dynamo_receipts
from embedding_ingest.stores.records import (
    BatchOperation,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
)
from embedding_ingest.submission.deletions import queue_deletions


def item(n: int, text: str, *, receipt: int = 1, image: str = "img-1") -> EmbeddingItem:
    return EmbeddingItem(item_id=f"IMAGE#{image}#RECEIPT#{receipt:05d}#LINE#{n:05d}", kind=ItemKind.LINE,
                         image_id=image, receipt_number=receipt, line_id=n, text=text, embed_text=text,
                         metadata={"text": text}, content_hash=f"hash-of-{text}")


def by_status(ledger) -> dict[str, set[str]]:
    found = defaultdict(set)
    for status in EmbeddingStatus:
        for i in ledger.find_items(ItemKind.LINE, status):
            found[status.value].add(i.item_id)
    return dict(found)


def test_sync_adds_requeues_keeps_and_marks_vanished_items(ledger):
    (first,) = ledger.sync_receipts([("img-1", 1, [item(0, "A"), item(1, "B"), item(2, "C")])])
    assert (len(first.added), first.changed, first.unchanged, first.removed) == (3, [], 0, [])
    ids = [item(n, "").item_id for n in range(4)]
    ledger.mark_items_succeeded("nothing", ids)  # no-op: nothing is PENDING

    (second,) = ledger.sync_receipts([("img-1", 1, [item(0, "A"), item(1, "B2"), item(3, "D")])])

    assert (second.added, second.changed, second.unchanged, second.removed) == (
        [ids[3]], [ids[1]], 1, [ids[2]])
    assert by_status(ledger) == {"NONE": {ids[0], ids[1], ids[3]}, "DELETING": {ids[2]}}
    assert ledger.get_items([ids[1]])[ids[1]].text == "B2"
    assert ledger.receipt_keys() == [("img-1", 1)] == ledger.receipt_keys("img-1")
    (again,) = ledger.sync_receipts([("img-1", 1, [item(0, "A"), item(1, "B2"), item(3, "D")])])
    assert (again.added, again.changed, again.unchanged, again.removed) == ([], [], 3, [])

    (gone,) = ledger.sync_receipts([("img-1", 1, [])])  # the receipt deleted
    assert len(gone.removed) == 3 and ledger.receipt_keys() == []
    (back,) = ledger.sync_receipts([("img-1", 1, [item(2, "C")])])  # one item comes back
    assert back.added == [ids[2]] and ledger.receipt_keys() == [("img-1", 1)]


def test_deletion_batches_hold_the_vanished_items_until_forgotten(ledger):
    ledger.sync_receipts([("img-1", 1, [item(0, "A"), item(1, "B")])])
    ledger.sync_receipts([("img-1", 1, [item(0, "A")])])

    (summary,) = queue_deletions(ItemKind.LINE, ledger)
    assert queue_deletions(ItemKind.LINE, ledger) == [], "nothing left to queue"

    gone = item(1, "B").item_id
    assert (summary.operation, summary.item_count) == (BatchOperation.DELETE, 1)
    assert summary.provider_batch_id == f"deletion:{summary.batch_id}"
    held = ledger.find_items(ItemKind.LINE, EmbeddingStatus.DELETING, batch_id=summary.batch_id)
    assert [i.item_id for i in held] == [gone]
    assert ledger.forget_deleted(summary.batch_id, [gone]) == 1
    assert ledger.forget_deleted(summary.batch_id, [gone]) == 0
    assert ledger.get_items([gone]) == {}


class InjectedFailure(Exception):
    """The failure injected into an import's N-th write."""


def fail_at_write(ledger, monkeypatch, n: int) -> list[int]:
    """Make the adapter's n-th import write raise; returns the running write count."""
    count = [0]

    def counted(original):
        def wrapper(*args, **kwargs):
            count[0] += 1
            if count[0] == n:
                raise InjectedFailure(f"write {n}")
            return original(*args, **kwargs)
        return wrapper

    if hasattr(ledger, "_transact"):  # DynamoDB: each transaction and each marker update is a write
        monkeypatch.setattr(ledger, "_transact", counted(ledger._transact))
        monkeypatch.setattr(ledger, "_call", _only_updates(counted, ledger._call))
    else:  # SQLite: each receipt's statements, inside the import's one transaction
        monkeypatch.setattr(ledger, "_sync_one", counted(ledger._sync_one))
    return count


def _only_updates(counted, call):
    counting = counted(call)
    return lambda operation, **kwargs: (counting if operation == "update_item" else call)(operation, **kwargs)


def receipt_items(ledger) -> dict[tuple[str, int], int]:
    found = defaultdict(int)
    for kind in ItemKind:
        for i in ledger.find_items(kind, EmbeddingStatus.NONE):
            found[(i.image_id, i.receipt_number)] += 1
    return dict(found)


def small_receipts_file(tmp_path, count: int = 2, lines: int = 4):
    """`count` receipts of `lines` lines with one word each."""
    rows = []
    for r in range(count):
        rows.append({"receipt_id": f"small-{r}", "width": 100, "height": 100,
                     "lines": [{"line_id": i, "text": f"LINE {i}", "bbox": [0, 10 * i, 50, 10 * i + 8]}
                               for i in range(lines)],
                     "words": [{"word_id": i, "line_id": i, "text": f"W{i}",
                                "bbox": [0, 10 * i, 20, 10 * i + 8]} for i in range(lines)]})
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_an_import_failing_after_any_write_leaves_whole_receipts_and_a_rerun_completes_it(
        ledger, tmp_path, monkeypatch):
    # DynamoDB: receipts of 8 items, written 3 operations per transaction, take the marker path (a
    # receipt too big for one transaction), as a real receipt of ~170 items does with the real limits.
    monkeypatch.setattr(dynamo_receipts, "ONE_TRANSACTION_LIMIT", 4)
    monkeypatch.setattr(dynamo_receipts, "TRANSACTION_LIMIT", 3)
    path = small_receipts_file(tmp_path)
    with monkeypatch.context() as patch:
        writes = fail_at_write(ledger, patch, 0)  # n=0: count only
        import_receipts(path, ledger, model="m")
    whole, total = receipt_items(ledger), writes[0]
    assert whole == {("small-0", 1): 8, ("small-1", 1): 8} and total >= 2
    for n in range(1, total + 1):
        _empty(ledger, whole)
        with monkeypatch.context() as patch:
            fail_at_write(ledger, patch, n)
            with pytest.raises(InjectedFailure):
                import_receipts(path, ledger, model="m")
        seen = receipt_items(ledger)
        assert all(seen[key] == whole[key] for key in seen), f"half a receipt after failing write {n}"
        import_receipts(path, ledger, model="m")
        assert receipt_items(ledger) == whole, f"rerun after failing write {n} did not complete the import"


def _empty(ledger, receipts) -> None:
    """Delete the receipts and forget their items (through deletion batches, as the workflow does)."""
    ledger.sync_receipts([(*key, []) for key in receipts])
    for kind in ItemKind:
        for summary in queue_deletions(kind, ledger):
            ids = [i.item_id for i in ledger.find_items(kind, EmbeddingStatus.DELETING,
                                                         batch_id=summary.batch_id)]
            ledger.forget_deleted(summary.batch_id, ids)
    assert receipt_items(ledger) == {}


def _receipt(receipt_id: str) -> str:
    return json.dumps({"receipt_id": receipt_id, "width": 100, "height": 100,
                       "lines": [{"line_id": 0, "text": "TOTAL 9.99", "bbox": [1, 1, 60, 9]}],
                       "words": [{"word_id": 0, "line_id": 0, "text": "TOTAL", "bbox": [1, 1, 30, 9]}]},
                      ensure_ascii=False)


def test_a_receipt_id_longer_than_the_ledgers_keys_is_rejected_alone_and_the_rest_imports(ledger, tmp_path):
    """A word's id is a DynamoDB sort key (1,024 bytes at most): its receipt_id may have 982 bytes of
    UTF-8. One byte more, or 400 CJK characters (1,200 bytes), rejects that record with one line naming
    the limit, on SQLite as on DynamoDB, and every other receipt of the file is imported."""
    longest = "r" * MAX_IMAGE_ID_BYTES
    path = receipts_file(tmp_path, 2)
    with path.open("a", encoding="utf-8") as out:
        ids = ["x" * (MAX_IMAGE_ID_BYTES + 1), "収" * 400, longest, "after-the-long-ones"]
        out.write("\n".join(_receipt(receipt_id) for receipt_id in ids) + "\n")

    report = import_receipts(path, ledger)

    assert (report.records_read, report.receipts_imported, report.receipts_rejected) == (6, 4, 2)
    assert [(e.line_number, e.field) for e in report.errors] == [(3, "receipt_id"), (4, "receipt_id")]
    for error, size in zip(report.errors, ("983", "1,200"), strict=True):
        assert "\n" not in error.message and len(error.message) < 250, error.message
        assert f"must be at most 982 bytes in UTF-8, got {size} bytes" in error.message
        assert "DynamoDB sort keys hold at most 1,024" in error.message
    imported = {i.image_id for kind in ItemKind for i in ledger.find_items(kind, EmbeddingStatus.NONE)}
    assert {longest, "after-the-long-ones"} < imported and len(imported) == 4
    words = [i.item_id for i in ledger.find_items(ItemKind.WORD, EmbeddingStatus.NONE)
             if i.image_id == longest]
    assert [len(word_id.encode()) for word_id in words] == [1024]  # the longest key the ledger holds


def test_metadata_only_changes_are_versioned_found_and_claimed_once(ledger):
    """Issue 23 on every ledger: a changed metadata hash with unchanged content raises the item's
    metadata_version and leaves it pending; queueing puts only published (SUCCESS) items in a metadata
    batch, marks them queued (a rerun queues nothing more), and a newer change made meanwhile stays
    pending for a later batch."""
    from embedding_ingest.submission.metadata_updates import queue_metadata_updates

    def labelled(n: int, merchant: str) -> EmbeddingItem:
        plain = item(n, f"T{n}")
        return plain.model_copy(update={"metadata": {**plain.metadata, "merchant_name": merchant},
                                        "metadata_hash": None})

    ledger.sync_receipts([("img-1", 1, [labelled(0, "A"), labelled(1, "A")])])
    ids = [item(n, "").item_id for n in range(2)]
    assert [i.metadata_version for i in ledger.receipt_items("img-1", 1)] == [1, 1]
    assert ledger.find_metadata_pending(ItemKind.LINE) == []  # new items carry theirs when embedded
    _succeed(ledger, ids)  # published, as MarkBatchesComplete leaves them

    (change,) = ledger.sync_receipts([("img-1", 1, [labelled(0, "B"), labelled(1, "A")])])
    assert (change.metadata_changed, change.unchanged, change.place_changed) == ([ids[0]], 2, 1)
    pending = ledger.find_metadata_pending(ItemKind.LINE)
    assert [(i.item_id, i.metadata_version, i.metadata["merchant_name"]) for i in pending] == [
        (ids[0], 2, "B")]

    (batch,) = queue_metadata_updates(ItemKind.LINE, ledger)
    assert (batch.operation, batch.metadata_items, batch.item_count) == (BatchOperation.METADATA,
                                                                         [f"{ids[0]}@2"], 1)
    assert ledger.find_metadata_pending(ItemKind.LINE) == []
    assert queue_metadata_updates(ItemKind.LINE, ledger) == []
    ledger.sync_receipts([("img-1", 1, [labelled(0, "C"), labelled(1, "A")])])
    ledger.claim_metadata(batch, [(ids[0], 2)])  # a rerun of the old claim: the newer change stays pending
    still = ledger.find_metadata_pending(ItemKind.LINE)
    assert [(i.item_id, i.metadata_version) for i in still] == [(ids[0], 3)]
    assert ledger.get_items([ids[0]])[ids[0]].embedding_status is EmbeddingStatus.SUCCESS


def _succeed(ledger, ids: list[str]) -> None:
    """Claim `ids` into an embedding batch and mark them published, as a real run would."""
    from embedding_ingest.stores.records import BatchSummary, BatchType

    summary = BatchSummary(batch_id="embed-1", batch_type=BatchType.LINE_EMBEDDING, submitted_at=1.0,
                           item_count=len(ids))
    ledger.claim_batch(summary, ids)
    assert ledger.mark_items_succeeded("embed-1", ids) == len(ids)
