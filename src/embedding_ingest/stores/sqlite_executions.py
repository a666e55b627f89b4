"""The SQLite ledger's workflow executions and their history events (ExecutionLedger)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.stores.exceptions import ExecutionAlreadyExistsError
from embedding_ingest.stores.records import ExecutionRecord, ExecutionStatus, HistoryEvent
from embedding_ingest.stores.sqlite_base import SqliteConnections, filtered_select


class SqliteExecutions(SqliteConnections):
    def create_execution(self, record: ExecutionRecord) -> None:
        with self._write(f"creating execution {record.execution_arn!r}") as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO executions "
                "(execution_arn, name, workflow, status, start_date, record) VALUES (?, ?, ?, ?, ?, ?)",
                (record.execution_arn, record.name, record.workflow, record.status.value,
                 record.start_date, record.model_dump_json())).rowcount
        if inserted != 1:
            raise ExecutionAlreadyExistsError(f"execution already exists: {record.execution_arn!r}")

    def update_execution(self, record: ExecutionRecord) -> None:
        with self._write(f"updating execution {record.execution_arn!r}") as conn:
            changed = conn.execute(
                "UPDATE executions SET name = ?, workflow = ?, status = ?, start_date = ?, record = ? "
                "WHERE execution_arn = ?",
                (record.name, record.workflow, record.status.value, record.start_date,
                 record.model_dump_json(), record.execution_arn)).rowcount
        if changed != 1:
            raise InvalidInputError(f"cannot update unknown execution {record.execution_arn!r}")

    def get_execution(self, name_or_arn: str) -> ExecutionRecord | None:
        with self._read(f"reading execution {name_or_arn!r}") as conn:
            row = conn.execute("SELECT record FROM executions WHERE execution_arn = ?",
                               (name_or_arn,)).fetchone()
            if row is None:  # a name: the newest execution carrying it
                row = conn.execute("SELECT record FROM executions WHERE name = ? "
                                   "ORDER BY start_date DESC, execution_arn DESC LIMIT 1",
                                   (name_or_arn,)).fetchone()
        return None if row is None else ExecutionRecord.model_validate_json(row["record"])

    def list_executions(self, *, workflow: str | None = None, status: ExecutionStatus | None = None,
                        limit: int | None = None) -> list[ExecutionRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if workflow is not None:
            clauses.append("workflow = ?")
            params.append(workflow)
        if status is not None:
            clauses.append("status = ?")
            params.append(ExecutionStatus(status).value)
        sql, params = filtered_select("executions", clauses, params,
                                      order_by="start_date DESC, execution_arn DESC", limit=limit)
        with self._read("listing executions") as conn:
            rows = conn.execute(sql, params).fetchall()
        return [ExecutionRecord.model_validate_json(row["record"]) for row in rows]

    def append_events(self, execution_arn: str, events: Sequence[HistoryEvent]) -> None:
        # Event ids are unique per execution; re-appending the same event (a rerun) keeps the first.
        with self._write(f"appending events of {execution_arn!r}") as conn:
            conn.executemany("INSERT OR IGNORE INTO events (execution_arn, id, record) VALUES (?, ?, ?)",
                             [(execution_arn, event.id, event.model_dump_json()) for event in events])

    def get_events(self, execution_arn: str) -> list[HistoryEvent]:
        with self._read(f"reading events of {execution_arn!r}") as conn:
            rows = conn.execute("SELECT record FROM events WHERE execution_arn = ? ORDER BY id",
                                (execution_arn,)).fetchall()
        return [HistoryEvent.model_validate_json(row["record"]) for row in rows]
