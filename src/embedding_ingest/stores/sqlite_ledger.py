"""SqliteLedger: the embedded default Ledger, one SQLite file in WAL mode, safe for many threads and
processes at once. Its parts live in sqlite_items.py, sqlite_receipts.py, sqlite_coordination.py and
sqlite_executions.py;
connection handling in sqlite_base.py."""

from __future__ import annotations

from embedding_ingest.stores.sqlite_coordination import SqliteCoordination
from embedding_ingest.stores.sqlite_executions import SqliteExecutions
from embedding_ingest.stores.sqlite_items import SqliteItemsAndBatches
from embedding_ingest.stores.sqlite_receipts import SqliteReceipts


class SqliteLedger(SqliteItemsAndBatches, SqliteReceipts, SqliteCoordination, SqliteExecutions):
    """Ledger on one SQLite file. Construct with the file's path; pickles by path."""


__all__ = ["SqliteLedger"]
