"""The graph view's model over histories the real local engine records: which state is succeeded,
failed, caught (by a Catch), in progress or not entered, Map iteration counts, and what selecting a
state shows. Small definitions keep each case obvious."""

from __future__ import annotations

import threading
import time

import pytest

from asl_local.clock import RealClock
from asl_local.invokers import InProcessInvoker
from embedding_ingest.console.graph import attribute_visits, execution_graph, state_detail
from embedding_ingest.pipeline.engine_store import WorkflowEngine, execution_history
from embedding_ingest.stores.sqlite_ledger import SqliteLedger

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
NO_WAITS = RealClock(sleep_function=lambda _s: None)  # Retry back-off instant, timestamps real


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


def task(name: str, **more):
    return {"Type": "Task", "Resource": ARN + name, **more}


def run(tmp_path, definition, handlers, name="run-1"):
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    engine = WorkflowEngine(ledger, InProcessInvoker(handlers), clock=NO_WAITS)
    record = engine.start_execution("toy", definition, name, {"items": [1, 2, 3]})
    events = execution_history(ledger.get_events(record.execution_arn))["events"]
    return record, events


def statuses(graph) -> dict[str, str]:
    found = {n["name"]: n["status"] for n in graph["nodes"] if not n["name"].startswith("__")}
    for node in graph["nodes"]:
        if "children" in node:
            found |= statuses(node["children"])
    return found


def event(id_, previous, type_, **details):
    """One history event in the shape GetExecutionHistory returns (details under its *EventDetails)."""
    key = "stateEnteredEventDetails" if type_.endswith("StateEntered") else \
        "stateExitedEventDetails" if type_.endswith("StateExited") else \
        type_[0].lower() + type_[1:] + "EventDetails"
    return {"id": id_, "previousEventId": previous, "type": type_, "timestamp": 0.0,
            **({key: details} if details else {})}


def fails_first(calls=[0]):  # noqa: B006 - a call counter shared by design
    def handler(_payload):
        calls[0] += 1
        if calls[0] == 1:
            raise Flaky("first call fails")
        return {"ok": True}
    return handler


def broken(_payload):
    raise Broken("<b>bad</b> input")


def test_retried_then_succeeded_is_succeeded_and_a_caught_failure_is_caught(tmp_path):
    definition = {"StartAt": "Retried", "States": {
        "Retried": task("flaky", Retry=[{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}], Next="Guarded"),
        "Guarded": task("broken", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Recover",
                                          "ResultPath": "$.error"}], Next="Unreached"),
        "Recover": {"Type": "Pass", "End": True},
        "Unreached": {"Type": "Succeed"}}}
    record, events = run(tmp_path, definition, {"flaky": fails_first([0]), "broken": broken})

    assert record.status.value == "SUCCEEDED"
    graph = execution_graph(definition, events, running=False)
    assert statuses(graph) == {"Retried": "succeeded", "Guarded": "caught", "Recover": "succeeded",
                               "Unreached": "not_entered"}
    catch = next(e for e in graph["edges"] if e["kind"] == "catch")
    assert (catch["from"], catch["to"], catch["label"]) == ("Guarded", "Recover", "Catch States.ALL")
    end = next(n for n in graph["nodes"] if n["name"] == "__end__")
    assert end["status"] == "succeeded"

    detail = state_detail("Guarded", attribute_visits(events), running=False)
    assert detail["status"] == "caught"
    assert detail["error"] == "Broken"
    assert "<b>bad</b> input" in detail["cause"]
    assert [e["type"] for e in detail["events"]] == ["TaskStateEntered", "LambdaFunctionScheduled",
                                                    "LambdaFunctionStarted", "LambdaFunctionFailed",
                                                    "TaskStateExited"]


def test_an_uncaught_failure_fails_the_state_and_choice_branches_are_labelled(tmp_path):
    definition = {"StartAt": "Route", "States": {
        "Route": {"Type": "Choice", "Choices": [{"Variable": "$.items[0]", "NumericEquals": 1,
                                                 "Next": "Work"}], "Default": "Skip"},
        "Skip": {"Type": "Succeed"},
        "Work": task("broken", End=True)}}
    record, events = run(tmp_path, definition, {"broken": broken})

    assert record.status.value == "FAILED"
    graph = execution_graph(definition, events, running=False)
    assert statuses(graph) == {"Route": "succeeded", "Skip": "not_entered", "Work": "failed"}
    labels = {(e["to"], e["label"]) for e in graph["edges"] if e["from"] == "Route"}
    assert labels == {("Work", "$.items[0] == 1"), ("Skip", "Default")}
    assert next(n for n in graph["nodes"] if n["name"] == "__end__")["status"] == "not_entered"
    detail = state_detail("Work", attribute_visits(events), running=False)
    assert (detail["status"], detail["error"]) == ("failed", "Broken")


