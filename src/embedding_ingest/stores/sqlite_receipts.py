"""The SQLite ledger's receipt-level operations (issue 10): incremental sync of whole receipts in one
transaction, the receipts it holds, and the life of deleted items (claimed into a deletion batch,
forgotten once the published version lacks them)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.receipt_sync import ReceiptChanges, plan_receipt_sync
from embedding_ingest.stores.records import (
    BatchOperation,
    BatchSummary,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
    MetadataValue,
)
from embedding_ingest.stores.relabel import MetadataRow, ReceiptLabels, Relabelled, plan_relabel, relabelled
from embedding_ingest.stores.sqlite_base import SqliteConnections, chunks, placeholders
from embedding_ingest.stores.sqlite_items import (
    _ITEM_COLUMNS,
    ITEM_COLUMN_COUNT,
    _item_from_row,
    _item_row,
    _shown,
)

ReceiptItems = tuple[str, int, Sequence[EmbeddingItem]]  # (image_id, receipt_number, all its items)


class SqliteReceipts(SqliteConnections):
    def sync_receipts(self, receipts: Sequence[ReceiptItems]) -> list[ReceiptChanges]:
        """Sync every receipt (receipt_sync.py) in ONE transaction: all of them land or none does."""
        if not receipts:
            return []
        with self._write(f"importing {len(receipts)} receipt(s)") as conn:
            return [self._sync_one(conn, image_id, number, items) for image_id, number, items in receipts]

    def _sync_one(self, conn: sqlite3.Connection, image_id: str, number: int,
                  items: Sequence[EmbeddingItem]) -> ReceiptChanges:
        for item in items:
            if (item.image_id, item.receipt_number) != (image_id, number):
                raise InvalidInputError(f"item {item.item_id!r} is not of receipt {image_id!r} #{number}")
        existing = {row["item_id"]: _item_from_row(row) for row in conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE image_id = ? AND receipt_number = ?",
            (image_id, number))}
        plan = plan_receipt_sync(image_id, number, existing, items)
        row_sql = f"INTO items ({_ITEM_COLUMNS}) VALUES ({placeholders(ITEM_COLUMN_COUNT)})"
        conn.executemany("INSERT " + row_sql, [_item_row(item) for item in plan.insert])
        conn.executemany("INSERT OR REPLACE " + row_sql, [_item_row(item) for item in plan.overwrite])
        conn.executemany("UPDATE items SET status = 'DELETING', batch_id = NULL WHERE item_id = ?",
                         [(item_id,) for item_id in plan.remove])
        assert plan.changes is not None
        return plan.changes

    def relabel(self, receipts: Sequence[ReceiptLabels]) -> list[Relabelled]:
        """Relabel every receipt (stores/relabel.py) in ONE transaction: all of them land or none does."""
        if not receipts:
            return []
        with self._write(f"relabelling {len(receipts)} receipt(s)") as conn:
            return [self._relabel_one(conn, image_id, number, labels)
                    for image_id, number, labels in receipts]

    def _relabel_one(self, conn: sqlite3.Connection, image_id: str, number: int,
                     labels: Mapping[str, Mapping[str, MetadataValue]]) -> Relabelled:
        rows: dict[str, MetadataRow] = {}
        for part in chunks(list(labels)):  # every item of the lines the named items are on
            rows.update((row["item_id"], MetadataRow(
                row["item_id"], row["line_id"], row["word_id"], EmbeddingStatus(row["status"]),
                json.loads(row["metadata"]), row["metadata_hash"], row["metadata_version"],
                row["metadata_queued"])) for row in conn.execute(
                "SELECT item_id, line_id, word_id, status, metadata, metadata_hash, metadata_version, "
                "metadata_queued FROM items WHERE image_id = ? AND receipt_number = ? AND line_id IN "
                "(SELECT line_id FROM items WHERE image_id = ? AND receipt_number = ? AND item_id IN "
                f"({placeholders(len(part))}))", (image_id, number, image_id, number, *part)))
        known = any(row.status is not EmbeddingStatus.DELETING for row in rows.values()) or conn.execute(
            "SELECT 1 FROM items WHERE image_id = ? AND receipt_number = ? AND status != 'DELETING' LIMIT 1",
            (image_id, number)).fetchone() is not None
        plan = plan_relabel(rows.values(), labels, receipt_known=known)
        conn.executemany(
            "UPDATE items SET metadata = ?, metadata_hash = ?, metadata_version = ?, metadata_queued = ? "
            "WHERE item_id = ?",
            [(json.dumps(new.metadata, sort_keys=True), new.metadata_hash, new.metadata_version,
              new.metadata_queued, new.item_id) for _, new in plan.updates])
        return relabelled(image_id, number, plan, plan.updates)

    def receipt_keys(self, image_id: str | None = None) -> list[tuple[str, int]]:
        """(image_id, receipt_number) of every receipt with items in the active set (not DELETING)."""
        sql = "SELECT DISTINCT image_id, receipt_number FROM items WHERE status != 'DELETING'"
        params: tuple[str, ...] = ()
        if image_id is not None:
            sql += " AND image_id = ?"
            params = (image_id,)
        with self._read("listing receipts") as conn:
            return [(row["image_id"], row["receipt_number"])
                    for row in conn.execute(sql + " ORDER BY image_id, receipt_number", params)]

    def claim_deletions(self, summary: BatchSummary, item_ids: Sequence[str]) -> None:
        """Record a deletion batch and put every DELETING item without a batch in it, all or nothing.
        A rerun of the same claim is a no-op. Raises InvalidInputError (nothing claimed) when
        an item is not DELETING without a batch (and not already in this one)."""
        ids = list(dict.fromkeys(item_ids))
        if summary.operation is not BatchOperation.DELETE or not ids:
            raise InvalidInputError(f"batch {summary.batch_id!r}: a deletion batch needs "
                                    "operation=delete and at least one item")
        with self._write(f"claiming deletion batch {summary.batch_id!r}") as conn:
            rows = {}
            for part in chunks(ids):
                for row in conn.execute("SELECT item_id, status, batch_id FROM items WHERE item_id IN "
                                        f"({placeholders(len(part))})", tuple(part)):
                    rows[row["item_id"]] = row
            wrong = [i for i in ids if i not in rows or rows[i]["status"] != EmbeddingStatus.DELETING
                     or rows[i]["batch_id"] not in (None, summary.batch_id)]
            if wrong:
                raise InvalidInputError(f"batch {summary.batch_id!r}: items not awaiting deletion: "
                                        f"{_shown(wrong)}; nothing was claimed")
            conn.execute(
                "INSERT OR IGNORE INTO batches (batch_id, batch_type, status, submitted_at, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (summary.batch_id, summary.batch_type.value, summary.status.value, summary.submitted_at,
                 summary.model_dump_json()))
            conn.executemany("UPDATE items SET batch_id = ? WHERE item_id = ? AND status = 'DELETING' "
                             "AND batch_id IS NULL", [(summary.batch_id, i) for i in ids])

    def receipt_items(self, image_id: str, receipt_number: int) -> list[EmbeddingItem]:
        with self._read(f"reading receipt {image_id!r} #{receipt_number}") as conn:
            return [_item_from_row(row) for row in conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE image_id = ? AND receipt_number = ? "
                "ORDER BY item_id",
                (image_id, receipt_number))]

    def find_metadata_pending(self, kind: ItemKind) -> list[EmbeddingItem]:
        """Items of `kind` whose metadata update is not queued yet (metadata_version >
        metadata_queued), by id."""
        with self._read("finding metadata updates") as conn:
            return [_item_from_row(row) for row in conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE kind = ? AND metadata_version > metadata_queued "
                "ORDER BY item_id", (kind.value,))]

    def claim_metadata(self, summary: BatchSummary, versions: Sequence[tuple[str, int]]) -> None:
        """Record a metadata batch and mark each (item, version) queued, in one transaction; an item
        whose version moved on meanwhile stays pending (its newer version goes in a later batch).
        A rerun is a no-op."""
        if summary.operation is not BatchOperation.METADATA or not versions:
            raise InvalidInputError(f"batch {summary.batch_id!r}: a metadata batch needs "
                                    "operation=metadata and at least one item")
        with self._write(f"claiming metadata batch {summary.batch_id!r}") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO batches (batch_id, batch_type, status, submitted_at, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (summary.batch_id, summary.batch_type.value, summary.status.value, summary.submitted_at,
                 summary.model_dump_json()))
            conn.executemany("UPDATE items SET metadata_queued = ? WHERE item_id = ? "
                             "AND metadata_version = ? AND metadata_queued < ?",
                             [(v, i, v, v) for i, v in versions])

    def forget_deleted(self, batch_id: str, item_ids: Sequence[str]) -> int:
        """Remove DELETING items of deletion batch `batch_id` from the ledger (their ids are gone from
        the published version). Idempotent; returns how many rows went."""
        with self._write(f"forgetting deleted items of batch {batch_id!r}") as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM items WHERE item_id = ? AND batch_id = ? AND status = 'DELETING'",
                             [(item_id, batch_id) for item_id in dict.fromkeys(item_ids)])
            return conn.total_changes - before
