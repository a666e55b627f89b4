"""Map iterations and Parallel branches in simulated time: an iteration waiting for a MaxConcurrency
slot starts when the slot frees, and a sibling's failure aborts only what had not finished by then
(as AWS shows it: https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html)."""

from __future__ import annotations

from workflow_toys import make_engine

from asl_local.clock import VirtualClock
from asl_local.history import to_aws_history
from asl_local.store import ExecutionStatus

MINUTES_10 = 600


def run(definition, data, clock):
    engine, ledger, _ = make_engine({}, clock=clock)
    record = engine.start_execution("line", definition, "timed", data)
    return record, to_aws_history(ledger.get_events(record.execution_arn))["events"]


def nap_map(max_concurrency: int, **extra):
    return {"StartAt": "M", "States": {"M": {
        "Type": "Map", "MaxConcurrency": max_concurrency, "End": True,
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": MINUTES_10,
                                                           "End": True}}}}}, **extra}


def test_iterations_one_at_a_time_take_the_sum_of_their_waits():
    record, events = run(nap_map(1), [1, 2, 3], VirtualClock())

    assert record.status is ExecutionStatus.SUCCEEDED
    assert record.stop_date - record.start_date == 3 * MINUTES_10
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)  # time never runs backwards in the history


def test_iterations_two_at_a_time_take_two_rounds():
    record, _ = run(nap_map(2), [1, 2, 3, 4], VirtualClock())

    assert record.stop_date - record.start_date == 2 * MINUTES_10


def test_one_at_a_time_iterations_over_the_execution_timeout_time_out():
    record, _ = run(nap_map(1, TimeoutSeconds=2 * MINUTES_10 + 1), [1, 2, 3], VirtualClock())

    assert (record.status, record.error) == (ExecutionStatus.TIMED_OUT, "States.Timeout")


def test_a_branch_that_ended_before_its_sibling_failed_is_not_aborted():
    definition = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "Late", "States": {"Late": {"Type": "Wait", "Seconds": 3600, "Next": "Boom"},
                                       "Boom": {"Type": "Fail", "Error": "Boom", "Cause": "late"}}},
        {"StartAt": "Quick", "States": {"Quick": {"Type": "Wait", "Seconds": 5, "Next": "Done"},
                                        "Done": {"Type": "Pass", "End": True}}}]}}}

    record, events = run(definition, {}, VirtualClock())

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "Boom")
    exited = [e["stateExitedEventDetails"]["name"] for e in events if e["type"].endswith("StateExited")]
    assert "Done" in exited  # it finished 5 s in, long before the failure at one hour
    assert record.stop_date - record.start_date == 3600


def test_a_map_fails_with_the_error_that_happened_first_in_simulated_time():
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, "ItemProcessor": {"StartAt": "W", "States": {
            "W": {"Type": "Wait", "SecondsPath": "$.after", "Next": "F"},
            "F": {"Type": "Fail", "ErrorPath": "$.error", "Cause": "c"}}}}}}
    items = [{"after": 3600, "error": "Slow"}, {"after": 10, "error": "Fast"}]

    record, events = run(definition, items, VirtualClock())

    # Whichever thread got there first in real time, the failure 10 s in is the Map's error.
    assert (record.status, record.error) == (ExecutionStatus.FAILED, "Fast")
    assert "MapIterationFailed" in [e["type"] for e in events]
