"""Issue 10 end to end on real receipts (tests/data): a corrected file re-imported with --sync pays only
for what changed, and the published snapshot ends up equal to a fresh ingestion of the corrected file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline import make_workspace, receipts_file
from provider_files import read_file

from embedding_ingest.receipts.importer import build_items, read_receipts
from embedding_ingest.snapshots import iter_published_pages
from embedding_ingest.stores.records import BatchOperation, BatchStatus, EmbeddingStatus, ItemKind

pytestmark = pytest.mark.slow


def published(ws, kind: ItemKind) -> dict[str, tuple[str, np.ndarray]]:
    """id -> (document, vector) of the current version; fails if an id is in two segments."""
    version = ws.ledger.get_published(kind.database)
    records = {}
    for page in iter_published_pages(ws.objects, version, ws.settings):
        for item_id, document, vector in zip(page.ids, page.documents, page.embeddings, strict=True):
            assert item_id not in records, f"{item_id} published twice"
            records[item_id] = (document, vector)
    return records


def provider_requests(ws) -> dict[str, list[str]]:
    """provider batch id -> custom_ids it was asked to embed."""
    provider = ws.ctx.provider
    return {b["id"]: [json.loads(line)["custom_id"]
                      for line in read_file(provider, b["input_file_id"]).decode().splitlines() if line]
            for b in provider.engine.list_batches()}


def ingest(ws, path, *, sync: bool = False):
    report = ws.import_receipts(path, sync=sync)
    for kind in ItemKind:
        ws.submit(kind, max_items_per_batch=400)
        records = ws.run_until_idle(kind)
        assert records[-1].status.value == "SUCCEEDED", records[-1].cause
    return report


def hashes(path, model: str) -> dict[str, str]:
    return {item.item_id: item.content_hash for receipt in read_receipts(path).receipts
            for item in build_items(receipt, model)}


def test_a_corrected_file_synced_equals_a_fresh_ingestion_and_only_changes_are_paid_for(tmp_path):
    original = receipts_file(tmp_path, 6)
    records = [json.loads(line) for line in original.read_text().splitlines()]
    for record in records[:5]:  # 5 lines corrected, one per receipt
        record["lines"][3]["text"] = record["lines"][3]["text"] + " (corrected)"
    removed = records.pop()  # and the last receipt is gone from the source
    corrected = tmp_path / "corrected.jsonl"
    corrected.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    ws = make_workspace(tmp_path / "synced")
    ingest(ws, original)
    asked_before = provider_requests(ws)
    report = ingest(ws, corrected, sync=True)

    # What the provider saw the second time: exactly the items whose embedded text changed.
    model = ws.ctx.provider.model
    old, new = hashes(original, model), hashes(corrected, model)
    changed = {i for i, h in new.items() if old.get(i) != h}
    asked_after = [cid for batch, ids in provider_requests(ws).items() if batch not in asked_before
                   for cid in ids]
    assert sorted(asked_after) == sorted(changed)
    assert report.lines_changed + report.words_changed == len(changed)
    assert report.lines_changed > 5, "neighbouring rows of a corrected line are re-embedded too"
    assert report.lines_requeued_by_neighbours == report.lines_changed - 5
    assert report.receipts_deleted == [f"{removed['receipt_id']}#1"]
    vanished = len(removed["lines"]) + len(removed["words"])
    assert report.lines_removed + report.words_removed == vanished

    fresh = make_workspace(tmp_path / "fresh")
    ingest(fresh, corrected)
    for kind in ItemKind:
        mine, theirs = published(ws, kind), published(fresh, kind)
        assert set(mine) == set(theirs), kind
        for item_id, (document, vector) in theirs.items():
            assert mine[item_id][0] == document, item_id
            np.testing.assert_allclose(mine[item_id][1], vector, atol=1e-6, err_msg=item_id)
        # the ledger followed: every item SUCCESS, the deleted ones forgotten, every batch closed
        assert ws.statuses(kind) == {"SUCCESS": len(theirs)}
        assert not ws.item_ids(kind) - set(theirs)
        batches = ws.ledger.list_batches(batch_type=kind.batch_type)
        assert {b.status for b in batches} == {BatchStatus.COMPLETED}
        assert any(b.operation is BatchOperation.DELETE for b in batches)


def test_a_corrected_ocr_line_replaces_the_published_text(tmp_path):
    """Input 4 of the issue: "T0TAL 12.00" published, then fixed to "TOTAL 12.00"."""
    def receipt(text):
        return {"receipt_id": "fix-1", "width": 100, "height": 100,
                "lines": [{"line_id": 0, "text": text, "bbox": [0, 0, 80, 10]}], "words": []}
    first, fixed = tmp_path / "first.jsonl", tmp_path / "fixed.jsonl"
    first.write_text(json.dumps(receipt("T0TAL 12.00")) + "\n")
    fixed.write_text(json.dumps(receipt("TOTAL 12.00")) + "\n")
    ws = make_workspace(tmp_path)
    ingest(ws, first)
    (item_id,) = published(ws, ItemKind.LINE)

    report = ws.import_receipts(fixed)

    assert (report.items_already_present, report.lines_changed) == (0, 1)
    assert ws.ledger.get_items([item_id])[item_id].embedding_status is EmbeddingStatus.NONE
    ingest(ws, fixed)
    assert published(ws, ItemKind.LINE)[item_id][0] == "TOTAL 12.00"
    assert ws.statuses(ItemKind.LINE) == {"SUCCESS": 1}
