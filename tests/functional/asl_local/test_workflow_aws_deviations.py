"""Issue 14's fourteen confirmed deviations from AWS Step Functions, one test each (numbered as in the
issue). Cases 1-8 and 14 also live in the conformance corpus (tests/conformance/cases/), which runs
them on moto as well; here they are checked through the engine's own records and history."""

from __future__ import annotations

import json
import threading

import pytest
from workflow_toys import make_engine

from asl_local.clock import VirtualClock
from asl_local.engine.map_state import INLINE_MAP_MAX_CONCURRENCY
from asl_local.errors import UnsupportedDefinitionError
from asl_local.history import to_aws_history
from asl_local.store import ExecutionStatus

FN = "arn:aws:lambda:us-east-1:000000000000:function:"


def single(state: dict) -> dict:
    return {"StartAt": "S", "States": {"S": {**state, "End": True}}}


def run(definition, data, handlers=None, **options):
    engine, ledger, _ = make_engine(handlers or {}, **options)
    record = engine.start_execution("line-ingest", definition, "case", data)
    events = to_aws_history(ledger.get_events(record.execution_arn))["events"]
    return record, events


def output(record) -> object:
    assert record.status is ExecutionStatus.SUCCEEDED, (record.error, record.cause)
    return json.loads(record.output)


def test_01_format_unescapes_braces():
    record, _ = run(single({"Type": "Pass", "Parameters": {
        "v.$": "States.Format('lit \\{\\} and {}', $.x)"}}), {"x": "X"})

    assert output(record) == {"v": "lit {} and X"}


def test_02_format_writes_objects_and_arrays():
    record, _ = run(single({"Type": "Pass", "Parameters": {
        "v.$": "States.Format('v={} {}', $$.StateMachine.Name, $.list)"}}), {"list": [1, {"a": "b"}]})

    assert output(record) == {"v": "v=line-ingest [1, {a=b}]"}


def test_03_math_add_rounds_to_integers_and_rejects_strings():
    record, _ = run(single({"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.a, $.b)"}}),
                    {"a": 1.49, "b": 1.5})
    assert output(record) == {"v": 3}

    bad, _ = run(single({"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.a, 1)"}}), {"a": [1]})
    assert (bad.status, bad.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "States.MathAdd" in bad.cause


@pytest.mark.parametrize("expression", ["States.ArrayLength($.s)", "States.ArrayGetItem($.s, 0)",
                                        "States.ArrayGetItem($.a, $.t)"])
def test_04_array_intrinsics_need_arrays_and_integer_indices(expression):
    record, _ = run(single({"Type": "Pass", "Parameters": {"v.$": expression}}),
                    {"s": "abcd", "a": [1, 2, 3], "t": True})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")


def test_05_string_to_json_rejects_nan():
    record, _ = run(single({"Type": "Pass", "Parameters": {"v.$": "States.StringToJson($.s)"}}),
                    {"s": "NaN"})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")


def test_06_parameters_see_the_retry_count_of_each_attempt():
    seen = []

    def flaky(event):
        seen.append(event["retry"])
        if event["retry"] < 2:
            raise TimeoutError("not yet")
        return event

    record, _ = run(single({"Type": "Task", "Resource": FN + "flaky",
                                      "Parameters": {"retry.$": "$$.State.RetryCount"},
                                      "Retry": [{"ErrorEquals": ["TimeoutError"], "MaxAttempts": 3}]}),
                    {}, {"flaky": flaky})

    assert seen == [0, 1, 2]
    assert output(record) == {"retry": 2}


def test_07_result_path_mismatch_is_catchable():
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN + "echo", "ResultPath": "$.a.b", "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "H"}]},
        "H": {"Type": "Pass", "End": True}}}

    record, _ = run(definition, {"a": "str"}, {"echo": lambda e: e})

    assert output(record)["error"]["Error"] == "States.ResultPathMatchFailure"


def test_08_fail_error_path_must_select_a_string():
    record, _ = run({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e"}}},
                    {"e": {"code": 1}})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "ErrorPath" in record.cause and "not a string" in record.cause


def test_09_a_failed_iteration_aborts_the_others():
    release = threading.Event()

    def work(event):
        if event == "bad":
            raise ValueError("bad item")
        release.wait(5)  # still running when the bad item fails
        return event

    definition = single({"Type": "Map", "ItemProcessor": {"StartAt": "W", "States": {
        "W": {"Type": "Task", "Resource": FN + "work", "Next": "After"},
        "After": {"Type": "Pass", "End": True}}}})
    timer = threading.Timer(0.5, release.set)
    timer.start()
    record, events = run(definition, ["slow", "bad"], {"work": work})
    timer.cancel()

    types = [e["type"] for e in events]
    assert (record.status, record.error) == (ExecutionStatus.FAILED, "ValueError")
    assert types.count("MapIterationFailed") == 1 and types.count("MapIterationAborted") == 1
    assert "MapIterationSucceeded" not in types
    assert "After" not in {e.get("stateEnteredEventDetails", {}).get("name") for e in events}


def test_10_inline_map_runs_at_most_40_iterations_at_once():
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    gate = threading.Barrier(INLINE_MAP_MAX_CONCURRENCY, timeout=10)

    def probe(event):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        if event < INLINE_MAP_MAX_CONCURRENCY:
            gate.wait()  # the first 40 meet, proving 40 ran together
        with lock:
            state["now"] -= 1
        return event

    definition = single({"Type": "Map", "MaxConcurrency": 50, "ItemProcessor": {"StartAt": "P", "States": {
        "P": {"Type": "Task", "Resource": FN + "probe", "End": True}}}})
    record, _ = run(definition, list(range(60)), {"probe": probe})

    assert output(record) == list(range(60))
    assert state["max"] == INLINE_MAP_MAX_CONCURRENCY == 40


def test_11_map_state_failed_carries_no_details():
    definition = single({"Type": "Map", "ItemProcessor": {"StartAt": "F", "States": {
        "F": {"Type": "Fail", "Error": "Broke"}}}})

    _, events = run(definition, [1])

    failed = next(e for e in events if e["type"] == "MapStateFailed")
    assert set(failed) == {"timestamp", "type", "id", "previousEventId"}


def test_12_the_first_state_follows_event_zero():
    _, events = run(single({"Type": "Pass"}), {})

    assert [(e["id"], e["previousEventId"]) for e in events[:3]] == [(1, 0), (2, 0), (3, 2)]


def test_13_an_activity_resource_is_refused_not_run_locally():
    engine, ledger, _ = make_engine({"review": lambda e: e})

    with pytest.raises(UnsupportedDefinitionError, match="activity"):
        engine.start_execution("line", single({
            "Type": "Task", "Resource": "arn:aws:states:us-east-1:000000000000:activity:review"}), "a", {})
    assert ledger.list_executions() == []


def test_14_data_limit_after_parameters_is_caught_by_a_catch_naming_it():
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN + "echo", "Parameters": {"a.$": "$.blob", "b.$": "$.blob"},
              "End": True, "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "ResultPath": "$.caught",
                                      "Next": "H"}]},
        "H": {"Type": "Pass", "OutputPath": "$.caught.Error", "End": True}}}
    called = []

    record, _ = run(definition, {"blob": "x" * 150_000}, {"echo": called.append},
                    clock=VirtualClock())

    assert output(record) == "States.DataLimitExceeded"
    assert called == []  # the oversized payload never reached the function