def test_a_map_counts_its_iterations_and_its_inner_states_their_visits(tmp_path):
    def sometimes(payload):
        if payload == 2:
            raise Broken("item 2")
        return payload

    inner = {"StartAt": "Each", "States": {
        "Each": task("sometimes", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Skipped"}], End=True),
        "Skipped": {"Type": "Pass", "End": True}}}
    definition = {"StartAt": "Fan", "States": {
        "Fan": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": inner, "End": True}}}
    record, events = run(tmp_path, definition, {"sometimes": sometimes})

    assert record.status.value == "SUCCEEDED"
    graph = execution_graph(definition, events, running=False)
    fan = next(n for n in graph["nodes"] if n["name"] == "Fan")
    assert fan["status"] == "succeeded"
    assert fan["map"] == {"iterations": 3, "iterations_started": 3, "iterations_succeeded": 3,
                          "iterations_failed": 0, "iterations_aborted": 0}
    each = next(n for n in fan["children"]["nodes"] if n["name"] == "Each")
    assert (each["status"], each["visits"], each["counts"]["caught"], each["counts"]["succeeded"]) == \
        ("caught", 3, 1, 2)
    detail = state_detail("Each", attribute_visits(events), running=False)
    assert detail["visits"] == 3 and detail["status"] == "caught"  # shows the visit that went wrong
    assert detail["input"] == "2"


def test_a_running_execution_shows_the_blocked_state_in_progress(tmp_path):
    release, entered = threading.Event(), threading.Event()

    def blocking(payload):
        entered.set()
        assert release.wait(120)
        return payload

    definition = {"StartAt": "First", "States": {"First": {"Type": "Pass", "Next": "Slow"},
                                                 "Slow": task("blocking", Next="Last"),
                                                 "Last": {"Type": "Pass", "End": True}}}
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    engine = WorkflowEngine(ledger, InProcessInvoker({"blocking": blocking}), clock=NO_WAITS)
    runner = threading.Thread(target=engine.start_execution, args=("toy", definition, "live", {}))
    runner.start()
    try:
        assert entered.wait(60)
        record = ledger.get_execution("live")
        # The history reaches the ledger while the task blocks (flushed periodically, not only at the end).
        deadline = time.monotonic() + 60
        while True:
            events = execution_history(ledger.get_events(record.execution_arn))["events"]
            if any(e["type"] == "LambdaFunctionStarted" for e in events):
                break
            assert time.monotonic() < deadline, f"no LambdaFunctionStarted flushed: {events}"
            time.sleep(0.1)  # polling interval, not an assertion
        graph = execution_graph(definition, events, running=True)
        assert statuses(graph) == {"First": "succeeded", "Slow": "in_progress", "Last": "not_entered"}
    finally:
        release.set()
        runner.join(60)
    record = ledger.get_execution("live")
    events = execution_history(ledger.get_events(record.execution_arn))["events"]
    assert statuses(execution_graph(definition, events, running=False)) == \
        {"First": "succeeded", "Slow": "succeeded", "Last": "succeeded"}


def test_parallel_branches_are_sub_graphs_coloured_from_an_aws_shaped_history():
    # The local engine has no Parallel yet; this history has the shape Step Functions records for one
    # (each branch chains its events from ParallelStateStarted; one branch failed, the error caught).
    definition = {"StartAt": "Both", "States": {
        "Both": {"Type": "Parallel", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}],
                 "Next": "Done",
                 "Branches": [{"StartAt": "Left", "States": {"Left": task("left", End=True)}},
                              {"StartAt": "Right", "States": {"Right": task("right", End=True)}}]},
        "Handled": {"Type": "Pass", "End": True},
        "Done": {"Type": "Succeed"}}}

    events = [event(1, 0, "ExecutionStarted"), event(2, 1, "ParallelStateEntered", name="Both"),
              event(3, 2, "ParallelStateStarted"),
              event(4, 3, "TaskStateEntered", name="Left"), event(5, 3, "TaskStateEntered", name="Right"),
              event(6, 4, "TaskStateExited", name="Left"),
              event(7, 5, "LambdaFunctionFailed", error="Boom", cause="right broke"),
              event(8, 7, "ParallelStateFailed", error="Boom", cause="right broke"),
              event(9, 8, "ParallelStateExited", name="Both"),
              event(10, 9, "PassStateEntered", name="Handled"),
              event(11, 10, "PassStateExited", name="Handled"), event(12, 11, "ExecutionSucceeded")]
    graph = execution_graph(definition, events, running=False)
    both = next(n for n in graph["nodes"] if n["name"] == "Both")
    assert both["status"] == "caught"
    branch_status = [{n["name"]: n["status"] for n in b["nodes"] if not n["name"].startswith("__")}
                     for b in both["branches"]]
    assert branch_status == [{"Left": "succeeded"}, {"Right": "failed"}]
    assert statuses(graph) == {"Both": "caught", "Handled": "succeeded", "Done": "not_entered"}


def test_an_aborted_execution_draws_its_unfinished_state_aborted_not_failed(tmp_path):
    def interrupted(_payload):
        raise KeyboardInterrupt  # Ctrl-C while the task runs: the engine closes the execution ABORTED

    definition = {"StartAt": "First", "States": {"First": {"Type": "Pass", "Next": "Work"},
                                                 "Work": task("interrupted", Next="Last"),
                                                 "Last": {"Type": "Pass", "End": True}}}
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    engine = WorkflowEngine(ledger, InProcessInvoker({"interrupted": interrupted}), clock=NO_WAITS)
    with pytest.raises(KeyboardInterrupt):
        engine.start_execution("toy", definition, "stopped", {})
    record = ledger.get_execution("stopped")
    assert record.status.value == "ABORTED"
    events = execution_history(ledger.get_events(record.execution_arn))["events"]

    graph = execution_graph(definition, events, running=False)
    assert statuses(graph) == {"First": "succeeded", "Work": "aborted", "Last": "not_entered"}
    assert state_detail("Work", attribute_visits(events), running=False)["status"] == "aborted"


def test_aws_execution_aborted_and_map_iterations_aborted_are_not_failures():
    # The shape Step Functions records when StopExecution ends a run inside a Map: the Map and its open
    # iteration are aborted, nothing failed.
    definition = {"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "End": True, "ItemProcessor": {
        "StartAt": "Each", "States": {"Each": task("each", End=True)}}}}}

    events = [event(1, 0, "ExecutionStarted"), event(2, 0, "MapStateEntered", name="Fan"),
              event(3, 2, "MapStateStarted", length=2),
              event(4, 3, "MapIterationStarted", name="Fan", index=0),
              event(5, 4, "TaskStateEntered", name="Each"), event(6, 5, "TaskStateExited", name="Each"),
              event(7, 6, "MapIterationSucceeded", name="Fan", index=0),
              event(8, 3, "MapIterationStarted", name="Fan", index=1),
              event(9, 8, "TaskStateEntered", name="Each"),
              event(10, 9, "MapIterationAborted", name="Fan", index=1),
              event(11, 10, "MapStateAborted"), event(12, 11, "ExecutionAborted")]
    graph = execution_graph(definition, events, running=False)
    fan = next(n for n in graph["nodes"] if n["name"] == "Fan")
    assert fan["status"] == "aborted"
    assert fan["map"] == {"iterations": 2, "iterations_started": 2, "iterations_succeeded": 1,
                          "iterations_failed": 0, "iterations_aborted": 1}
    each = next(n for n in fan["children"]["nodes"] if n["name"] == "Each")
    assert (each["status"], each["counts"]["succeeded"], each["counts"]["aborted"]) == ("aborted", 1, 1)


