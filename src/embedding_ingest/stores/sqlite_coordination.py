"""The SQLite ledger's locks with fencing tokens and the published-snapshot pointer
(LockLedger + SnapshotLedger). Every check-then-write runs inside one BEGIN IMMEDIATE transaction,
so the check and the write cannot be separated by another writer (lesson 9)."""

from __future__ import annotations

import sqlite3
import time

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import (
    LockLostError,
    PointerConflictError,
    StaleFencingTokenError,
)
from embedding_ingest.stores.records import Lease, SnapshotVersion
from embedding_ingest.stores.sqlite_base import SqliteConnections


def _check_ttl(ttl_seconds: float) -> float:
    ttl = float(ttl_seconds)
    if not ttl > 0:
        raise InvalidInputError(f"lock ttl_seconds must be positive, got {ttl_seconds!r}")
    return ttl


def _holds(row: sqlite3.Row | None, lease: Lease, now: float) -> bool:
    """Whether `lease` is the lock's current, unexpired holder."""
    return (row is not None and row["owner"] == lease.owner
            and row["fencing_token"] == lease.fencing_token and row["expires_at"] > now)


class SqliteCoordination(SqliteConnections):
    # -- locks ----------------------------------------------------------------------------------
    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> Lease | None:
        ttl = _check_ttl(ttl_seconds)
        if not name or not owner:
            raise InvalidInputError(f"lock name and owner must be non-empty (name={name!r}, "
                                    f"owner={owner!r})")
        with self._write(f"acquiring lock {name!r}") as conn:
            now = time.time()
            row = conn.execute("SELECT owner, fencing_token, expires_at FROM locks WHERE name = ?",
                               (name,)).fetchone()
            if row is not None and row["owner"] is not None and row["expires_at"] > now:
                return None
            # The token counter survives release, so tokens increase across every acquisition.
            token = (row["fencing_token"] if row is not None else 0) + 1
            lease = Lease(name=name, owner=owner, fencing_token=token, expires_at=now + ttl)
            conn.execute(
                "INSERT INTO locks (name, owner, fencing_token, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "fencing_token = excluded.fencing_token, expires_at = excluded.expires_at",
                (name, owner, token, lease.expires_at))
        return lease

    def heartbeat(self, lease: Lease, ttl_seconds: float) -> Lease:
        ttl = _check_ttl(ttl_seconds)
        with self._write(f"extending lock {lease.name!r}") as conn:
            now = time.time()
            row = conn.execute("SELECT owner, fencing_token, expires_at FROM locks WHERE name = ?",
                               (lease.name,)).fetchone()
            if not _holds(row, lease, now):
                raise LockLostError(f"lock {lease.name!r} is no longer held by {lease.owner!r} "
                                    f"(token {lease.fencing_token}); stop writing")
            extended = lease.model_copy(update={"expires_at": now + ttl})
            conn.execute("UPDATE locks SET expires_at = ? WHERE name = ?",
                         (extended.expires_at, lease.name))
        return extended

    def release_lock(self, lease: Lease) -> bool:
        with self._write(f"releasing lock {lease.name!r}") as conn:
            changed = conn.execute(
                "UPDATE locks SET owner = NULL, expires_at = 0 "
                "WHERE name = ? AND owner = ? AND fencing_token = ?",
                (lease.name, lease.owner, lease.fencing_token)).rowcount
        return changed == 1

    def current_lease(self, name: str) -> Lease | None:
        with self._read(f"reading lock {name!r}") as conn:
            row = conn.execute("SELECT owner, fencing_token, expires_at FROM locks WHERE name = ?",
                               (name,)).fetchone()
        if row is None or row["owner"] is None or row["expires_at"] <= time.time():
            return None
        return Lease(name=name, owner=row["owner"], fencing_token=row["fencing_token"],
                     expires_at=row["expires_at"])

    # -- published snapshot pointer -------------------------------------------------------------
    def get_published(self, database: str) -> SnapshotVersion | None:
        with self._read(f"reading the published version of {database!r}") as conn:
            row = conn.execute(
                "SELECT v.record FROM published p JOIN versions v "
                "ON v.database = p.database AND v.version = p.version WHERE p.database = ?",
                (database,)).fetchone()
        return None if row is None else SnapshotVersion.model_validate_json(row["record"])

    def publish_version(self, version: SnapshotVersion, *, expected_current: str | None,
                        lease: Lease) -> None:
        database = version.database
        with self._write(f"publishing {database!r} version {version.version!r}") as conn:
            now = time.time()
            row = conn.execute("SELECT owner, fencing_token, expires_at FROM locks WHERE name = ?",
                               (database,)).fetchone()
            if lease.name != database or not _holds(row, lease, now):
                current_token = row["fencing_token"] if row is not None else None
                raise StaleFencingTokenError(
                    f"publish of {database!r} version {version.version!r} refused: lease "
                    f"{lease.name!r}/{lease.owner!r} token {lease.fencing_token} is not the current "
                    f"unexpired holder of lock {database!r} (current token {current_token})")
            pointer = conn.execute("SELECT version FROM published WHERE database = ?",
                                   (database,)).fetchone()
            current = pointer["version"] if pointer is not None else None
            if current != expected_current:
                raise PointerConflictError(
                    f"publish of {database!r} version {version.version!r} refused: the published "
                    f"version is {current!r}, expected {expected_current!r}")
            conn.execute("INSERT OR REPLACE INTO versions (database, version, published_at, record) "
                         "VALUES (?, ?, ?, ?)",
                         (database, version.version, version.published_at, version.model_dump_json()))
            conn.execute("INSERT OR REPLACE INTO published (database, version) VALUES (?, ?)",
                         (database, version.version))

    def list_versions(self, database: str) -> list[SnapshotVersion]:
        with self._read(f"listing versions of {database!r}") as conn:
            rows = conn.execute("SELECT record FROM versions WHERE database = ? "
                                "ORDER BY published_at DESC, version DESC", (database,)).fetchall()
        return [SnapshotVersion.model_validate_json(row["record"]) for row in rows]

    def forget_version(self, database: str, version: str) -> None:
        with self._write(f"forgetting {database!r} version {version!r}") as conn:
            pointer = conn.execute("SELECT version FROM published WHERE database = ?",
                                   (database,)).fetchone()
            if pointer is not None and pointer["version"] == version:
                raise InvalidInputError(
                    f"cannot forget {database!r} version {version!r}: it is the published version")
            conn.execute("DELETE FROM versions WHERE database = ? AND version = ?", (database, version))
