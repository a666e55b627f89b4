"""The product's ledger, adapted to the engine's store protocol (pipeline.engine_store), passes the
ExecutionStore contract on every Ledger (SQLite, DynamoDB on moto), and what the engine stores reads
back through the ledger as the product's records (describe-execution, list-executions, the console)."""

from __future__ import annotations

import pytest
from execution_store_contract import (  # noqa: F401 - the contract's tests run here
    execution,
    test_a_name_finds_the_newest_execution_of_that_name,
    test_a_store_creates_an_execution_once_and_finds_it_by_arn_and_by_name,
    test_a_store_keeps_every_field_of_a_finished_execution,
    test_a_store_returns_each_history_oldest_first,
)

from asl_local.store import ExecutionStore, HistoryEvent
from embedding_ingest.pipeline.engine_store import (
    LedgerExecutionStore,
    describe_execution,
    execution_history,
    to_engine_record,
)
from embedding_ingest.stores.ports import Ledger
from embedding_ingest.stores.records import ExecutionStatus


@pytest.fixture
def store(ledger: Ledger) -> LedgerExecutionStore:
    return LedgerExecutionStore(ledger)


def test_an_execution_the_engine_stores_is_the_ledgers_record_of_its_workflow(ledger: Ledger, store):
    assert isinstance(store, ExecutionStore)
    line, custom = execution("l1", machine="line-ingest"), execution("c1", machine="fan-out", start=2.0)
    store.create_execution(line)
    store.create_execution(custom)
    store.append_events(line.execution_arn, [HistoryEvent(id=1, previous_event_id=0, timestamp=1.0,
                                                          type="ExecutionStarted", details={"input": "{}"})])

    stored = ledger.get_execution("l1")
    assert (stored.workflow, stored.status) == ("line", ExecutionStatus.RUNNING)
    assert to_engine_record(stored) == line
    assert [r.name for r in ledger.list_executions(workflow="line")] == ["l1"]
    assert [r.name for r in ledger.list_executions(workflow="fan-out")] == ["c1"]
    assert describe_execution(stored)["stateMachineArn"].endswith(":stateMachine:line-ingest")
    assert execution_history(ledger.get_events(line.execution_arn)) == {"events": [
        {"timestamp": 1.0, "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
         "executionStartedEventDetails": {"input": "{}"}}]}
