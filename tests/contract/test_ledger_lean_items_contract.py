"""Issue 19's lean read, the same in every ledger adapter: PollBatches reads only what ingesting a
batch needs of each item (LeanItem), and gets exactly the items and values find_items gives."""

from __future__ import annotations

from test_ledger_contract import line, summary

from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import EmbeddingStatus, ItemKind, LeanItem

BOTH = (EmbeddingStatus.PENDING, EmbeddingStatus.SUCCESS)


def test_a_batch_reads_back_lean_with_the_values_find_items_gives(ledger: Ledger) -> None:
    labelled = {"merchant": "Shop", "valid_labels": ["DATE", "TOTAL"], "n": 0, "ok": True}
    first = line(0).model_copy(update={"metadata": labelled, "metadata_version": 3})
    ledger.add_items([first, line(1), line(2), line(3), line(4)])
    ledger.claim_batch(summary("b1", 4), [line(n).item_id for n in (0, 1, 2, 3)])
    ledger.claim_batch(summary("b2", 1), [line(4).item_id])  # another batch: not read
    ledger.mark_items_succeeded("b1", [line(1).item_id])
    ledger.release_items("b1", {line(2).item_id: "bad input"})  # NONE again: not in the batch

    lean = ledger.find_lean_items(ItemKind.LINE, "b1", BOTH)

    assert lean == [
        LeanItem(line(0).item_id, EmbeddingStatus.PENDING, "line 0", labelled, 3),
        LeanItem(line(1).item_id, EmbeddingStatus.SUCCESS, "line 1", line(1).metadata, 0),
        LeanItem(line(3).item_id, EmbeddingStatus.PENDING, "line 3", line(3).metadata, 0)]
    full = sorted((item for status in BOTH
                   for item in ledger.find_items(ItemKind.LINE, status, batch_id="b1")),
                  key=lambda item: item.item_id)
    assert lean == [LeanItem(i.item_id, i.embedding_status, i.text, i.metadata, i.metadata_version)
                    for i in full]
    assert [i.item_id for i in ledger.find_lean_items(ItemKind.LINE, "b1", [EmbeddingStatus.SUCCESS])] == [
        line(1).item_id]
    assert ledger.find_lean_items(ItemKind.WORD, "b1", BOTH) == []  # another kind
    assert ledger.find_lean_items(ItemKind.LINE, "b1", []) == []
    assert ledger.find_lean_items(ItemKind.LINE, "nope", BOTH) == []
