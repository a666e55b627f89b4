"""Function logs kept locally as CloudWatch Logs keeps a Lambda's: one log group per function, named
as on AWS (`/aws/lambda/<function>-<stage>`, https://docs.aws.amazon.com/lambda/latest/dg/
monitoring-cloudwatchlogs.html), streams `YYYY/MM/DD/[$LATEST]<environment id>`, events of
(timestamp ms, message), searched with FilterLogEvents' parameters and answered in its response shape
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html).

One SQLite file in the workspace (`logs.sqlite3`), apart from the ledger so log writes never wait on
it; worker processes write to it too (WAL). Events older than the retention (LOG_RETENTION_DAYS, 30
as the deployed log groups) are deleted when a store is opened for reading.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.log_filter import compile_filter_pattern

LOG_DATABASE = "logs.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_groups (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, log_group TEXT NOT NULL, log_stream TEXT NOT NULL,
  timestamp_ms INTEGER NOT NULL, ingestion_ms INTEGER NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_events_by_group ON log_events (log_group, timestamp_ms, id);
"""


class ResourceNotFoundException(InvalidInputError):  # noqa: N818 - CloudWatch Logs' error code
    """FilterLogEvents on a group that does not exist; `suggestion` is the closest group there is
    (or would be), named in the message."""

    def __init__(self, group: str, known: Sequence[str]) -> None:
        close = difflib.get_close_matches(group, list(known), n=1, cutoff=0.6)
        self.group = group
        self.suggestion = close[0] if close else None
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        super().__init__(f"The specified log group does not exist: {group}{hint}")


class InvalidTokenError(InvalidInputError):
    """A --starting-token this store did not hand out."""


def log_group_name(function_name: str, stage: str | None) -> str:
    """/aws/lambda/embedding-vector-compact-dev: the function's group, with `-STAGE` as deployed
    (aws/deploy/template.py names functions `{name}-{Stage}`)."""
    return f"/aws/lambda/{function_name}" + (f"-{stage}" if stage else "")


def _token(group: str, after_id: int) -> str:
    raw = json.dumps({"group": group, "after": after_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(group: str, token: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if decoded["group"] == group and isinstance(decoded["after"], int):
            return decoded["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise InvalidTokenError(f"--starting-token {token!r} was not returned for log group {group}")


class LocalLogStore:
    """The workspace's function logs (see the module's docstring). `now` gives epoch seconds (tests
    pass their own to check the retention)."""

    def __init__(self, path: Path, *, retention_days: int = 30, now: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self._now = now
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            self._local.connection = connection
        return connection

    def put_events(self, group: str, stream: str, events: Iterable[tuple[int, str]]) -> None:
        """Append (timestamp in ms, message) events to `stream` of `group`, creating the group."""
        rows = list(events)
        now_ms = int(self._now() * 1000)
        connection = self._connection()
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT OR IGNORE INTO log_groups VALUES (?, ?)", (group, now_ms))
            connection.executemany(
                "INSERT INTO log_events (log_group, log_stream, timestamp_ms, ingestion_ms, message) "
                "VALUES (?, ?, ?, ?, ?)", [(group, stream, ts, now_ms, message) for ts, message in rows])

    def prune(self) -> int:
        """Delete the events older than the retention; returns how many went."""
        cutoff = int((self._now() - self.retention_days * 86_400) * 1000)
        with self._connection() as connection:
            return connection.execute("DELETE FROM log_events WHERE timestamp_ms < ?", (cutoff,)).rowcount

    def groups(self) -> list[str]:
        """Every log group, by name."""
        if not self.path.exists():
            return []
        return [row[0] for row in self._connection().execute("SELECT name FROM log_groups ORDER BY name")]

    def filter_log_events(self, group: str, *, filter_pattern: str | None = None,
                          start_time: int | None = None, end_time: int | None = None,
                          stream_names: Sequence[str] | None = None, stream_prefix: str | None = None,
                          limit: int | None = None, next_token: str | None = None,
                          candidates: Sequence[str] = ()) -> dict[str, Any]:
        """FilterLogEvents: events of `group` matching `filter_pattern`, oldest first, between
        `start_time` and `end_time` (ms since the epoch, inclusive), at most `limit` (then a
        `nextToken` continues). Raises ResourceNotFoundException (suggesting the closest of the groups
        there are and `candidates`), InvalidFilterPatternError, InvalidTokenError."""
        known = self.groups()
        if group not in known:
            raise ResourceNotFoundException(group, sorted({*known, *candidates}))
        matches = compile_filter_pattern(filter_pattern)
        self.prune()
        sql = "SELECT id, log_stream, timestamp_ms, ingestion_ms, message FROM log_events WHERE log_group = ?"
        params: list[Any] = [group]
        for clause, value in (("timestamp_ms >= ?", start_time), ("timestamp_ms <= ?", end_time),
                              ("id > ?", _after(group, next_token) if next_token else None)):
            if value is not None:
                sql += f" AND {clause}"
                params.append(value)
        if stream_names:
            sql += f" AND log_stream IN ({', '.join('?' * len(stream_names))})"
            params += list(stream_names)
        if stream_prefix:
            sql += " AND substr(log_stream, 1, ?) = ?"
            params += [len(stream_prefix), stream_prefix]
        events: list[dict[str, Any]] = []
        streams: set[str] = set()
        token = None
        for row_id, stream, timestamp, ingestion, message in self._connection().execute(
                sql + " ORDER BY timestamp_ms, id", params):
            streams.add(stream)
            if not matches(message):
                continue
            if limit is not None and len(events) == limit:
                token = _token(group, events[-1]["_id"])
                break
            events.append({"_id": row_id, "logStreamName": stream, "timestamp": timestamp, "message": message,
                           "ingestionTime": ingestion, "eventId": f"{timestamp:d}{row_id:020d}"})
        result: dict[str, Any] = {
            "events": [{k: v for k, v in e.items() if k != "_id"} for e in events],
            "searchedLogStreams": [{"logStreamName": s, "searchedCompletely": token is None}
                                   for s in sorted(streams)]}
        if token:
            result["nextToken"] = token
        return result
