"""Lines and words in DynamoDB: idempotent import, status queries, and the all-or-nothing claim.

A claim spans several TransactWriteItems (at most 25 operations each, the summary in the first), so
it is made atomic by hand: when a later group finds an item that is no longer NONE, the groups
already written are rolled back (items first, the summary last) and ClaimConflictError is raised.
If the process dies mid-claim, the summary exists with part of the items PENDING in it; running
the same claim again completes it, because items already PENDING in this batch are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.dynamo_base import (
    TRANSACTION_LIMIT,
    Attributes,
    DynamoBase,
    chunked,
    record_attributes,
    record_from,
)
from embedding_ingest.stores.dynamo_schema import (
    batch_items_partition,
    batch_key,
    batch_sort_key,
    batch_status_partition,
    embedding_status_partition,
    is_canonical_item_id,
    item_key,
    metadata_pending_partition,
)
from embedding_ingest.stores.exceptions import ClaimConflictError
from embedding_ingest.stores.records import (
    DEFAULT_MAX_PROVIDER_RETRIES,
    MAX_ATTEMPTS,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
    LeanItem,
    ReleaseCause,
    release_outcome,
)

_SHOWN_IDS = 5  # ids named in an error message
IMPORT_SEQ = "import_seq"  # issue 10: the import that wrote an item (dynamo_receipts.py)
# What find_lean_items reads of an item: a LeanItem's fields, and what _visible needs to hide items of
# an uncommitted import. Every name through a placeholder (several are DynamoDB reserved words).
_LEAN_FIELDS = ("item_id", "embedding_status", "text", "metadata", "metadata_version", "image_id",
                "receipt_number", IMPORT_SEQ)


def marker_key(image_id: str, receipt_number: int) -> Attributes:
    """A receipt's import marker (dynamo_receipts.py): SK sorts beside its items, never among them."""
    return {"PK": {"S": f"IMAGE#{image_id}"}, "SK": {"S": f"RECEIPT#{receipt_number:05d}#IMPORT"}}


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_IDS])
    return shown + (f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else "")


def item_attributes(item: EmbeddingItem) -> Attributes:
    if is_canonical_item_id(item.item_id) and item_key(item.item_id) != _canonical_key_of(item):
        raise InvalidInputError(
            f"item {item.item_id!r}: its id names a different image/receipt/line/word than its fields")
    attributes = {**record_attributes(item), **item_key(item.item_id),
                  "GSI2PK": {"S": embedding_status_partition(item.kind, item.embedding_status)},
                  "GSI2SK": {"S": item.item_id}}
    if item.batch_id is not None:
        attributes["GSI3PK"] = {"S": batch_items_partition(item.batch_id)}
        attributes["GSI3SK"] = {"S": item.item_id}
    if item.metadata_pending:
        attributes["GSI1PK"] = {"S": metadata_pending_partition(item.kind)}
        attributes["GSI1SK"] = {"S": item.item_id}
    return attributes


def _canonical_key_of(item: EmbeddingItem) -> Attributes:
    sk = f"RECEIPT#{item.receipt_number:05d}#LINE#{item.line_id:05d}"
    if item.word_id is not None:
        sk += f"#WORD#{item.word_id:05d}"
    return {"PK": {"S": f"IMAGE#{item.image_id}"}, "SK": {"S": sk}}


def summary_attributes(summary: BatchSummary) -> Attributes:
    return {**record_attributes(summary), **batch_key(summary.batch_id),
            "GSI1PK": {"S": batch_status_partition(summary.status)},
            "GSI1SK": {"S": batch_sort_key(summary.batch_type, summary.submitted_at, summary.batch_id)}}


def _lean_item(raw: Attributes) -> LeanItem:
    return LeanItem(raw["item_id"]["S"], EmbeddingStatus(raw["embedding_status"]["S"]), raw["text"]["S"],
                    json.loads(raw["metadata"]["S"]) if "metadata" in raw else {},
                    int(raw["metadata_version"]["N"]) if "metadata_version" in raw else 0)


