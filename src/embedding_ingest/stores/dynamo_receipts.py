"""DynamoDB's receipt-level operations (issue 10): incremental sync of a receipt that lands whole,
the receipts the table holds, and the life of deleted items.

Atomicity per receipt. A receipt whose changes fit one TransactWriteItems (at most 100 operations,
the DynamoDB limit: docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html)
is written in that one transaction. A bigger one (a first import of a real receipt is ~170 items)
uses a *receipt marker* written last, which readers honour:
1. the marker item (PK=IMAGE#{image}, SK=RECEIPT#{n:05d}#IMPORT) records `pending` = the import's
   sequence number (committed + 1, or the pending one of an import that crashed: a rerun resumes it);
2. every item written by the import carries `import_seq` = that number, in transactions of
   TRANSACTION_LIMIT;
3. the marker is updated to `committed` = that number (the last write).
Readers (get_items, find_items) drop items whose import_seq is above their receipt's committed
number, so a crash at any point leaves the previous state of the receipt's unwritten items and hides
its written ones: no half-imported receipt is ever submitted. Rerunning the import completes it.
count_items counts from the status index and does not consult markers (it may include hidden items
of a crashed import until the rerun). receipt_keys without an image id scans the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.dynamo_base import (
    TRANSACTION_LIMIT,
    Attributes,
    DynamoBase,
    chunked,
    record_from,
)
from embedding_ingest.stores.dynamo_items import IMPORT_SEQ, item_attributes, marker_key, summary_attributes
from embedding_ingest.stores.dynamo_schema import (
    batch_items_partition,
    embedding_status_partition,
    item_key,
    metadata_pending_partition,
)
from embedding_ingest.stores.exceptions import StoreUnavailableError
from embedding_ingest.stores.receipt_sync import ReceiptChanges, SyncPlan, plan_receipt_sync
from embedding_ingest.stores.records import (
    BatchOperation,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
    MetadataValue,
)
from embedding_ingest.stores.relabel import MetadataRow, ReceiptLabels, Relabelled, plan_relabel, relabelled

ONE_TRANSACTION_LIMIT = 100  # DynamoDB's TransactWriteItems maximum (see module doc)
RELABEL_TRIES = 3  # a relabel whose items changed under it reads again, at most this often
# What relabel reads of an item (MetadataRow), and what _visible needs; names through placeholders
_RELABEL_FIELDS = ("item_id", "line_id", "word_id", "embedding_status", "metadata", "metadata_hash",
                   "metadata_version", "metadata_queued", "image_id", "receipt_number", IMPORT_SEQ)


def _metadata_row(raw: Attributes) -> MetadataRow:
    def number(name: str) -> int:
        return int(raw[name]["N"]) if name in raw else 0

    return MetadataRow(raw["item_id"]["S"], number("line_id"),
                       int(raw["word_id"]["N"]) if "word_id" in raw else None,
                       EmbeddingStatus(raw["embedding_status"]["S"]),
                       json.loads(raw["metadata"]["S"]) if "metadata" in raw else {},
                       raw["metadata_hash"]["S"] if "metadata_hash" in raw else None,
                       number("metadata_version"), number("metadata_queued"))


def _relabel_operation(before: MetadataRow, after: MetadataRow) -> dict[str, Any]:
    """One item's new metadata, if the item still exists, its version is still the one read and it is
    not being deleted (the metadata-pending index entry set or cleared as item_attributes would).
    `attribute_exists(PK)`: an Update on a missing item would create it (a version-0 item forgotten
    since it was read passes the version test), leaving a partial item that fails every read."""
    pending = after.metadata_pending
    seen = "#v = :was" if before.metadata_version else "(attribute_not_exists(#v) OR #v = :was)"
    return {"Update": {
        "Key": item_key(after.item_id),
        "UpdateExpression": "SET #m = :m, metadata_hash = :h, #v = :v, metadata_queued = :q"
                            + (", GSI1PK = :g1, GSI1SK = :id" if pending else " REMOVE GSI1PK, GSI1SK"),
        "ConditionExpression": f"attribute_exists(PK) AND embedding_status <> :deleting AND {seen}",
        "ExpressionAttributeNames": {"#m": "metadata", "#v": "metadata_version"},
        "ExpressionAttributeValues": {
            ":m": {"S": json.dumps(after.metadata, sort_keys=True, separators=(",", ":"))},
            ":h": {"S": after.metadata_hash or ""}, ":v": {"N": str(after.metadata_version)},
            ":q": {"N": str(after.metadata_queued)}, ":was": {"N": str(before.metadata_version)},
            ":deleting": {"S": EmbeddingStatus.DELETING.value},
            **({":g1": {"S": metadata_pending_partition(after.kind)}, ":id": {"S": after.item_id}}
               if pending else {})}}}


class DynamoReceipts(DynamoBase):
    # -- sync ---------------------------------------------------------------------------------------
    def sync_receipts(self, receipts: Sequence[tuple[str, int, Sequence[EmbeddingItem]]]
                      ) -> list[ReceiptChanges]:
        return [self._sync_one(image_id, number, items) for image_id, number, items in receipts]

    def _receipt_raws(self, image_id: str, number: int) -> list[Attributes]:
        return list(self._query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)", ConsistentRead=True,
            ExpressionAttributeValues={":pk": {"S": f"IMAGE#{image_id}"},
                                       ":sk": {"S": f"RECEIPT#{number:05d}#LINE#"}}))

    def _sync_one(self, image_id: str, number: int, items: Sequence[EmbeddingItem]) -> ReceiptChanges:
        for item in items:
            if (item.image_id, item.receipt_number) != (image_id, number):
                raise InvalidInputError(f"item {item.item_id!r} is not of receipt {image_id!r} #{number}")
        existing = {i.item_id: i for i in (record_from(EmbeddingItem, raw)
                                           for raw in self._receipt_raws(image_id, number))}
        marker = self._get(marker_key(image_id, number)) or {}
        committed = int(marker.get("committed", {"N": "0"})["N"])
        pending = int(marker["pending"]["N"]) if "pending" in marker else None
        plan = plan_receipt_sync(image_id, number, existing, items)
        assert plan.changes is not None
        if pending is None and plan.writes == 0:
            return plan.changes
        if pending is None and plan.writes <= ONE_TRANSACTION_LIMIT:
            reasons = self._transact(self._operations(plan, existing, seq=None))
            if reasons is not None:
                raise InvalidInputError(f"receipt {image_id!r} #{number}: import refused: {reasons}")
            return plan.changes
        seq = pending if pending is not None else committed + 1
        self._call("update_item", Key=marker_key(image_id, number), UpdateExpression="SET pending = :s",
                   ExpressionAttributeValues={":s": {"N": str(seq)}})
        for group in chunked(self._operations(plan, existing, seq=seq), TRANSACTION_LIMIT):
            reasons = self._transact(list(group))
            if reasons is not None:
                raise InvalidInputError(f"receipt {image_id!r} #{number}: import refused: {reasons}")
        self._call("update_item", Key=marker_key(image_id, number),
                   UpdateExpression="SET committed = :s REMOVE pending",
                   ExpressionAttributeValues={":s": {"N": str(seq)}})
        return plan.changes

    def _operations(self, plan: SyncPlan, existing: dict[str, EmbeddingItem], *, seq: int | None
                    ) -> list[dict[str, Any]]:
        stamp = {} if seq is None else {IMPORT_SEQ: {"N": str(seq)}}
        operations: list[dict[str, Any]] = [{"Put": {"Item": {**item_attributes(item), **stamp}}}
                                            for item in plan.insert + plan.overwrite]
        for item_id in plan.remove:
            kind = existing[item_id].kind
            operations.append({"Update": {
                "Key": item_key(item_id),
                "UpdateExpression": "SET embedding_status = :d, GSI2PK = :g2"
                                    + (", import_seq = :seq" if seq is not None else "")
                                    + " REMOVE batch_id, GSI3PK, GSI3SK",
                "ExpressionAttributeValues": {
                    ":d": {"S": EmbeddingStatus.DELETING.value},
                    ":g2": {"S": embedding_status_partition(kind, EmbeddingStatus.DELETING)},
                    **({":seq": {"N": str(seq)}} if seq is not None else {})}}})
        return operations

    # -- relabel (issue 23: labels apply) -----------------------------------------------------------
    def relabel(self, receipts: Sequence[ReceiptLabels]) -> list[Relabelled]:
        """Ledger.relabel (ports.py), one receipt after another, each as _relabel_one says; raises
        StoreUnavailableError for a receipt whose items kept changing under it."""
        return [self._relabel_one(image_id, number, labels) for image_id, number, labels in receipts]

    def _relabel_one(self, image_id: str, number: int,
                     labels: Mapping[str, Mapping[str, MetadataValue]]) -> Relabelled:
        """One read of the receipt (only MetadataRow's attributes), then its changed items in one
        transaction, each conditional on the metadata version read (more than ONE_TRANSACTION_LIMIT:
        several, and a crash between them is completed by the rerun). An item changed meanwhile (an
        import of the same receipt) or gone (forgotten after its deletion was published) cancels the
        write: read again and plan again (a gone item is then reported in `unknown`)."""
        names = {f"#f{n}": name for n, name in enumerate(_RELABEL_FIELDS)}
        written: list[tuple[MetadataRow, MetadataRow]] = []
        for _ in range(RELABEL_TRIES):
            raws = self._query(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)", ConsistentRead=True,
                ProjectionExpression=", ".join(names), ExpressionAttributeNames=names,
                ExpressionAttributeValues={":pk": {"S": f"IMAGE#{image_id}"},
                                           ":sk": {"S": f"RECEIPT#{number:05d}#LINE#"}})
            plan = plan_relabel([_metadata_row(raw) for raw in self._visible(list(raws))], labels)
            for group in chunked(plan.updates, ONE_TRANSACTION_LIMIT):
                if self._transact([_relabel_operation(*pair) for pair in group]) is not None:
                    break
                written += group
            else:
                return relabelled(image_id, number, plan, written)
        raise StoreUnavailableError(f"receipt {image_id!r} #{number}: its items kept changing while being "
                                    f"relabelled ({RELABEL_TRIES} tries); run again")

    def receipt_keys(self, image_id: str | None = None) -> list[tuple[str, int]]:
        if image_id is not None:
            raws = self._query(KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
                               ExpressionAttributeValues={":pk": {"S": f"IMAGE#{image_id}"},
                                                          ":sk": {"S": "RECEIPT#"}})
        else:
            raws = self._scan(FilterExpression="begins_with(PK, :pk)",
                              ExpressionAttributeValues={":pk": {"S": "IMAGE#"}})
        keys = set()
        for raw in self._visible([r for r in raws if "#LINE#" in r["SK"]["S"]]):
            if raw.get("embedding_status", {}).get("S") != EmbeddingStatus.DELETING.value:
                keys.add((raw["image_id"]["S"], int(raw["receipt_number"]["N"])))
        return sorted(keys)

    # -- metadata batches (issue 23) -----------------------------------------------------------------
    def receipt_items(self, image_id: str, receipt_number: int) -> list[EmbeddingItem]:
        found = [record_from(EmbeddingItem, raw) for raw in self._visible(self._receipt_raws(image_id,
                                                                                            receipt_number))]
        return sorted(found, key=lambda item: item.item_id)

    def find_metadata_pending(self, kind: ItemKind) -> list[EmbeddingItem]:
        raws = self._query(IndexName="GSI1", KeyConditionExpression="GSI1PK = :p",
                           ExpressionAttributeValues={":p": {"S": metadata_pending_partition(kind)}})
        found = [record_from(EmbeddingItem, raw) for raw in self._visible(list(raws))]
        return sorted((item for item in found if item.metadata_pending), key=lambda item: item.item_id)

    def claim_metadata(self, summary: BatchSummary, versions: Sequence[tuple[str, int]]) -> None:
        """Summary first, then each item marked queued (conditional on its version, so a newer change
        made meanwhile stays pending); a crash between leaves the rest for the rerun's same batch."""
        if summary.operation is not BatchOperation.METADATA or not versions:
            raise InvalidInputError(f"batch {summary.batch_id!r}: a metadata batch needs "
                                    "operation=metadata and at least one item")
        self._conditional("put_item", Item=summary_attributes(summary),
                          ConditionExpression="attribute_not_exists(PK)")

        def queued(pair: tuple[str, int]) -> bool:
            return self._conditional(
                "update_item", Key=item_key(pair[0]),
                UpdateExpression="SET metadata_queued = :v REMOVE GSI1PK, GSI1SK",
                ConditionExpression="metadata_version = :v",
                ExpressionAttributeValues={":v": {"N": str(pair[1])}}) is not None
        self._parallel(queued, list(versions))

    # -- deletion batches ---------------------------------------------------------------------------
    def claim_deletions(self, summary: BatchSummary, item_ids: Sequence[str]) -> None:
        """Summary first, then the items in transactions; a crash between leaves a batch that holds
        part of them (poll takes what it holds) and the rest for the next queue_deletions."""
        ids = list(dict.fromkeys(item_ids))
        if summary.operation is not BatchOperation.DELETE or not ids:
            raise InvalidInputError(f"batch {summary.batch_id!r}: a deletion batch needs "
                                    "operation=delete and at least one item")
        current = self.get_items(ids)
        wrong = [i for i in ids if i not in current
                 or current[i].embedding_status is not EmbeddingStatus.DELETING
                 or current[i].batch_id not in (None, summary.batch_id)]
        if wrong:
            raise InvalidInputError(f"batch {summary.batch_id!r}: items not awaiting deletion: {wrong[:5]}")
        self._conditional("put_item", Item=summary_attributes(summary),
                          ConditionExpression="attribute_not_exists(PK)")
        todo = [current[i] for i in ids if current[i].batch_id is None]
        for group in chunked(todo, TRANSACTION_LIMIT):
            self._transact([{"Update": {
                "Key": item_key(item.item_id),
                "UpdateExpression": "SET batch_id = :b, GSI3PK = :g3, GSI3SK = :id",
                "ConditionExpression": "embedding_status = :d AND attribute_not_exists(batch_id)",
                "ExpressionAttributeValues": {":b": {"S": summary.batch_id},
                                              ":g3": {"S": batch_items_partition(summary.batch_id)},
                                              ":id": {"S": item.item_id},
                                              ":d": {"S": EmbeddingStatus.DELETING.value}}}}
                for item in group])

    def forget_deleted(self, batch_id: str, item_ids: Sequence[str]) -> int:
        def forget(item_id: str) -> bool:
            return self._conditional(
                "delete_item", Key=item_key(item_id),
                ConditionExpression="embedding_status = :d AND batch_id = :b",
                ExpressionAttributeValues={":d": {"S": EmbeddingStatus.DELETING.value},
                                           ":b": {"S": batch_id}}) is not None
        return sum(self._parallel(forget, list(dict.fromkeys(item_ids))))


__all__ = ["DynamoReceipts"]
