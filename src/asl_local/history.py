"""Execution history: events recorded while a run goes (ids, previousEventId, AWS detail keys), kept
in the ExecutionStore, and the AWS-shaped JSON of GetExecutionHistory / DescribeExecution."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from asl_local.errors import STATES_RUNTIME, StatesFailure
from asl_local.limits import MAX_HISTORY_EVENTS
from asl_local.store import ExecutionRecord, ExecutionStore, HistoryEvent

TERMINAL_EVENT_TYPES = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted",
                                  "ExecutionTimedOut"})


class HistoryRecorder:
    """Assigns event ids (thread-safe: Map iterations record concurrently) and appends events to the
    store in small batches. Past the history quota the run fails, like AWS; the closing event is
    always recorded so the history says why.

    With `flush_seconds`, a daemon thread also flushes whatever is pending at that interval, so a reader
    of the store (a UI polling it) sees a running execution's events within about that long, even while a task
    blocks. `close()` stops it and flushes the rest."""

    def __init__(self, store: ExecutionStore, execution_arn: str, *, clock: Callable[[], float],
                 max_events: int = MAX_HISTORY_EVENTS, flush_every: int = 200,
                 flush_seconds: float | None = None) -> None:
        self._store = store
        self._arn = execution_arn
        self._clock = clock
        self._max_events = max_events
        self._flush_every = flush_every
        self._lock = threading.Lock()
        self._pending: list[HistoryEvent] = []
        self._last_id = 0
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if flush_seconds:
            self._flusher = threading.Thread(target=self._flush_periodically, args=(flush_seconds,),
                                             name=f"history-flush-{execution_arn[-20:]}", daemon=True)
            self._flusher.start()

    @property
    def count(self) -> int:
        return self._last_id

    def record(self, event_type: str, details: dict[str, Any] | None = None, *,
               previous: int | None = None) -> int:
        """Record one event; `previous` is the event this one follows (default: the latest)."""
        with self._lock:
            # Keep one slot free for the closing event.
            if event_type not in TERMINAL_EVENT_TYPES and self._last_id >= self._max_events - 1:
                raise StatesFailure(
                    STATES_RUNTIME,
                    f"The execution reached the maximum number of history events ({self._max_events}).",
                    catchable=False)
            self._last_id += 1
            event = HistoryEvent(id=self._last_id,
                                 previous_event_id=self._last_id - 1 if previous is None else previous,
                                 timestamp=self._clock(), type=event_type, details=details or {})
            self._pending.append(event)
            if len(self._pending) >= self._flush_every:
                self._flush_locked()
            return event.id

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Stop the periodic flusher (if any) and write every pending event."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        self.flush()

    def _flush_periodically(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - events stay pending; close() retries and raises
                continue

    def _flush_locked(self) -> None:
        if self._pending:
            self._store.append_events(self._arn, self._pending)
            self._pending = []


def details_key(event_type: str) -> str:
    """AWS puts the details of every *StateEntered/*StateExited event under one shared key."""
    if event_type.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if event_type.endswith("StateExited"):
        return "stateExitedEventDetails"
    return event_type[0].lower() + event_type[1:] + "EventDetails"


def to_aws_event(event: HistoryEvent) -> dict[str, Any]:
    shaped: dict[str, Any] = {"timestamp": event.timestamp, "type": event.type, "id": event.id,
                              "previousEventId": event.previous_event_id}
    if event.details:
        shaped[details_key(event.type)] = dict(event.details)
    return shaped


def to_aws_history(events: Iterable[HistoryEvent]) -> dict[str, Any]:
    """GetExecutionHistory's response body (timestamps as epoch seconds, as in AWS's JSON protocol)."""
    return {"events": [to_aws_event(event) for event in events]}


def to_describe_execution(record: ExecutionRecord) -> dict[str, Any]:
    """DescribeExecution's response body; absent fields are omitted as AWS does."""
    shaped: dict[str, Any] = {
        "executionArn": record.execution_arn,
        "stateMachineArn": record.state_machine_arn,
        "name": record.name,
        "status": record.status.value,
        "startDate": record.start_date,
        "input": record.input,
        "inputDetails": {"included": True},
    }
    if record.stop_date is not None:
        shaped["stopDate"] = record.stop_date
    if record.output is not None:
        shaped["output"] = record.output
        shaped["outputDetails"] = {"included": True}
    if record.error is not None:
        shaped["error"] = record.error
    if record.cause is not None:
        shaped["cause"] = record.cause
    return shaped
