"""The contract every asl_local ExecutionStore passes: the engine's InMemoryExecutionStore
(tests/unit/asl_local) and the product's ledger adapter over SQLite and DynamoDB (tests/contract).
A test module imports these tests and provides a `store` fixture (a fresh, empty store).
Nothing here imports embedding_ingest: the engine's tests run without it."""

from __future__ import annotations

import dataclasses

from asl_local.engine import execution_arn, state_machine_arn
from asl_local.store import ExecutionRecord, ExecutionStatus, HistoryEvent


def execution(name: str, *, machine: str = "line-ingest", start: float = 1.0) -> ExecutionRecord:
    """A RUNNING execution of `machine` started at `start`."""
    return ExecutionRecord(execution_arn=execution_arn(machine, name), name=name,
                           state_machine_arn=state_machine_arn(machine), status=ExecutionStatus.RUNNING,
                           start_date=start, input='{"receipt": "reçu-é", "n": [1, 2]}')


def test_a_store_creates_an_execution_once_and_finds_it_by_arn_and_by_name(store):
    record = execution("run-1")

    assert store.create_execution(record) is None
    assert store.get_execution(record.execution_arn) == record
    assert store.get_execution("run-1") == record
    assert store.get_execution("run-unknown") is None
    again = dataclasses.replace(record, input="{}", start_date=9.0)
    assert store.create_execution(again) == record  # the one stored; nothing changed
    assert store.get_execution(record.execution_arn) == record


def test_a_store_keeps_every_field_of_a_finished_execution(store):
    record = execution("run-2")
    store.create_execution(record)
    failed = dataclasses.replace(record, status=ExecutionStatus.FAILED, stop_date=5.5, output=None,
                                 error="States.TaskFailed", cause='{"errorMessage": "日本"}')
    store.update_execution(failed)
    assert store.get_execution(record.execution_arn) == failed
    succeeded = dataclasses.replace(record, status=ExecutionStatus.SUCCEEDED, stop_date=6.0,
                                    output='{"ok": true}')
    store.update_execution(succeeded)
    assert store.get_execution("run-2") == succeeded
    assert store.get_execution("run-2").status is ExecutionStatus.SUCCEEDED


def test_a_name_finds_the_newest_execution_of_that_name(store):
    older, newer = execution("same", machine="a", start=1.0), execution("same", machine="b", start=2.0)
    store.create_execution(newer)
    store.create_execution(older)

    assert store.get_execution("same") == newer
    assert store.get_execution(older.execution_arn) == older


def test_a_store_returns_each_history_oldest_first(store):
    a, b = execution("a"), execution("b")
    store.create_execution(a)
    store.create_execution(b)
    events = [HistoryEvent(id=1, previous_event_id=0, timestamp=1.0, type="ExecutionStarted",
                           details={"input": "{}", "inputDetails": {"truncated": False}}),
              HistoryEvent(id=2, previous_event_id=0, timestamp=1.5, type="TaskStateEntered",
                           details={"name": "reçu", "input": '{"n": [1, 2]}'}),
              HistoryEvent(id=3, previous_event_id=2, timestamp=2.0, type="TaskStateExited")]

    store.append_events(a.execution_arn, events[:2])
    store.append_events(a.execution_arn, events[2:])
    store.append_events(b.execution_arn, events[:1])

    assert store.get_events(a.execution_arn) == events
    assert store.get_events(b.execution_arn) == events[:1]
    assert store.get_events(execution("never-created").execution_arn) == []
