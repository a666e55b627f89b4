"""InMemoryExecutionStore passes the ExecutionStore contract (tests/support/execution_store_contract.py)."""

from __future__ import annotations

import pytest
from execution_store_contract import (  # noqa: F401 - the contract's tests run here
    execution,
    test_a_name_finds_the_newest_execution_of_that_name,
    test_a_store_creates_an_execution_once_and_finds_it_by_arn_and_by_name,
    test_a_store_keeps_every_field_of_a_finished_execution,
    test_a_store_returns_each_history_oldest_first,
)

from asl_local.store import ExecutionStore, InMemoryExecutionStore


@pytest.fixture
def store() -> InMemoryExecutionStore:
    return InMemoryExecutionStore()


def test_the_in_memory_store_is_an_execution_store_and_lists_newest_first(store):
    assert isinstance(store, ExecutionStore)
    for name, start in [("first", 1.0), ("third", 3.0), ("second", 2.0)]:
        store.create_execution(execution(name, start=start))
    assert [record.name for record in store.list_executions()] == ["third", "second", "first"]