def test_the_history_read_while_running_is_not_served_as_the_final_one(tmp_path, monkeypatch):
    # The page stops polling once the execution has ended: the history it draws that last graph from
    # must be read after the end, not the copy cached a moment before (however short the cache).
    from embedding_ingest.console import api
    from embedding_ingest.console.sources import LocalSource

    monkeypatch.setattr(api, "HISTORY_TTL_SECONDS", 3600.0)
    release, entered = threading.Event(), threading.Event()

    def blocking(payload):
        entered.set()
        assert release.wait(120)
        return payload

    definition = {"StartAt": "Slow", "States": {"Slow": task("blocking", End=True)}}
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    console = api.Console(source=LocalSource(ledger), ledger=ledger, objects=None, settings=None)
    engine = WorkflowEngine(ledger, InProcessInvoker({"blocking": blocking}), clock=NO_WAITS)
    runner = threading.Thread(target=engine.start_execution, args=("toy", definition, "live", {}))
    runner.start()
    try:
        assert entered.wait(60)
        while_running = console.history("live", final=False)
        assert "ExecutionSucceeded" not in [e["type"] for e in while_running]
    finally:
        release.set()
        runner.join(60)
    assert ledger.get_execution("live").status.value == "SUCCEEDED"
    assert console.history("live", final=True)[-1]["type"] == "ExecutionSucceeded"
    assert console.history("live", final=False)[-1]["type"] == "ExecutionSucceeded"  # final: kept
