"""Reusing an execution name of our workflows behaves as StartExecution, through the ledger: the same
name and identical input while that execution runs returns it; a closed execution or different input
is ExecutionAlreadyExistsError (the engine's ExecutionAlreadyExists, as the product raises it)."""

from __future__ import annotations

import pytest
from pipeline import make_workspace

from asl_local.clock import RealClock
from asl_local.engine.runner import execution_arn, state_machine_arn
from asl_local.invokers import InProcessInvoker
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine, state_machine_name
from embedding_ingest.stores.exceptions import ExecutionAlreadyExistsError
from embedding_ingest.stores.records import ExecutionRecord, ExecutionStatus


@pytest.fixture
def engine(tmp_path):
    ws = make_workspace(tmp_path)
    return WorkflowEngine(ws.ledger, InProcessInvoker(ws.handlers()),
                          clock=RealClock(sleep_function=lambda _s: None))


def _running(engine: WorkflowEngine, name: str, raw_input: str) -> ExecutionRecord:
    machine = state_machine_name("line")
    record = ExecutionRecord(execution_arn=execution_arn(machine, name), name=name,
                             state_machine_arn=state_machine_arn(machine), workflow="line",
                             status=ExecutionStatus.RUNNING, start_date=1.0, input=raw_input)
    engine.ledger.create_execution(record)
    return record


def test_same_name_and_identical_input_while_running_returns_the_running_execution(engine):
    running = _running(engine, "in-flight", '{"a": 1}')

    again = engine.start_execution("line", build_definition("line", local_resource_arn), "in-flight",
                                   {"a": 1})

    assert again == running and engine.ledger.get_events(running.execution_arn) == []


def test_different_input_or_a_closed_execution_is_execution_already_exists(engine):
    _running(engine, "in-flight", '{"a": 1}')
    definition = build_definition("line", local_resource_arn)
    closed = engine.start_execution("line", definition, "closed", {})
    assert closed.status is ExecutionStatus.SUCCEEDED

    with pytest.raises(ExecutionAlreadyExistsError):
        engine.start_execution("line", definition, "in-flight", {"a": 2})
    with pytest.raises(ExecutionAlreadyExistsError):
        engine.start_execution("line", definition, "closed", {})
