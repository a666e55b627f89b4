"""Connection handling shared by the SQLite ledger's parts: one connection per thread and process,
WAL, a busy timeout, `BEGIN IMMEDIATE` write transactions, and sqlite3 errors translated at the edge."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from embedding_ingest.stores.exceptions import CorruptObjectError, StoreUnavailableError

BUSY_TIMEOUT_MS = 30_000
# Well below SQLite's bound-variable limit, for `IN (...)` lookups of many ids.
ID_CHUNK = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    image_id TEXT NOT NULL,
    receipt_number INTEGER NOT NULL,
    line_id INTEGER NOT NULL,
    word_id INTEGER,
    text TEXT NOT NULL,
    embed_text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    tokens INTEGER,
    truncated INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT,
    metadata_hash TEXT,
    metadata_version INTEGER NOT NULL DEFAULT 0,
    metadata_queued INTEGER NOT NULL DEFAULT 0,
    provider_retries INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_kind_status ON items (kind, status, item_id);
CREATE INDEX IF NOT EXISTS items_by_batch ON items (batch_id, status);

CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    batch_type TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batches_by_age ON batches (submitted_at, batch_id);

CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT,                      -- NULL once released; the row (and its token) stays
    fencing_token INTEGER NOT NULL,
    expires_at REAL NOT NULL DEFAULT 0  -- unused since leases are judged by record version (issue 24)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lock_waits (
    name TEXT NOT NULL,
    waiter TEXT NOT NULL,
    rvn TEXT NOT NULL,               -- the record version this waiter has been watching
    waits INTEGER NOT NULL,          -- fixed waits recorded since it first saw it
    PRIMARY KEY (name, waiter)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS published (
    database TEXT PRIMARY KEY,
    version TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    database TEXT NOT NULL,
    version TEXT NOT NULL,
    published_at REAL NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (database, version)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS migrations (
    kind TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS executions (
    execution_arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    start_date REAL NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS executions_by_name ON executions (name);
CREATE INDEX IF NOT EXISTS executions_by_start ON executions (start_date, execution_arn);
CREATE TABLE IF NOT EXISTS events (
    execution_arn TEXT NOT NULL,
    id INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (execution_arn, id)
) WITHOUT ROWID;
"""


# Columns added after a ledger may already exist: (table, column, declaration), added when missing.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("items", "tokens", "INTEGER"),  # issue 11: token fitting
    ("items", "truncated", "INTEGER NOT NULL DEFAULT 0"),
    ("items", "content_hash", "TEXT"),  # issue 10: incremental sync
    ("items", "metadata_hash", "TEXT"),  # issue 23: living metadata
    ("items", "metadata_version", "INTEGER NOT NULL DEFAULT 0"),
    ("items", "metadata_queued", "INTEGER NOT NULL DEFAULT 0"),
    ("locks", "rvn", "TEXT"),  # issue 24: leases judged by record version
    ("locks", "record", "TEXT"),  # issue 24: the Lease (lease and heartbeat lengths, holder's times)
    ("items", "provider_retries", "INTEGER NOT NULL DEFAULT 0"),  # issue 19: releases for provider reasons
)
# Indexes over added columns or for later features, created once the columns exist.
AFTER_ADDED_COLUMNS = (
    "CREATE INDEX IF NOT EXISTS items_by_receipt ON items (image_id, receipt_number)",  # issue 10
    # issue 23: the few items whose metadata update is waiting to be queued
    "CREATE INDEX IF NOT EXISTS items_metadata_pending ON items (kind, item_id) "
    "WHERE metadata_version > metadata_queued",
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, declaration in ADDED_COLUMNS:
            present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        for statement in AFTER_ADDED_COLUMNS:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def chunks(values: Sequence[Any], size: int = ID_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def filtered_select(table: str, clauses: list[str], params: list[Any], *, order_by: str,
                    limit: int | None) -> tuple[str, list[Any]]:
    """`SELECT record FROM table [WHERE a AND b] ORDER BY ... [LIMIT ?]` and its parameters."""
    sql = f"SELECT record FROM {table}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += f" ORDER BY {order_by}"
    if limit is not None:
        return sql + " LIMIT ?", [*params, limit]
    return sql, params


class _ThreadConnection:
    """One thread's connection. Only that thread's local storage holds it strongly, so it is
    closed when the thread ends (no leaked file handles from short-lived worker threads)."""

    __slots__ = ("pid", "conn", "__weakref__")
    _getpid = staticmethod(os.getpid)  # kept: at interpreter exit the `os` global may be gone already

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.pid = self._getpid()
        self.conn = conn

    _sqlite_error = sqlite3.Error  # kept for the same reason as _getpid

    def close(self) -> None:
        try:  # noqa: SIM105 - no contextlib: at interpreter exit its global may already be None
            self.conn.close()
        except self._sqlite_error:
            pass

    def __del__(self) -> None:
        # A finaliser run at interpreter exit may find module globals already torn down; closing
        # then is best effort, and nothing must be printed for it.
        try:
            if self.pid == self._getpid():
                self.close()
        except Exception:  # noqa: BLE001 - see above
            pass


class SqliteConnections:
    """Base of the ledger's parts. Holds only the path; connections are per thread and per process
    (a connection must not cross a fork), so instances pickle and reopen by path."""

    # Connections inherited through fork stay referenced and are never closed in the child:
    # closing them there could disturb the parent's locks and WAL.
    _inherited: list[_ThreadConnection] = []

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._opened: list[weakref.ref[_ThreadConnection]] = []
        self._opened_guard = threading.Lock()
        self._schema_ready_pid: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn()  # create the file and schema now, so errors surface at construction

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "busy_timeout_ms": self.busy_timeout_ms}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Path(state["path"]), busy_timeout_ms=state["busy_timeout_ms"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    # -- connections ----------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        held: _ThreadConnection | None = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            return held.conn
        if held is not None:
            self._inherited.append(held)
        with self._translated("opening"):
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout_ms / 1000)
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
        held = _ThreadConnection(conn)
        self._local.held = held
        with self._opened_guard:
            self._opened = [ref for ref in self._opened if ref() is not None]
            self._opened.append(weakref.ref(held))
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if self._schema_ready_pid != os.getpid():
            conn.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + "\nCOMMIT;")
            _add_missing_columns(conn)
            self._schema_ready_pid = os.getpid()

    def close(self) -> None:
        """Close every connection this process opened (from any thread); later calls reopen."""
        with self._opened_guard:
            opened, self._opened = self._opened, []
        for ref in opened:
            held = ref()
            if held is not None and held.pid == os.getpid():
                held.close()
        self._local = threading.local()

    # -- transactions ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            # busy/locked after the timeout, I/O errors, unopenable file: retrying may help.
            raise StoreUnavailableError(f"SQLite ledger {self.path} unavailable while {action}: {exc}"
                                        ) from exc
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise CorruptObjectError(str(self.path), f"SQLite error while {action}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self, action: str, begin: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._translated(action):
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _write(self, action: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no deadlock upgrading a read)."""
        return self._transaction(action, "BEGIN IMMEDIATE")

    def _read(self, action: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A read transaction: several SELECTs see one consistent snapshot."""
        return self._transaction(action, "BEGIN")
