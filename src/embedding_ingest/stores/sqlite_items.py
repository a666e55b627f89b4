"""The SQLite ledger's items and batch summaries (ItemLedger + BatchLedger)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from pydantic import ValidationError

from embedding_ingest import fast_json
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import BatchNotFoundError, ClaimConflictError
from embedding_ingest.stores.records import (
    DEFAULT_MAX_PROVIDER_RETRIES,
    MAX_ATTEMPTS,
    BatchStatus,
    BatchSummary,
    BatchType,
    EmbeddingItem,
    EmbeddingStatus,
    ItemKind,
    LeanItem,
    ReleaseCause,
    release_outcome,
)
from embedding_ingest.stores.sqlite_base import SqliteConnections, chunks, filtered_select, placeholders

_ITEM_COLUMNS = ("item_id, kind, status, batch_id, attempts, last_error, image_id, receipt_number, "
                 "line_id, word_id, text, embed_text, metadata, tokens, truncated, content_hash, "
                 "metadata_hash, metadata_version, metadata_queued, provider_retries")
_ITEM_PLACEHOLDERS = placeholders(_ITEM_COLUMNS.count(",") + 1)
ITEM_COLUMN_COUNT = _ITEM_COLUMNS.count(",") + 1
_ADD_CHUNK = 1_000
_SHOWN_IN_ERRORS = 5


def _item_row(item: EmbeddingItem) -> tuple[Any, ...]:
    return (item.item_id, item.kind.value, item.embedding_status.value, item.batch_id, item.attempts,
            item.last_error, item.image_id, item.receipt_number, item.line_id, item.word_id,
            item.text, item.embed_text, json.dumps(item.metadata, sort_keys=True), item.tokens,
            int(item.truncated), item.content_hash, item.metadata_hash, item.metadata_version,
            item.metadata_queued, item.provider_retries)


def _item_from_row(row: sqlite3.Row) -> EmbeddingItem:
    return EmbeddingItem(
        item_id=row["item_id"], kind=row["kind"], embedding_status=row["status"],
        batch_id=row["batch_id"], attempts=row["attempts"], last_error=row["last_error"],
        image_id=row["image_id"], receipt_number=row["receipt_number"], line_id=row["line_id"],
        word_id=row["word_id"], text=row["text"], embed_text=row["embed_text"],
        metadata=json.loads(row["metadata"]), tokens=row["tokens"], truncated=bool(row["truncated"]),
        content_hash=row["content_hash"], metadata_hash=row["metadata_hash"],
        metadata_version=row["metadata_version"], metadata_queued=row["metadata_queued"],
        provider_retries=row["provider_retries"])


def _summary_from_row(row: sqlite3.Row) -> BatchSummary:
    return BatchSummary.model_validate_json(row["record"])


def _shown(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    more = f" and {len(ids) - _SHOWN_IN_ERRORS} more" if len(ids) > _SHOWN_IN_ERRORS else ""
    return ", ".join(repr(i) for i in ids[:_SHOWN_IN_ERRORS]) + more


class SqliteItemsAndBatches(SqliteConnections):
    # -- items ----------------------------------------------------------------------------------
    def add_items(self, items: Iterable[EmbeddingItem]) -> int:
        added = 0
        iterator = iter(items)
        # Chunked transactions: an import of many items never holds the write lock for long, and
        # a rerun after a crash simply skips what is already there.
        while chunk := list(islice(iterator, _ADD_CHUNK)):
            for item in chunk:
                if not isinstance(item, EmbeddingItem):
                    raise InvalidInputError(f"add_items needs EmbeddingItem, got {type(item).__name__}")
            with self._write("adding items") as conn:
                before = conn.total_changes
                conn.executemany(
                    f"INSERT OR IGNORE INTO items ({_ITEM_COLUMNS}) VALUES ({_ITEM_PLACEHOLDERS})",
                    [_item_row(item) for item in chunk])
                added += conn.total_changes - before
        return added

    def get_items(self, item_ids: Sequence[str]) -> dict[str, EmbeddingItem]:
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, EmbeddingItem] = {}
        with self._read("reading items") as conn:
            for part in chunks(ids):
                rows = conn.execute(
                    f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id IN ({placeholders(len(part))})",
                    tuple(part))
                found.update((row["item_id"], _item_from_row(row)) for row in rows)
        return found

    def find_items(self, kind: ItemKind, status: EmbeddingStatus, *, limit: int | None = None,
                   batch_id: str | None = None) -> list[EmbeddingItem]:
        sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE kind = ? AND status = ?"
        params: list[Any] = [ItemKind(kind).value, EmbeddingStatus(status).value]
        if batch_id is not None:
            sql += " AND batch_id = ?"
            params.append(batch_id)
        sql += " ORDER BY item_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._read("finding items") as conn:
            return [_item_from_row(row) for row in conn.execute(sql, params)]

    def find_lean_items(self, kind: ItemKind, batch_id: str, statuses: Collection[EmbeddingStatus]
                        ) -> list[LeanItem]:
        """Ledger.find_lean_items (ports.py): one SELECT of only the columns LeanItem needs."""
        wanted = [EmbeddingStatus(status).value for status in statuses]
        if not wanted:
            return []
        sql = ("SELECT item_id, status, text, metadata, metadata_version FROM items "
               f"WHERE batch_id = ? AND kind = ? AND status IN ({placeholders(len(wanted))}) "
               "ORDER BY item_id")
        with self._read(f"reading the items of batch {batch_id!r}") as conn:
            return [LeanItem(row["item_id"], EmbeddingStatus(row["status"]), row["text"],
                             fast_json.loads(row["metadata"]), row["metadata_version"])
                    for row in conn.execute(sql, (batch_id, ItemKind(kind).value, *wanted))]

    def count_items(self, kind: ItemKind | None = None) -> dict[EmbeddingStatus, int]:
        counts = dict.fromkeys(EmbeddingStatus, 0)
        sql = "SELECT status, COUNT(*) AS n FROM items"
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (ItemKind(kind).value,)
        with self._read("counting items") as conn:
            for row in conn.execute(sql + " GROUP BY status", params):
                counts[EmbeddingStatus(row["status"])] = row["n"]
        return counts

    def claim_batch(self, summary: BatchSummary, item_ids: Sequence[str]) -> bool:
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            raise InvalidInputError(f"batch {summary.batch_id!r}: cannot claim an empty list of items")
        with self._write(f"claiming batch {summary.batch_id!r}") as conn:
            rows: dict[str, sqlite3.Row] = {}
            for part in chunks(ids):
                for row in conn.execute(
                        "SELECT item_id, kind, status, batch_id FROM items "
                        f"WHERE item_id IN ({placeholders(len(part))})", tuple(part)):
                    rows[row["item_id"]] = row
            missing = [i for i in ids if i not in rows]
            if missing:
                raise InvalidInputError(
                    f"batch {summary.batch_id!r}: unknown items {_shown(missing)}")
            wrong_kind = [i for i, r in rows.items() if ItemKind(r["kind"]).batch_type != summary.batch_type]
            if wrong_kind:
                raise InvalidInputError(f"batch {summary.batch_id!r} ({summary.batch_type}): items of "
                                        f"another kind {_shown(wrong_kind)}")
            free = [i for i, r in rows.items() if r["status"] == EmbeddingStatus.NONE]
            ours = [i for i, r in rows.items() if r["batch_id"] == summary.batch_id
                    and r["status"] in (EmbeddingStatus.PENDING, EmbeddingStatus.SUCCESS)]
            exists = conn.execute("SELECT 1 FROM batches WHERE batch_id = ?",
                                  (summary.batch_id,)).fetchone() is not None
            if exists and len(ours) == len(ids):
                return False  # a rerun of a claim that already happened: keep the recorded summary
            if len(free) != len(ids):
                taken = [i for i in ids if i not in set(free)]
                raise ClaimConflictError(
                    f"batch {summary.batch_id!r}: {len(taken)} of {len(ids)} items are not NONE "
                    f"(claimed elsewhere or finished): {_shown(taken)}; nothing was claimed")
            conn.execute(
                "INSERT OR REPLACE INTO batches (batch_id, batch_type, status, submitted_at, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (summary.batch_id, summary.batch_type.value, summary.status.value,
                 summary.submitted_at, summary.model_dump_json()))
            conn.executemany(
                "UPDATE items SET status = 'PENDING', batch_id = ? WHERE item_id = ? AND status = 'NONE'",
                [(summary.batch_id, i) for i in ids])
        return True

    def release_items(self, batch_id: str, errors: Mapping[str, str], *,
                      cause: ReleaseCause = ReleaseCause.CONTENT,
                      provider_retry_limit: int = DEFAULT_MAX_PROVIDER_RETRIES) -> int:
        # FAILED items keep their last batch_id (where they failed); NONE items are free again.
        ids = list(errors)
        updates = []
        with self._write(f"releasing items of batch {batch_id!r}") as conn:
            for part in chunks(ids):
                for row in conn.execute(
                        "SELECT item_id, kind, attempts, provider_retries FROM items WHERE item_id IN "
                        f"({placeholders(len(part))}) AND batch_id = ? AND status = 'PENDING'",
                        (*part, batch_id)):
                    status, attempts, retries, reason = release_outcome(
                        row["attempts"], row["provider_retries"], ReleaseCause(cause), provider_retry_limit,
                        str(errors[row["item_id"]]), ItemKind(row["kind"]))
                    keep = status is EmbeddingStatus.FAILED
                    updates.append((status.value, attempts, retries, reason, keep, row["item_id"], batch_id))
            conn.executemany(
                "UPDATE items SET status = ?, attempts = ?, provider_retries = ?, last_error = ?, "
                "batch_id = CASE WHEN ? THEN batch_id ELSE NULL END "
                "WHERE item_id = ? AND batch_id = ? AND status = 'PENDING'", updates)
        return len(updates)

    def requeue_items(self, kind: ItemKind, status: EmbeddingStatus, reason: str, *,
                      limit: int | None = None, item_ids: Sequence[str] | None = None) -> int:
        if EmbeddingStatus(status) not in (EmbeddingStatus.SUCCESS, EmbeddingStatus.FAILED):
            raise InvalidInputError(f"only SUCCESS or FAILED items are requeued, not {status}")
        update = ("UPDATE items SET status = 'NONE', batch_id = NULL, attempts = 0, provider_retries = 0, "
                  "last_error = ? WHERE kind = ? AND status = ? AND item_id IN ")
        params: tuple[Any, ...] = (reason, ItemKind(kind).value, EmbeddingStatus(status).value)
        with self._write(f"requeueing {status} {kind} items") as conn:
            if item_ids is not None:
                ids = list(dict.fromkeys(item_ids))[:limit]
                return sum(conn.execute(update + f"({placeholders(len(part))})", (*params, *part)).rowcount
                           for part in chunks(ids))
            chosen = ("(SELECT item_id FROM items WHERE kind = ? AND status = ? ORDER BY item_id"
                      + (" LIMIT ?)" if limit is not None else ")"))
            extra = params[1:] + ((limit,) if limit is not None else ())
            return conn.execute(update + chosen, params + extra).rowcount

    def provider_retry_counts(self, kind: ItemKind) -> dict[str, int]:
        with self._read("counting provider retries") as conn:
            row = conn.execute(
                "SELECT SUM(status IN ('NONE', 'PENDING')) AS items, "
                "SUM(CASE WHEN status IN ('NONE', 'PENDING') THEN provider_retries ELSE 0 END) AS retries, "
                "SUM(status = 'FAILED' AND attempts < ?) AS failed "
                "FROM items WHERE kind = ? AND provider_retries > 0", (MAX_ATTEMPTS, ItemKind(kind).value)
            ).fetchone()
        return {key: int(row[key] or 0) for key in ("items", "retries", "failed")}

    def mark_items_succeeded(self, batch_id: str, item_ids: Sequence[str]) -> int:
        with self._write(f"marking items of batch {batch_id!r} succeeded") as conn:
            before = conn.total_changes
            conn.executemany(
                "UPDATE items SET status = 'SUCCESS', last_error = NULL "
                "WHERE item_id = ? AND batch_id = ? AND status = 'PENDING'",
                [(item_id, batch_id) for item_id in dict.fromkeys(item_ids)])
            return conn.total_changes - before

    # -- batch summaries ------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> BatchSummary | None:
        with self._read(f"reading batch {batch_id!r}") as conn:
            row = conn.execute("SELECT record FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        return None if row is None else _summary_from_row(row)

    def list_batches(self, *, statuses: Collection[BatchStatus] | None = None,
                     batch_type: BatchType | None = None, limit: int | None = None
                     ) -> list[BatchSummary]:
        clauses: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            wanted = [BatchStatus(s).value for s in statuses]
            if not wanted:
                return []
            clauses.append(f"status IN ({placeholders(len(wanted))})")
            params.extend(wanted)
        if batch_type is not None:
            clauses.append("batch_type = ?")
            params.append(BatchType(batch_type).value)
        sql, params = filtered_select("batches", clauses, params, order_by="submitted_at, batch_id",
                                      limit=limit)
        with self._read("listing batches") as conn:
            return [_summary_from_row(row) for row in conn.execute(sql, params)]

    def update_batch(self, batch_id: str, **changes: Any) -> BatchSummary:
        with self._write(f"updating batch {batch_id!r}") as conn:
            row = conn.execute("SELECT record FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is None:
                raise BatchNotFoundError(batch_id)
            current = _summary_from_row(row)
            try:
                updated = BatchSummary.model_validate(
                    {**current.model_dump(), **changes, "updated_at": time.time()})
            except ValidationError as exc:
                raise InvalidInputError(f"batch {batch_id!r}: invalid change {changes}: {exc}") from exc
            conn.execute(
                "UPDATE batches SET batch_type = ?, status = ?, submitted_at = ?, record = ? "
                "WHERE batch_id = ?",
                (updated.batch_type.value, updated.status.value, updated.submitted_at,
                 updated.model_dump_json(), batch_id))
        return updated
