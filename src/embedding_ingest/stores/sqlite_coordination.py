"""The SQLite ledger's locks with fencing tokens and the published-snapshot pointer
(LockLedger + SnapshotLedger). Every check-then-write runs inside one BEGIN IMMEDIATE transaction,
so the check and the write cannot be separated by another writer (lesson 9)."""

from __future__ import annotations

import sqlite3
import time

from embedding_ingest.config import LOCK_LEASE_DEFAULT_SECONDS
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import (
    LockLostError,
    PointerConflictError,
    StaleFencingTokenError,
)
from embedding_ingest.stores.records import (
    ItemKind,
    Lease,
    MigrationRecord,
    MigrationState,
    SnapshotVersion,
    check_staging_pointer,
    heartbeat_interval,
    holder_time,
    migration_state_matches,
    new_rvn,
)
from embedding_ingest.stores.sqlite_base import SqliteConnections

_LOCK_COLUMNS = "owner, fencing_token, rvn, record"


def _check_lease_seconds(lease_seconds: float) -> float:
    seconds = float(lease_seconds)
    if not seconds > 0:
        raise InvalidInputError(f"lock lease_seconds must be positive, got {lease_seconds!r}")
    return seconds


def _holds(row: sqlite3.Row | None, lease: Lease) -> bool:
    """Whether `lease` is the lock's current holder (same owner, same acquisition)."""
    return row is not None and row["owner"] == lease.owner and row["fencing_token"] == lease.fencing_token


def _lease_of(name: str, row: sqlite3.Row | None) -> Lease | None:
    if row is None or row["owner"] is None:
        return None
    if row["record"]:
        return Lease.model_validate_json(row["record"])
    # A lease written before record versions (issue 24): it never changes, so a waiter may take it over.
    return Lease(name=name, owner=row["owner"], fencing_token=row["fencing_token"],
                 rvn=row["rvn"] or f"legacy-{row['fencing_token']}", lease_seconds=LOCK_LEASE_DEFAULT_SECONDS,
                 heartbeat_seconds=heartbeat_interval(LOCK_LEASE_DEFAULT_SECONDS))


