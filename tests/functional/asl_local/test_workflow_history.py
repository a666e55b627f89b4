"""Executions and their history, kept in the SQLite ledger and shaped like the AWS API."""

from __future__ import annotations

import json

import pytest
from workflow_toys import ConcurrencyProbe, add, fixture, make_engine

from asl_local.engine import execution_arn, state_machine_arn
from asl_local.errors import ExecutionAlreadyExists, InvalidName
from asl_local.history import to_aws_history, to_describe_execution
from asl_local.store import ExecutionRecord, ExecutionStatus


def test_history_reads_like_get_execution_history():
    engine, ledger, _ = make_engine({"add": add})
    record = engine.start_execution("line", fixture("task_paths"), "hist",
                                    {"numbers": {"left": 1, "right": 2}})

    events = to_aws_history(ledger.get_events(record.execution_arn))["events"]

    assert [e["type"] for e in events] == [
        "ExecutionStarted", "TaskStateEntered", "LambdaFunctionScheduled", "LambdaFunctionStarted",
        "LambdaFunctionSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert [e["id"] for e in events] == list(range(1, 8))
    # AWS links the first state's event to 0, not to ExecutionStarted (issue 14, case 12).
    assert [e["previousEventId"] for e in events] == [0, 0, 2, 3, 4, 5, 6]
    entered = events[1]["stateEnteredEventDetails"]
    assert (entered["name"], json.loads(entered["input"])) == ("Add", {"numbers": {"left": 1, "right": 2}})
    scheduled = events[2]["lambdaFunctionScheduledEventDetails"]  # a function ARN: Lambda* events, as AWS
    assert scheduled["resource"] == "arn:aws:lambda:us-east-1:000000000000:function:add"
    assert json.loads(scheduled["input"]) == {"a": 1, "b": 2, "label": "sum"}
    assert "lambdaFunctionStartedEventDetails" not in events[3]
    assert json.loads(events[4]["lambdaFunctionSucceededEventDetails"]["output"])["sum"] == 3
    assert events[5]["stateExitedEventDetails"]["name"] == "Add"
    assert events[6]["executionSucceededEventDetails"]["output"] == record.output
    assert all(isinstance(e["timestamp"], float) for e in events)


def test_map_iterations_are_recorded_with_their_index():
    engine, ledger, _ = make_engine({"probe": ConcurrencyProbe(limit=2, total=2)})
    record = engine.start_execution("line", fixture("map_concurrency"), "maphist",
                                    {"run_id": "r", "jobs": ["a", "b"]})

    events = to_aws_history(ledger.get_events(record.execution_arn))["events"]

    started = [e["mapIterationStartedEventDetails"] for e in events if e["type"] == "MapIterationStarted"]
    assert sorted(d["index"] for d in started) == [0, 1]
    assert {d["name"] for d in started} == {"FanOut"}
    map_started = next(e for e in events if e["type"] == "MapStateStarted")
    assert map_started["mapStateStartedEventDetails"] == {"length": 2}
    types = [e["type"] for e in events]
    assert types.count("MapIterationSucceeded") == 2
    last_iteration = max(i for i, t in enumerate(types) if t == "MapIterationSucceeded")
    assert types.index("MapStateSucceeded") > last_iteration


def test_describe_execution_is_aws_shaped_for_success_and_failure():
    engine, ledger, _ = make_engine({"add": add})
    ok = engine.start_execution("word-ingest", fixture("task_paths"), "ok",
                                {"numbers": {"left": 1, "right": 1}})
    bad = engine.start_execution("word-ingest", fixture("choice_no_default"), "bad", {"count": 0})

    described_ok = to_describe_execution(ledger.get_execution(ok.execution_arn))
    described_bad = engine.describe_execution("bad")

    assert described_ok["executionArn"] == "arn:aws:states:us-east-1:123456789012:execution:word-ingest:ok"
    assert described_ok["stateMachineArn"] == "arn:aws:states:us-east-1:123456789012:stateMachine:word-ingest"
    assert described_ok["status"] == "SUCCEEDED"
    assert json.loads(described_ok["output"])["result"]["total"] == 2
    assert described_ok["stopDate"] >= described_ok["startDate"]
    assert "error" not in described_ok
    assert described_bad["status"] == "FAILED"
    assert described_bad["error"] == "States.NoChoiceMatched"
    assert "output" not in described_bad
    assert bad.execution_arn.endswith(":bad")


def test_an_execution_name_runs_once():
    engine, _, _ = make_engine({"add": add})
    engine.start_execution("line", fixture("task_paths"), "once", {"numbers": {"left": 1, "right": 1}})

    with pytest.raises(ExecutionAlreadyExists):
        engine.start_execution("line", fixture("task_paths"), "once", {"numbers": {"left": 1, "right": 1}})


def test_a_running_execution_started_again_with_identical_input_is_returned_as_it_is():
    engine, store, _ = make_engine({"add": add})
    running = ExecutionRecord(execution_arn=execution_arn("adder", "in-flight"), name="in-flight",
                              state_machine_arn=state_machine_arn("adder"), status=ExecutionStatus.RUNNING,
                              start_date=1.0, input='{"a": 1}')
    assert store.create_execution(running) is None

    again = engine.start_execution("adder", fixture("task_paths"), "in-flight", {"a": 1})

    assert again == running and store.get_events(running.execution_arn) == []
    with pytest.raises(ExecutionAlreadyExists, match="in-flight"):
        engine.start_execution("adder", fixture("task_paths"), "in-flight", {"a": 2})


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 81])
def test_invalid_execution_names_are_refused(name):
    engine, ledger, _ = make_engine({})

    with pytest.raises(InvalidName, match="execution name"):
        engine.start_execution("line", fixture("choice_rules"), name, {})
    assert ledger.list_executions() == []
