"""Figure `metadata_update_ratio` (issue 23): `changes` label changes onto a published snapshot of `base`
records, from `labels apply` to the new version published (one real workflow execution on the local
engine: ListPending, PollBatches of the metadata batches, chunks, FinalMerge's copy-on-write rewrite,
MarkBatchesComplete), divided by stock Chroma's `collection.update(ids=..., metadatas=...)` of the
same changes on a collection holding the same records (a copy of the published segment, client
already open). Tokens billed for it: 0 (no provider batch is created; checked)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings

import query
from common import Figure, make_workspace, random_pages, stopwatch
from embedding_ingest.living_keys import metadata_hash
from embedding_ingest.receipts.ids import line_item_id
from embedding_ingest.snapshots import RecordPage, read_version
from embedding_ingest.snapshots.archive import materialize
from embedding_ingest.stores.records import EmbeddingItem, EmbeddingStatus, ItemKind
from embedding_ingest.submission.labels import apply_labels

DATABASE = "lines"
LINES_PER_RECEIPT = 100
LABEL = {"label": "GRAND_TOTAL", "status": "validated", "proposed_by": "bench"}
CHANGED = {"label_status": "validated", "label_GRAND_TOTAL": True, "valid_labels": ["GRAND_TOTAL"],
           "label_proposed_by": "bench"}


def _receipt_line(index: int) -> tuple[str, int]:
    return f"bench-{index // LINES_PER_RECEIPT:05d}", index % LINES_PER_RECEIPT


def _pages(count: int, dimensions: int) -> Iterator[RecordPage]:
    """random_pages' vectors under receipt line ids, each record at metadata version 1."""
    offset = 0
    for page in random_pages(count, dimensions, prefix="base"):
        ids = [line_item_id(receipt, 1, line)
               for receipt, line in (_receipt_line(offset + row) for row in range(len(page)))]
        metadatas = [{**m, "metadata_version": 1, "revision": "0000000001.000000#bench"}
                     for m in page.metadatas]
        offset += len(page)
        yield RecordPage(ids=ids, embeddings=page.embeddings, metadatas=metadatas, documents=page.documents)


def _publish_base(ws, count: int, dimensions: int) -> None:
    query.publish(ws, "intermediate/bench-metadata-base/merged/", _pages(count, dimensions), dimensions)
    items = []
    for index in range(count):
        receipt, line = _receipt_line(index)
        metadata = {"image_id": receipt, "receipt_id": 1, "line_id": line}
        items.append(EmbeddingItem(
            item_id=line_item_id(receipt, 1, line), kind=ItemKind.LINE, image_id=receipt, receipt_number=1,
            line_id=line, text=f"line {index}", embed_text=f"line {index}", metadata=metadata,
            embedding_status=EmbeddingStatus.SUCCESS, content_hash=f"bench-{index}",
            metadata_hash=metadata_hash(metadata), metadata_version=1, metadata_queued=1))
    ws.ledger.add_items(items)


def _stock_update(ws, work: Path, ids: list[str]) -> float:
    """Stock Chroma on a copy of the published segment: update the same ids' metadata."""
    version = read_version(ws.objects, ws.ledger.get_published(DATABASE))
    (segment,) = version.segments
    target = work / "stock"
    materialize(ws.objects, segment.key, target)
    client = chromadb.PersistentClient(str(target), settings=ChromaSettings(anonymized_telemetry=False))
    try:
        collection = client.get_collection(DATABASE)
        step = client.get_max_batch_size()
        with stopwatch() as elapsed:
            for start in range(0, len(ids), step):
                chunk = ids[start:start + step]
                collection.update(ids=chunk, metadatas=[dict(CHANGED, metadata_version=2)] * len(chunk))
        check = collection.get(ids=ids[:1], include=["metadatas"])["metadatas"][0]
        assert check["label_GRAND_TOTAL"] is True, check
    finally:
        client.close()
    return elapsed[0]


def run(work: Path, *, base: int, changes: int, dimensions: int) -> list[Figure]:
    ws = make_workspace(work / "ws", dimensions=dimensions)
    with stopwatch() as build:
        _publish_base(ws, base, dimensions)
    picked = sorted(random.Random(23).sample(range(base), changes))
    labels = work / "labels.jsonl"
    with labels.open("w", encoding="utf-8") as out:
        for index in picked:
            receipt, line = _receipt_line(index)
            out.write(json.dumps({"receipt_id": receipt, "line_id": line, "labels": [LABEL]}) + "\n")
    asked = len(ws.ctx.provider.engine.list_batches())
    with stopwatch() as ours:
        with stopwatch() as applying:
            report = apply_labels(labels, ws.ledger)
        record = ws.run(ItemKind.LINE)
    if record.status.value != "SUCCEEDED" or report.lines_relabelled != changes:
        raise RuntimeError(f"labels apply: {report.lines_relabelled} relabelled, run {record.status.value}")
    published = read_version(ws.objects, ws.ledger.get_published(DATABASE))
    if published.metadata_updated != changes or len(ws.ctx.provider.engine.list_batches()) != asked:
        raise RuntimeError(f"published {published.metadata_updated} metadata updates, expected {changes}")
    ids = [line_item_id(_receipt_line(i)[0], 1, _receipt_line(i)[1]) for i in picked]
    stock = _stock_update(ws, work, ids)
    return [Figure("metadata_update_ratio", ours[0] / stock, "x", target=1.5, baseline=stock,
                   detail=f"{changes:,} label changes onto {base:,} x {dimensions}-d: labels apply + run "
                          f"{ours[0]:.2f}s (apply {applying[0]:.2f}s) vs stock update {stock:.2f}s; "
                          f"0 tokens (base built in {build[0]:.0f}s)",
                   extra={"metadata_update_seconds": ours[0], "metadata_update_apply_seconds": applying[0],
                          "metadata_update_stock_seconds": stock, "metadata_update_tokens": 0,
                          "metadata_update_base": base, "metadata_update_changes": changes})]