class SqliteCoordination(SqliteConnections):
    # -- locks ----------------------------------------------------------------------------------
    def _lock_row(self, conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
        return conn.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE name = ?", (name,)).fetchone()

    def acquire_lock(self, name: str, owner: str, lease_seconds: float, *, takeover_rvn: str | None = None,
                     now: float | None = None) -> Lease | None:
        seconds = _check_lease_seconds(lease_seconds)
        if not name or not owner:
            raise InvalidInputError(f"lock name and owner must be non-empty (name={name!r}, "
                                    f"owner={owner!r})")
        at = holder_time(time.time() if now is None else now)
        with self._write(f"acquiring lock {name!r}") as conn:
            row = self._lock_row(conn, name)
            held = _lease_of(name, row)
            if held is not None and (takeover_rvn is None or held.rvn != takeover_rvn):
                return None
            # The token counter survives release, so tokens increase across every acquisition.
            token = (row["fencing_token"] if row is not None else 0) + 1
            lease = Lease(name=name, owner=owner, fencing_token=token, rvn=new_rvn(), lease_seconds=seconds,
                          heartbeat_seconds=heartbeat_interval(seconds), acquired_at=at, heartbeat_at=at)
            conn.execute(
                "INSERT INTO locks (name, owner, fencing_token, rvn, record, expires_at) "
                "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "fencing_token = excluded.fencing_token, rvn = excluded.rvn, record = excluded.record",
                (name, owner, token, lease.rvn, lease.model_dump_json()))
        return lease

    def heartbeat(self, lease: Lease, *, now: float | None = None) -> Lease:
        at = holder_time(time.time() if now is None else now)
        with self._write(f"renewing lock {lease.name!r}") as conn:
            if not _holds(self._lock_row(conn, lease.name), lease):
                raise LockLostError(f"lock {lease.name!r} is no longer held by {lease.owner!r} "
                                    f"(token {lease.fencing_token}); stop writing")
            renewed = lease.model_copy(update={"rvn": new_rvn(), "heartbeat_at": at})
            conn.execute("UPDATE locks SET rvn = ?, record = ? WHERE name = ?",
                         (renewed.rvn, renewed.model_dump_json(), lease.name))
        return renewed

    def release_lock(self, lease: Lease) -> bool:
        with self._write(f"releasing lock {lease.name!r}") as conn:
            changed = conn.execute(
                "UPDATE locks SET owner = NULL, rvn = ?, record = NULL "
                "WHERE name = ? AND owner = ? AND fencing_token = ?",
                (new_rvn(), lease.name, lease.owner, lease.fencing_token)).rowcount
        return changed == 1

    def current_lease(self, name: str) -> Lease | None:
        with self._read(f"reading lock {name!r}") as conn:
            return _lease_of(name, self._lock_row(conn, name))

    def break_lock(self, name: str, *, by: str, rvn: str | None = None, fencing_token: int | None = None,
                   now: float | None = None) -> bool:
        if (rvn is None) == (fencing_token is None):
            raise InvalidInputError("break_lock: give one of rvn (watched) and fencing_token (forced)")
        with self._write(f"breaking lock {name!r} for {by}") as conn:
            held = _lease_of(name, self._lock_row(conn, name))
            if held is None or (rvn is not None and held.rvn != rvn) or (
                    fencing_token is not None and held.fencing_token != fencing_token):
                return False
            conn.execute("UPDATE locks SET owner = NULL, rvn = ?, record = NULL WHERE name = ?",
                         (new_rvn(), name))
        return True

    def note_lock_wait(self, name: str, waiter: str, rvn: str) -> int:
        with self._write(f"noting a wait on lock {name!r}") as conn:
            row = conn.execute("SELECT rvn, waits FROM lock_waits WHERE name = ? AND waiter = ?",
                               (name, waiter)).fetchone()
            seen = row["waits"] if row is not None and row["rvn"] == rvn else 0
            conn.execute("INSERT OR REPLACE INTO lock_waits (name, waiter, rvn, waits) VALUES (?, ?, ?, ?)",
                         (name, waiter, rvn, seen + 1))
        return seen

    def forget_lock_wait(self, name: str, waiter: str) -> None:
        with self._write(f"forgetting a wait on lock {name!r}") as conn:
            conn.execute("DELETE FROM lock_waits WHERE name = ? AND waiter = ?", (name, waiter))

    # -- published snapshot pointer -------------------------------------------------------------
    # A staging pointer ("lines+<id>", ports.SnapshotLedger) is one more key of the same two tables.
    def get_published(self, database: str, *, pointer: str | None = None) -> SnapshotVersion | None:
        key = pointer or database
        with self._read(f"reading the published version of {key!r}") as conn:
            row = conn.execute(
                "SELECT v.record FROM published p JOIN versions v "
                "ON v.database = p.database AND v.version = p.version WHERE p.database = ?",
                (key,)).fetchone()
        return None if row is None else SnapshotVersion.model_validate_json(row["record"])

    def publish_version(self, version: SnapshotVersion, *, expected_current: str | None,
                        lease: Lease, pointer: str | None = None) -> None:
        database = version.database
        key = pointer or database
        with self._write(f"publishing {key!r} version {version.version!r}") as conn:
            row = self._lock_row(conn, database)
            if lease.name != database or not _holds(row, lease):
                current_token = row["fencing_token"] if row is not None else None
                raise StaleFencingTokenError(
                    f"publish of {key!r} version {version.version!r} refused: lease "
                    f"{lease.name!r}/{lease.owner!r} token {lease.fencing_token} is not the current "
                    f"holder of lock {database!r} (current token {current_token})")
            current_row = conn.execute("SELECT version FROM published WHERE database = ?", (key,)).fetchone()
            current = current_row["version"] if current_row is not None else None
            if current != expected_current:
                raise PointerConflictError(
                    f"publish of {key!r} version {version.version!r} refused: the published "
                    f"version is {current!r}, expected {expected_current!r}")
            conn.execute("INSERT OR REPLACE INTO versions (database, version, published_at, record) "
                         "VALUES (?, ?, ?, ?)",
                         (key, version.version, version.published_at, version.model_dump_json()))
            conn.execute("INSERT OR REPLACE INTO published (database, version) VALUES (?, ?)",
                         (key, version.version))

    def list_versions(self, database: str, *, pointer: str | None = None) -> list[SnapshotVersion]:
        key = pointer or database
        with self._read(f"listing versions of {key!r}") as conn:
            rows = conn.execute("SELECT record FROM versions WHERE database = ? "
                                "ORDER BY published_at DESC, version DESC", (key,)).fetchall()
        return [SnapshotVersion.model_validate_json(row["record"]) for row in rows]

    def forget_version(self, database: str, version: str, *, pointer: str | None = None) -> None:
        key = pointer or database
        with self._write(f"forgetting {key!r} version {version!r}") as conn:
            current = conn.execute("SELECT version FROM published WHERE database = ?", (key,)).fetchone()
            if current is not None and current["version"] == version:
                raise InvalidInputError(
                    f"cannot forget {key!r} version {version!r}: it is the published version")
            conn.execute("DELETE FROM versions WHERE database = ? AND version = ?", (key, version))

    def forget_pointer(self, pointer: str) -> None:
        check_staging_pointer(pointer)
        with self._write(f"forgetting pointer {pointer!r}") as conn:
            conn.execute("DELETE FROM published WHERE database = ?", (pointer,))
            conn.execute("DELETE FROM versions WHERE database = ?", (pointer,))

    # -- model migrations (issue 19) ------------------------------------------------------------
    def get_migration(self, kind: ItemKind) -> MigrationRecord | None:
        with self._read(f"reading the migration of {kind}") as conn:
            row = conn.execute("SELECT record FROM migrations WHERE kind = ?",
                               (ItemKind(kind).value,)).fetchone()
        return None if row is None else MigrationRecord.model_validate_json(row["record"])

    def save_migration(self, record: MigrationRecord, *, expected_state: MigrationState | None) -> None:
        with self._write(f"saving the migration of {record.kind}") as conn:
            row = conn.execute("SELECT state FROM migrations WHERE kind = ?", (record.kind.value,)).fetchone()
            state = MigrationState(row["state"]) if row is not None else None
            if not migration_state_matches(state, expected_state):
                raise PointerConflictError(f"migration of {record.kind.value} is {state}, expected "
                                           f"{expected_state}: someone else moved it on")
            conn.execute("INSERT OR REPLACE INTO migrations (kind, state, record) VALUES (?, ?, ?)",
                         (record.kind.value, record.state.value, record.model_dump_json()))
