"""Wait, timeouts and the engine's clock; Parallel; Map tolerated failures - through the engine's records
and its AWS-shaped history."""

from __future__ import annotations

import json
import threading
import time

import pytest
from workflow_toys import make_engine

from asl_local.clock import VirtualClock
from asl_local.history import to_aws_history
from asl_local.store import ExecutionStatus

FN = "arn:aws:lambda:us-east-1:000000000000:function:"
HOUR = 3600


def run(definition, data=None, handlers=None, **options):
    engine, ledger, _ = make_engine(handlers or {}, **options)
    record = engine.start_execution("line", definition, "timed", data or {})
    return record, to_aws_history(ledger.get_events(record.execution_arn))["events"]


def at(events, event_type, name=None):
    return next(e["timestamp"] for e in events if e["type"] == event_type
                and (name is None or e.get("stateEnteredEventDetails", e.get("stateExitedEventDetails", {}))
                     .get("name") == name))


@pytest.mark.parametrize(("wait", "data"), [
    ({"Seconds": HOUR}, {}),
    ({"SecondsPath": "$.s"}, {"s": HOUR}),
    ({"Timestamp": "2026-01-01T01:00:00Z"}, {}),
    ({"TimestampPath": "$.t"}, {"t": "2026-01-01T01:00:00.000+00:00"}),
])
def test_a_one_hour_wait_takes_no_time_and_the_history_shows_the_hour(wait, data):
    clock = VirtualClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    definition = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", **wait, "Next": "Done"},
                                              "Done": {"Type": "Succeed"}}}
    started = time.monotonic()

    record, events = run(definition, data, clock=clock)

    assert time.monotonic() - started < 5
    assert record.status is ExecutionStatus.SUCCEEDED
    assert at(events, "WaitStateExited") - at(events, "WaitStateEntered") == HOUR
    assert record.stop_date - record.start_date == HOUR


def test_a_wait_with_a_bad_seconds_path_fails_with_a_runtime_error():
    definition = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}}

    record, _ = run(definition, {"s": "soon"}, clock=VirtualClock())

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "SecondsPath" in record.cause


def slow_on(clock: VirtualClock, seconds: float):
    """A function that takes `seconds` of the virtual clock's time."""
    def slow(event):
        clock.advance(seconds)
        return {"finished": True}
    return slow


def test_a_task_over_its_timeout_fails_with_states_timeout_and_its_result_is_discarded():
    clock = VirtualClock()
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN + "slow", "TimeoutSeconds": 60, "End": True,
              "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "H"}]},
        "H": {"Type": "Pass", "End": True}}}

    record, events = run(definition, {"k": 1}, {"slow": slow_on(clock, 120)}, clock=clock)

    result = json.loads(record.output)
    assert result["error"]["Error"] == "States.Timeout"
    assert "finished" not in json.dumps(result)
    timed_out = next(e for e in events if e["type"] == "LambdaFunctionTimedOut")
    assert timed_out["lambdaFunctionTimedOutEventDetails"]["error"] == "States.Timeout"
    assert "LambdaFunctionSucceeded" not in [e["type"] for e in events]
    assert timed_out["timestamp"] - at(events, "LambdaFunctionStarted") == 60


def test_a_timeout_from_the_input_applies_and_a_fast_task_is_unaffected():
    clock = VirtualClock()
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN + "slow",
                                                   "TimeoutSecondsPath": "$.limit", "End": True}}}

    fast, _ = run(definition, {"limit": 30}, {"slow": slow_on(clock, 10)}, clock=clock)
    slow, _ = run(definition, {"limit": 5}, {"slow": slow_on(clock, 10)}, clock=clock)

    assert json.loads(fast.output) == {"finished": True}
    assert (slow.status, slow.error) == (ExecutionStatus.FAILED, "States.Timeout")


def test_a_real_clock_timeout_does_not_wait_for_the_function():
    finished = threading.Event()

    def hangs(event):
        finished.wait(10)
        return {"late": True}

    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN + "hangs",
                                                   "TimeoutSeconds": 1, "End": True}}}
    started = time.monotonic()
    record, _ = run(definition, {}, {"hangs": hangs})
    elapsed = time.monotonic() - started
    finished.set()

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Timeout")
    assert elapsed < 5


def test_the_execution_timeout_ends_the_run_timed_out():
    definition = {"TimeoutSeconds": 600, "StartAt": "Nap", "States": {
        "Nap": {"Type": "Wait", "Seconds": HOUR, "Next": "Never"}, "Never": {"Type": "Succeed"}}}

    record, events = run(definition, clock=VirtualClock())

    assert (record.status, record.error) == (ExecutionStatus.TIMED_OUT, "States.Timeout")
    assert events[-1]["type"] == "ExecutionTimedOut"
    assert events[-1]["timestamp"] - events[0]["timestamp"] == 600
    assert "Never" not in json.dumps(events)


def test_parallel_branches_take_the_longest_branch_time_and_keep_branch_order():
    clock = VirtualClock()

    def nap(seconds):
        return {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": seconds, "Next": "R"},
                                           "R": {"Type": "Pass", "Result": seconds, "End": True}}}

    definition = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [nap(30), nap(10)],
                                                   "End": True}}}
    record, events = run(definition, clock=clock)

    assert json.loads(record.output) == [30, 10]
    assert at(events, "ParallelStateSucceeded") - at(events, "ParallelStateStarted") == 30


def test_a_failing_parallel_branch_stops_the_others():
    clock = VirtualClock()
    definition = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom", "Cause": "c"}}},
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": HOUR, "Next": "Late"},
                                    "Late": {"Type": "Pass", "End": True}}}]}}}

    record, events = run(definition, clock=clock)

    assert (record.status, record.error, record.cause) == (ExecutionStatus.FAILED, "Boom", "c")
    assert "ParallelStateFailed" in [e["type"] for e in events]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    assert "Late" not in entered


@pytest.mark.parametrize(("tolerance", "status"), [  # two of the four items fail
    ({"ToleratedFailureCount": 2}, ExecutionStatus.SUCCEEDED),
    ({"ToleratedFailureCount": 1}, ExecutionStatus.FAILED),
    ({"ToleratedFailurePercentage": 50}, ExecutionStatus.SUCCEEDED),
    ({"ToleratedFailurePercentage": 25}, ExecutionStatus.FAILED),
    ({"ToleratedFailureCountPath": "$.tolerate"}, ExecutionStatus.SUCCEEDED),
])
def test_map_tolerates_the_failures_it_is_told_to(tolerance, status):
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "Label": "Tolerant", **tolerance,
        "ItemProcessor": {"StartAt": "Check", "States": {
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericLessThan": 0, "Next": "Bad"}],
                      "Default": "Good"},
            "Bad": {"Type": "Fail", "Error": "Negative", "Cause": "below zero"},
            "Good": {"Type": "Pass", "End": True}}},
        "End": True}}}

    record, _ = run(definition, {"items": [1, -1, 2, -2], "tolerate": 2})

    assert record.status is status
    if status is ExecutionStatus.SUCCEEDED:
        assert json.loads(record.output) == [1, {"Error": "Negative", "Cause": "below zero"}, 2,
                                             {"Error": "Negative", "Cause": "below zero"}]
    else:
        assert record.error == "States.ExceedToleratedFailureThreshold"
