"""Where the engine keeps executions and their history: the `ExecutionStore` protocol, the records it
speaks in, and `InMemoryExecutionStore`.

The records carry what DescribeExecution and GetExecutionHistory return (epoch seconds instead of
datetimes); history.py shapes them as AWS's JSON. A caller with a database of its own implements the
five methods of `ExecutionStore` over it (an adapter), so that its executions survive the process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class ExecutionStatus(StrEnum):
    """DescribeExecution's `status` (PENDING_REDRIVE never happens here: the engine does not redrive)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One execution, shaped like DescribeExecution: `input`/`output` are JSON texts, dates epoch
    seconds, `error`/`cause` set when it did not succeed."""

    execution_arn: str
    name: str
    state_machine_arn: str
    status: ExecutionStatus
    start_date: float
    stop_date: float | None = None
    input: str = "{}"
    output: str | None = None
    error: str | None = None
    cause: str | None = None

    @property
    def state_machine_name(self) -> str:
        """The last part of `state_machine_arn` (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)."""
        return self.state_machine_arn.rsplit(":", 1)[-1]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One GetExecutionHistory event: `details` goes under the event's `{camelType}EventDetails` key."""

    id: int
    previous_event_id: int
    timestamp: float
    type: str
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class ExecutionStore(Protocol):
    """What the engine needs of a store. Implementations must be safe to call from several threads
    (Map iterations and Parallel branches record events concurrently, and a flusher thread writes them)."""

    def create_execution(self, record: ExecutionRecord) -> ExecutionRecord | None:
        """Store `record` if no execution has its `execution_arn`; return None when stored, or the
        execution already stored under that arn (nothing is changed then)."""

    def update_execution(self, record: ExecutionRecord) -> None:
        """Replace the stored execution of `record.execution_arn` (its final status, output, ...)."""

    def get_execution(self, name_or_arn: str) -> ExecutionRecord | None:
        """The execution with this arn; for a plain name, the newest execution of that name. None if
        there is none."""

    def append_events(self, execution_arn: str, events: Sequence[HistoryEvent]) -> None:
        """Add `events` to the history of `execution_arn` (the engine appends them in id order)."""

    def get_events(self, execution_arn: str) -> list[HistoryEvent]:
        """The history of `execution_arn` by event id, oldest first (empty for an unknown arn)."""


class InMemoryExecutionStore:
    """An `ExecutionStore` in this process's memory (thread-safe): for tests, scripts and one-off runs
    whose history need not outlive the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: dict[str, ExecutionRecord] = {}
        self._events: dict[str, list[HistoryEvent]] = {}

    def create_execution(self, record: ExecutionRecord) -> ExecutionRecord | None:
        with self._lock:
            existing = self._executions.get(record.execution_arn)
            if existing is None:
                self._executions[record.execution_arn] = record
                self._events[record.execution_arn] = []
            return existing

    def update_execution(self, record: ExecutionRecord) -> None:
        with self._lock:
            self._executions[record.execution_arn] = record

    def get_execution(self, name_or_arn: str) -> ExecutionRecord | None:
        with self._lock:
            found = self._executions.get(name_or_arn)
            if found is not None:
                return found
            named = [record for record in self._executions.values() if record.name == name_or_arn]
        return max(named, key=lambda record: (record.start_date, record.execution_arn), default=None)

    def list_executions(self) -> list[ExecutionRecord]:
        """Every execution, newest first (not part of ExecutionStore: a convenience of this store)."""
        with self._lock:
            records = list(self._executions.values())
        return sorted(records, key=lambda record: (record.start_date, record.execution_arn), reverse=True)

    def append_events(self, execution_arn: str, events: Sequence[HistoryEvent]) -> None:
        with self._lock:
            self._events.setdefault(execution_arn, []).extend(events)

    def get_events(self, execution_arn: str) -> list[HistoryEvent]:
        with self._lock:
            return sorted(self._events.get(execution_arn, ()), key=lambda event: event.id)