class DynamoItems(DynamoBase):
    # -- import and reads ----------------------------------------------------------------------
    def add_items(self, items: Iterable[EmbeddingItem]) -> int:
        unique: dict[str, EmbeddingItem] = {}
        for item in items:
            unique.setdefault(item.item_id, item)
        present = set(self.get_items(list(unique)))
        absent = [item_attributes(item) for item_id, item in unique.items() if item_id not in present]
        added = 0
        for group in chunked(absent, TRANSACTION_LIMIT):
            added += self._put_absent(list(group))
        return added

    def _put_absent(self, group: list[Attributes]) -> int:
        """Create-if-absent for a group; items created meanwhile by someone else are left alone."""
        while group:
            reasons = self._transact([
                {"Put": {"Item": attributes, "ConditionExpression": "attribute_not_exists(PK)"}}
                for attributes in group])
            if reasons is None:
                return len(group)
            group = [attributes for attributes, reason in zip(group, reasons, strict=True)
                     if reason != "ConditionalCheckFailed"]
        return 0

    def get_items(self, item_ids: Sequence[str]) -> dict[str, EmbeddingItem]:
        keys = [item_key(item_id) for item_id in dict.fromkeys(item_ids)]
        found = (record_from(EmbeddingItem, raw) for raw in self._visible(self._batch_get(keys)))
        return {item.item_id: item for item in found}

    def _visible(self, raws: Sequence[Attributes]) -> list[Attributes]:
        """`raws` without items of a receipt import not yet committed (dynamo_receipts.py)."""
        staged = [raw for raw in raws if IMPORT_SEQ in raw]
        if not staged:
            return list(raws)

        def receipt_of(raw: Attributes) -> tuple[str, int]:
            return raw["image_id"]["S"], int(raw["receipt_number"]["N"])

        committed = {}
        for marker in self._batch_get([marker_key(*key) for key in {receipt_of(raw) for raw in staged}]):
            number = int(marker["SK"]["S"].split("#")[1])
            committed[(marker["PK"]["S"].removeprefix("IMAGE#"), number)] = int(
                marker.get("committed", {"N": "0"})["N"])
        return [raw for raw in raws
                if IMPORT_SEQ not in raw or int(raw[IMPORT_SEQ]["N"]) <= committed.get(receipt_of(raw), 0)]

    def find_items(self, kind: ItemKind, status: EmbeddingStatus, *, limit: int | None = None,
                   batch_id: str | None = None) -> list[EmbeddingItem]:
        if limit is not None and limit <= 0:
            return []
        if batch_id is None:
            raws = self._query(
                IndexName="GSI2", KeyConditionExpression="GSI2PK = :p",
                ExpressionAttributeValues={":p": {"S": embedding_status_partition(kind, status)}},
                page_size=limit)
        else:
            raws = self._query(
                IndexName="GSI3", KeyConditionExpression="GSI3PK = :p",
                FilterExpression="embedding_status = :s AND #kind = :k",
                ExpressionAttributeNames={"#kind": "kind"},
                ExpressionAttributeValues={":p": {"S": batch_items_partition(batch_id)},
                                           ":s": {"S": EmbeddingStatus(status).value},
                                           ":k": {"S": ItemKind(kind).value}})
        found: list[EmbeddingItem] = []
        page: list[Attributes] = []
        for raw in raws:  # a page at a time, so hidden items of an uncommitted import are dropped
            page.append(raw)
            if len(page) >= 100:
                found += [record_from(EmbeddingItem, r) for r in self._visible(page)]
                page = []
            if limit is not None and len(found) >= limit:
                break
        found += [record_from(EmbeddingItem, r) for r in self._visible(page)]
        return found[:limit] if limit is not None else found

    def find_lean_items(self, kind: ItemKind, batch_id: str, statuses: Collection[EmbeddingStatus]
                        ) -> list[LeanItem]:
        """Ledger.find_lean_items (ports.py): one GSI3 query of the batch (it projects every
        attribute), only the fields LeanItem needs read."""
        wanted = [EmbeddingStatus(status).value for status in statuses]
        if not wanted:
            return []
        names = {f"#f{n}": name for n, name in enumerate(_LEAN_FIELDS)}
        values = {f":s{n}": {"S": status} for n, status in enumerate(wanted)}
        raws = self._query(
            IndexName="GSI3", KeyConditionExpression="GSI3PK = :p",
            FilterExpression=f"#f1 IN ({', '.join(values)}) AND #kind = :k",
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames={**names, "#kind": "kind"},
            ExpressionAttributeValues={":p": {"S": batch_items_partition(batch_id)},
                                       ":k": {"S": ItemKind(kind).value}, **values})
        found: list[LeanItem] = []
        page: list[Attributes] = []
        for raw in raws:  # a page at a time, so only a page of full attribute maps is ever held
            page.append(raw)
            if len(page) >= 100:
                found += [_lean_item(r) for r in self._visible(page)]
                page = []
        return found + [_lean_item(r) for r in self._visible(page)]

    def count_items(self, kind: ItemKind | None = None) -> dict[EmbeddingStatus, int]:
        kinds = [ItemKind(kind)] if kind is not None else list(ItemKind)
        return {status: sum(self._count(IndexName="GSI2", KeyConditionExpression="GSI2PK = :p",
                                        ExpressionAttributeValues={
                                            ":p": {"S": embedding_status_partition(k, status)}})
                            for k in kinds)
                for status in EmbeddingStatus}

    # -- claim -------------------------------------------------------------------------------
    def claim_batch(self, summary: BatchSummary, item_ids: Sequence[str]) -> bool:
        ids = list(dict.fromkeys(item_ids))
        current = self.get_items(ids)
        missing = [item_id for item_id in ids if item_id not in current]
        if missing:
            raise InvalidInputError(f"batch {summary.batch_id}: cannot claim unknown items {_some(missing)}")
        mine = {item_id for item_id, item in current.items() if item.batch_id == summary.batch_id
                and item.embedding_status in (EmbeddingStatus.PENDING, EmbeddingStatus.SUCCESS)}
        taken = [item_id for item_id in ids
                 if item_id not in mine and current[item_id].embedding_status is not EmbeddingStatus.NONE]
        if taken:
            raise ClaimConflictError(
                f"batch {summary.batch_id}: items no longer NONE: {_some(taken)}")
        to_claim = [item_id for item_id in ids if item_id not in mine]
        summary_exists = self._get(batch_key(summary.batch_id)) is not None
        if summary_exists and not to_claim:
            return False  # a rerun of a finished claim

        operations: list[dict[str, Any]] = []
        if not summary_exists:
            operations.append({"Put": {"Item": summary_attributes(summary),
                                       "ConditionExpression": "attribute_not_exists(PK)"}})
        operations += [self._claim_operation(summary.batch_id, current[item_id]) for item_id in to_claim]

        written: list[str] = []
        summary_written = False
        for group in chunked(operations, TRANSACTION_LIMIT):
            reasons = self._transact(group)
            group_ids = [self._operation_item_id(operation) for operation in group]
            if reasons is not None:
                lost = [item_id or f"summary {summary.batch_id}"
                        for item_id, reason in zip(group_ids, reasons, strict=True)
                        if reason == "ConditionalCheckFailed"]
                self._roll_back_claim(summary.batch_id, written, drop_summary=summary_written)
                raise ClaimConflictError(
                    f"batch {summary.batch_id}: claimed concurrently, nothing kept: {_some(lost)}")
            written += [item_id for item_id in group_ids if item_id is not None]
            summary_written = not summary_exists
        return True

    @staticmethod
    def _operation_item_id(operation: dict[str, Any]) -> str | None:
        update = operation.get("Update")
        return update["ExpressionAttributeValues"][":id"]["S"] if update else None

    def _claim_operation(self, batch_id: str, item: EmbeddingItem) -> dict[str, Any]:
        return {"Update": {
            "Key": item_key(item.item_id),
            "UpdateExpression": "SET embedding_status = :pending, batch_id = :b, GSI2PK = :g2, "
                                "GSI3PK = :g3, GSI3SK = :id",
            "ConditionExpression": "embedding_status = :none",
            "ExpressionAttributeValues": {
                ":pending": {"S": EmbeddingStatus.PENDING.value},
                ":none": {"S": EmbeddingStatus.NONE.value},
                ":b": {"S": batch_id},
                ":g2": {"S": embedding_status_partition(item.kind, EmbeddingStatus.PENDING)},
                ":g3": {"S": batch_items_partition(batch_id)},
                ":id": {"S": item.item_id}}}}

    def _roll_back_claim(self, batch_id: str, item_ids: list[str], *, drop_summary: bool) -> None:
        # Items first: if this is interrupted, the summary still exists and a rerun completes it.
        items = self.get_items(item_ids)

        def undo(item: EmbeddingItem) -> None:
            self._conditional(
                "update_item", Key=item_key(item.item_id),
                UpdateExpression="SET embedding_status = :none, GSI2PK = :g2 "
                                 "REMOVE batch_id, GSI3PK, GSI3SK",
                ConditionExpression="embedding_status = :pending AND batch_id = :b",
                ExpressionAttributeValues={
                    ":none": {"S": EmbeddingStatus.NONE.value},
                    ":pending": {"S": EmbeddingStatus.PENDING.value},
                    ":b": {"S": batch_id},
                    ":g2": {"S": embedding_status_partition(item.kind, EmbeddingStatus.NONE)}})

        self._parallel(undo, items.values())
        if drop_summary:
            self._conditional("delete_item", Key=batch_key(batch_id),
                              ConditionExpression="attribute_exists(PK)")

    # -- after the provider answered ----------------------------------------------------------
    def release_items(self, batch_id: str, errors: Mapping[str, str], *,
                      cause: ReleaseCause = ReleaseCause.CONTENT,
                      provider_retry_limit: int = DEFAULT_MAX_PROVIDER_RETRIES) -> int:
        current = self.get_items(list(errors))
        pending = [item for item in current.values()
                   if item.embedding_status is EmbeddingStatus.PENDING and item.batch_id == batch_id]

        def release(item: EmbeddingItem) -> bool:
            status, attempts, retries, reason = release_outcome(
                item.attempts, item.provider_retries, ReleaseCause(cause), provider_retry_limit,
                str(errors[item.item_id]), item.kind)
            # A FAILED item keeps the batch it failed in (and its by-batch index entry); NONE is free.
            keep_batch = status is EmbeddingStatus.FAILED
            seen_retries = ("provider_retries = :seenp" if item.provider_retries else
                            "(attribute_not_exists(provider_retries) OR provider_retries = :seenp)")
            return self._conditional(
                "update_item", Key=item_key(item.item_id),
                UpdateExpression="SET embedding_status = :s, attempts = :a, provider_retries = :p, "
                                 "last_error = :e, GSI2PK = :g2"
                                 + ("" if keep_batch else " REMOVE batch_id, GSI3PK, GSI3SK"),
                # the counters as read make a concurrent second release of the same item a no-op
                ConditionExpression="embedding_status = :pending AND batch_id = :b AND attempts = :seen AND "
                                    + seen_retries,
                ExpressionAttributeValues={
                    ":s": {"S": status.value}, ":a": {"N": str(attempts)}, ":p": {"N": str(retries)},
                    ":e": {"S": reason},
                    ":g2": {"S": embedding_status_partition(item.kind, status)},
                    ":pending": {"S": EmbeddingStatus.PENDING.value}, ":b": {"S": batch_id},
                    ":seen": {"N": str(item.attempts)},
                    ":seenp": {"N": str(item.provider_retries)}}) is not None

        return sum(self._parallel(release, pending))

    def requeue_items(self, kind: ItemKind, status: EmbeddingStatus, reason: str, *,
                      limit: int | None = None, item_ids: Sequence[str] | None = None) -> int:
        status = EmbeddingStatus(status)
        if status not in (EmbeddingStatus.SUCCESS, EmbeddingStatus.FAILED):
            raise InvalidInputError(f"only SUCCESS or FAILED items are requeued, not {status}")

        def requeue(item: EmbeddingItem) -> bool:
            return self._conditional(
                "update_item", Key=item_key(item.item_id),
                UpdateExpression="SET embedding_status = :none, attempts = :zero, provider_retries = :zero, "
                                 "last_error = :e, GSI2PK = :g2 REMOVE batch_id, GSI3PK, GSI3SK",
                ConditionExpression="embedding_status = :was",
                ExpressionAttributeValues={
                    ":none": {"S": EmbeddingStatus.NONE.value}, ":zero": {"N": "0"}, ":e": {"S": reason},
                    ":g2": {"S": embedding_status_partition(item.kind, EmbeddingStatus.NONE)},
                    ":was": {"S": status.value}}) is not None

        if item_ids is not None:
            chosen = [item for item in self.get_items(item_ids).values()
                      if item.kind is ItemKind(kind) and item.embedding_status is status][:limit]
        else:
            chosen = self.find_items(kind, status, limit=limit)
        return sum(self._parallel(requeue, chosen))

    def provider_retry_counts(self, kind: ItemKind) -> dict[str, int]:
        counts = {"items": 0, "retries": 0, "failed": 0}
        for status in (EmbeddingStatus.NONE, EmbeddingStatus.PENDING, EmbeddingStatus.FAILED):
            for raw in self._query(
                    IndexName="GSI2", KeyConditionExpression="GSI2PK = :p",
                    FilterExpression="provider_retries > :zero",
                    ProjectionExpression="attempts, provider_retries",
                    ExpressionAttributeValues={":p": {"S": embedding_status_partition(kind, status)},
                                               ":zero": {"N": "0"}}):
                if status is EmbeddingStatus.FAILED:
                    counts["failed"] += int(raw.get("attempts", {"N": "0"})["N"]) < MAX_ATTEMPTS
                else:
                    counts["items"] += 1
                    counts["retries"] += int(raw["provider_retries"]["N"])
        return counts

    def mark_items_succeeded(self, batch_id: str, item_ids: Sequence[str]) -> int:
        current = self.get_items(item_ids)
        pending = [item for item in current.values()
                   if item.embedding_status is EmbeddingStatus.PENDING and item.batch_id == batch_id]

        def succeed(item: EmbeddingItem) -> bool:
            return self._conditional(
                "update_item", Key=item_key(item.item_id),
                UpdateExpression="SET embedding_status = :success, GSI2PK = :g2 REMOVE last_error",
                ConditionExpression="embedding_status = :pending AND batch_id = :b",
                ExpressionAttributeValues={
                    ":success": {"S": EmbeddingStatus.SUCCESS.value},
                    ":pending": {"S": EmbeddingStatus.PENDING.value}, ":b": {"S": batch_id},
                    ":g2": {"S": embedding_status_partition(item.kind, EmbeddingStatus.SUCCESS)}}) is not None

        return sum(self._parallel(succeed, pending))
