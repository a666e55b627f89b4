"""Issue 23 end to end on real receipts: a metadata-only correction (the merchant, a label, a section)
re-imported reaches the next published version through a metadata batch, with no provider request and
no token; vectors and documents stay as they were; importing the same file again changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline import make_workspace, receipts_file

from embedding_ingest.snapshots import iter_published_pages, read_version
from embedding_ingest.stores.records import BatchOperation, BatchStatus, ItemKind
from embedding_ingest.submission.budgets import usage_by_kind

pytestmark = pytest.mark.slow


def published(ws, kind: ItemKind) -> dict[str, tuple[str, np.ndarray, dict]]:
    """id -> (document, vector, metadata) of the current version."""
    version = ws.ledger.get_published(kind.database)
    return {item_id: (document, vector, metadata)
            for page in iter_published_pages(ws.objects, version, ws.settings)
            for item_id, document, vector, metadata in zip(page.ids, page.documents, page.embeddings,
                                                           page.metadatas, strict=True)}


def provider_batches(ws) -> int:
    """Batches the provider was ever asked to embed (its own record of requests)."""
    return len(ws.ctx.provider.engine.list_batches())


def billed_tokens(ws) -> list:
    """What `embedding-ingest status` shows as batches, tokens submitted and billed, and cost."""
    return usage_by_kind(ws.ledger.list_batches(), ws.settings)


def run_all(ws) -> None:
    for kind in ItemKind:
        records = ws.run_until_idle(kind)
        assert records[-1].status.value == "SUCCEEDED", records[-1].cause


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_merchant_correction_and_a_relabel_are_published_without_re_embedding(tmp_path):
    original = receipts_file(tmp_path, 2)
    records = [json.loads(line) for line in original.read_text().splitlines()]
    ws = make_workspace(tmp_path / "ws")
    ws.import_receipts(original)
    for kind in ItemKind:
        ws.submit(kind, max_items_per_batch=1000)
    run_all(ws)
    before = {kind: published(ws, kind) for kind in ItemKind}
    asked, billed = provider_batches(ws), billed_tokens(ws)

    # The new user: only fields.company corrected (both receipts), plus one word labelled and
    # one line given a section.
    for record in records:
        record["fields"]["company"] = "CORRECTED " + record["receipt_id"]
    total_word = records[0]["words"][-1]
    total_word["labels"] = [{"label": "GRAND_TOTAL", "status": "validated", "proposed_by": "llm"}]
    records[0]["lines"][0]["section"] = "header"
    corrected = write(tmp_path / "corrected.jsonl", records)
    report = ws.import_receipts(corrected)

    items = sum(len(r["lines"]) + len(r["words"]) for r in records)
    assert (report.lines_changed, report.words_changed, report.items_already_present) == (0, 0, items)
    assert report.lines_metadata_changed + report.words_metadata_changed == items
    assert report.items_place_changed == items
    # the word, and its line (whose valid_labels are its words' validated labels)
    assert (report.items_relabelled, report.items_section_changed) == (2, 1)
    metadata_batches = [b for kind in ItemKind for b in ws.ledger.list_batches(batch_type=kind.batch_type)
                        if b.operation is BatchOperation.METADATA]
    assert {b.status for b in metadata_batches} == {BatchStatus.PENDING}
    assert sum(b.item_count for b in metadata_batches) == items

    run_all(ws)

    assert provider_batches(ws) == asked, "a metadata-only change must not reach the provider"
    assert billed_tokens(ws) == billed, "status must show no new tokens billed"
    for kind in ItemKind:
        after = published(ws, kind)
        assert set(after) == set(before[kind])
        for item_id, (document, vector, metadata) in after.items():
            old_document, old_vector, old_metadata = before[kind][item_id]
            assert document == old_document
            np.testing.assert_array_equal(vector, old_vector)
            receipt_id = metadata["image_id"]
            assert metadata["merchant_name"] == f"CORRECTED {receipt_id}", item_id
            assert metadata["revision"] == old_metadata["revision"]  # the same embedding
            assert metadata["metadata_version"] > old_metadata["metadata_version"]
        version = read_version(ws.objects, ws.ledger.get_published(kind.database))
        assert version.metadata_updated == len(after)
        batches = ws.ledger.list_batches(batch_type=kind.batch_type)
        assert {b.status for b in batches} == {BatchStatus.COMPLETED}
        assert ws.statuses(kind) == {"SUCCESS": len(after)}
    words = published(ws, ItemKind.WORD)
    word_id = next(i for i, (_, _, m) in words.items()
                   if m["image_id"] == records[0]["receipt_id"] and m["word_id"] == total_word["word_id"])
    labelled = words[word_id][2]
    assert (labelled["label_status"], labelled["label_GRAND_TOTAL"], labelled["valid_labels"]) == (
        "validated", True, ["GRAND_TOTAL"])
    lines = published(ws, ItemKind.LINE)
    where = (records[0]["receipt_id"], total_word["line_id"])
    line_of_total = next(m for _, _, m in lines.values() if (m["image_id"], m["line_id"]) == where)
    assert line_of_total["valid_labels"] == ["GRAND_TOTAL"]

    # Idempotent: the same file again changes nothing and queues nothing.
    versions = {kind: ws.ledger.get_published(kind.database).version for kind in ItemKind}
    again = ws.import_receipts(corrected)
    assert again.lines_metadata_changed + again.words_metadata_changed == 0
    run_all(ws)
    assert {kind: ws.ledger.get_published(kind.database).version for kind in ItemKind} == versions

    # A label taken away: its keys leave the published record (Chroma's update merges, so they are
    # cleared explicitly), and the line's valid_labels with it.
    del total_word["labels"]
    total_word["labels"] = [{"label": "GRAND_TOTAL", "status": "pending"}]
    ws.import_receipts(write(tmp_path / "unlabelled.jsonl", records))
    run_all(ws)
    relabelled = published(ws, ItemKind.WORD)[word_id][2]
    assert relabelled["label_status"] == "pending"
    assert "label_GRAND_TOTAL" not in relabelled and "valid_labels" not in relabelled
    line_now = published(ws, ItemKind.LINE)
    assert not any("valid_labels" in m for _, _, m in line_now.values())
    assert provider_batches(ws) == asked


def test_on_s3_and_dynamodb_a_merchant_correction_is_published_by_the_next_execution(tmp_path, moto_endpoint):
    """The same flow on the production adapters (S3ObjectStore, DynamoLedger on moto's server): the
    metadata batch is found through DynamoDB's sparse index and published by the next execution."""
    from moto_server import unique_name

    from embedding_ingest.stores.dynamo_schema import ensure_table

    bucket, table = unique_name("meta"), unique_name("meta")
    moto_endpoint.client("s3").create_bucket(Bucket=bucket)
    ensure_table(moto_endpoint.client("dynamodb"), table)
    ws = make_workspace(tmp_path, CHROMADB_BUCKET=bucket, DYNAMODB_TABLE_NAME=table,
                        AWS_ENDPOINT_URL=moto_endpoint.url)
    source = receipts_file(tmp_path, 1, start=161)  # a small real receipt
    ws.import_receipts(source)
    ws.submit(ItemKind.LINE, max_items_per_batch=1000)
    assert ws.run_until_idle(ItemKind.LINE)[-1].status.value == "SUCCEEDED"
    asked = provider_batches(ws)
    (record,) = [json.loads(line) for line in source.read_text().splitlines()]
    record["fields"]["company"] = "CORRECTED ON AWS"
    report = ws.import_receipts(write(tmp_path / "corrected.jsonl", [record]))
    assert report.lines_metadata_changed == len(record["lines"])

    assert ws.run_until_idle(ItemKind.LINE)[-1].status.value == "SUCCEEDED"
    lines = published(ws, ItemKind.LINE)
    assert {m["merchant_name"] for _, _, m in lines.values()} == {"CORRECTED ON AWS"}
    assert provider_batches(ws) == asked
    assert {b.status for b in ws.ledger.list_batches(batch_type=ItemKind.LINE.batch_type)} == {
        BatchStatus.COMPLETED}
    ws.ledger.close()
