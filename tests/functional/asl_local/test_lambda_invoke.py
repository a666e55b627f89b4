"""The optimized Lambda integration (arn:aws:states:::lambda:invoke) as Step Functions runs it: Invoke's
response as the task result, Task* events with resourceType/resource, Lambda's error names and causes.
Sources: https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html (result shape),
https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html (event fields),
https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html (Lambda.Unknown)."""

from __future__ import annotations

import json
import threading

import pytest
from workflow_toys import FailingThenOk, ToyInputError, add, make_engine, toy_process_target

from asl_local import current_invocation
from asl_local.engine.lambda_invoke import request_id_for
from asl_local.history import to_aws_history
from asl_local.invokers import ProcessPoolInvoker
from asl_local.limits import MAX_PAYLOAD_BYTES
from asl_local.store import ExecutionStatus

INVOKE = "arn:aws:states:::lambda:invoke"
WRAPPER_KEYS = ["ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"]


def invoke_task(function_name: str = "add", **fields) -> dict:
    task = {"Type": "Task", "Resource": INVOKE,
            "Parameters": {"FunctionName": function_name, "Payload.$": "$"}, "End": True}
    task.update(fields)
    return {"StartAt": "Call", "States": {"Call": task}}


def history(store, record) -> list[dict]:
    return to_aws_history(store.get_events(record.execution_arn))["events"]


def test_the_result_is_invokes_response_with_the_payload_parsed():
    engine, store, _ = make_engine({"add": add})

    record = engine.start_execution("m", invoke_task(), "raw", {"a": 1, "b": 2})

    result = json.loads(record.output)
    assert list(result) == WRAPPER_KEYS
    assert result["Payload"] == {"sum": 3, "received": ["a", "b"]}
    assert (result["StatusCode"], result["ExecutedVersion"]) == (200, "$LATEST")
    request_id = result["SdkResponseMetadata"]["RequestId"]
    http = result["SdkHttpMetadata"]
    assert http["HttpStatusCode"] == 200
    assert http["HttpHeaders"]["x-amzn-RequestId"] == request_id
    body = json.dumps(result["Payload"], separators=(",", ":"))
    assert http["HttpHeaders"]["Content-Length"] == str(len(body))
    assert http["AllHttpHeaders"] == {name: [value] for name, value in http["HttpHeaders"].items()}


def test_output_path_payload_gives_the_functions_result_as_the_state_output():
    engine, _, _ = make_engine({"add": add})

    record = engine.start_execution("m", invoke_task(OutputPath="$.Payload"), "payload", {"a": 1, "b": 2})

    assert json.loads(record.output) == {"sum": 3, "received": ["a", "b"]}


def test_a_result_selector_reads_under_payload():
    engine, _, _ = make_engine({"add": add})
    definition = invoke_task(ResultSelector={"total.$": "$.Payload.sum", "status.$": "$.StatusCode"},
                             ResultPath="$.result")

    record = engine.start_execution("m", definition, "selected", {"a": 2, "b": 5})

    assert json.loads(record.output) == {"a": 2, "b": 5, "result": {"total": 7, "status": 200}}


def test_task_events_carry_resource_type_resource_region_and_parameters():
    engine, store, _ = make_engine({"add": add})

    record = engine.start_execution("m", invoke_task(TimeoutSeconds=30, HeartbeatSeconds=10), "events",
                                    {"a": 1, "b": 1})

    events = history(store, record)
    assert [e["type"] for e in events] == ["ExecutionStarted", "TaskStateEntered", "TaskScheduled",
                                           "TaskStarted", "TaskSucceeded", "TaskStateExited",
                                           "ExecutionSucceeded"]
    assert [e["previousEventId"] for e in events] == [0, 0, 2, 3, 4, 5, 6]
    scheduled, started, succeeded = (e for e in events if e["type"] in ("TaskScheduled", "TaskStarted",
                                                                         "TaskSucceeded"))
    details = scheduled["taskScheduledEventDetails"]
    assert (details["resourceType"], details["resource"]) == ("lambda", "invoke")
    assert details["region"] == "us-east-1"
    assert json.loads(details["parameters"]) == {"FunctionName": "add", "Payload": {"a": 1, "b": 1}}
    assert (details["timeoutInSeconds"], details["heartbeatInSeconds"]) == (30, 10)
    assert started["taskStartedEventDetails"] == {"resourceType": "lambda", "resource": "invoke"}
    output = succeeded["taskSucceededEventDetails"]
    assert json.loads(output["output"]) == json.loads(record.output)
    assert output["outputDetails"] == {"truncated": False}


def test_request_ids_are_reproducible_and_reach_the_function():
    seen = []

    def observed(payload):
        seen.append(current_invocation())
        return {}

    runs = []
    for _ in range(2):
        engine, _, _ = make_engine({"observed": observed})
        runs.append(json.loads(engine.start_execution("m", invoke_task("observed"), "same", {}).output))

    first, second = (run["SdkResponseMetadata"]["RequestId"] for run in runs)
    assert first == second == seen[0].request_id == seen[1].request_id
    assert seen[0].function_name == "observed"
    assert seen[0].invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:observed"
    assert seen[0].execution_arn == "arn:aws:states:us-east-1:123456789012:execution:m:same"


def test_the_function_name_formats_lambda_accepts():
    calls = []
    engine, _, _ = make_engine({"add": lambda payload: calls.append(payload) or {}})

    for index, name in enumerate(["add", "add:7", "123456789012:function:add",
                                  "arn:aws:lambda:eu-west-1:111122223333:function:add:live"]):
        record = engine.start_execution("m", invoke_task(name), f"form-{index}", {"n": index})
        assert record.status is ExecutionStatus.SUCCEEDED, record.cause
        assert json.loads(record.output)["ExecutedVersion"] == ("7" if name == "add:7" else "$LATEST")

    assert calls == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]


def test_function_name_and_payload_from_paths():
    engine, _, _ = make_engine({"add": add})
    definition = invoke_task(Parameters={"FunctionName.$": "$.fn", "Payload": {"a.$": "$.x", "b": 10}},
                             OutputPath="$.Payload.sum")

    record = engine.start_execution("m", definition, "paths", {"fn": "add", "x": 5})

    assert json.loads(record.output) == 15


def test_a_function_error_is_named_by_its_type_with_lambdas_error_payload_as_cause():
    flaky = FailingThenOk(ToyInputError("no such receipt"))
    engine, store, _ = make_engine({"flaky": flaky})
    definition = invoke_task("flaky", Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                              "Next": "Caught"}])
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}

    record = engine.start_execution("m", definition, "fails", {})

    error = json.loads(record.output)["error"]
    assert error["Error"] == "ToyInputError"
    cause = json.loads(error["Cause"])
    assert (cause["errorMessage"], cause["errorType"]) == ("no such receipt", "ToyInputError")
    failed = next(e for e in history(store, record) if e["type"] == "TaskFailed")["taskFailedEventDetails"]
    assert failed == {"resourceType": "lambda", "resource": "invoke", "error": "ToyInputError",
                      "cause": error["Cause"]}
    scheduled = next(e for e in history(store, record) if e["type"] == "TaskScheduled")
    assert cause["requestId"] == request_id_for(record.execution_arn, scheduled["id"])


def test_each_failed_attempt_records_task_failed_before_a_retry_succeeds():
    flaky = FailingThenOk(ToyInputError("once"))
    engine, store, _ = make_engine({"flaky": flaky})

    record = engine.start_execution("m", invoke_task("flaky", Retry=[{"ErrorEquals": ["ToyInputError"]}]),
                                    "retried", {})

    assert record.status is ExecutionStatus.SUCCEEDED
    types = [e["type"] for e in history(store, record)]
    counts = [types.count(kind) for kind in ("TaskScheduled", "TaskFailed", "TaskSucceeded")]
    assert counts == [2, 1, 1]


def test_an_unknown_function_is_lambdas_resource_not_found():
    engine, _, _ = make_engine({"add": add})

    record = engine.start_execution("m", invoke_task("nope"), "missing", {})

    assert record.error == "Lambda.ResourceNotFoundException"
    assert record.cause.startswith(
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope (Service: AWSLambda; "
        "Status Code: 404; Error Code: ResourceNotFoundException;")


def test_a_crashed_function_process_is_lambda_unknown():
    with ProcessPoolInvoker(toy_process_target, target_args=("t",), process_functions={"die"},
                            max_workers=1) as invoker:
        engine, _, _ = make_engine(invoker)
        record = engine.start_execution("m", invoke_task("die"), "crashed", {})

    assert record.error == "Lambda.Unknown"
    assert record.cause.startswith(
        "The cause could not be determined because Lambda did not return an error type.")


def test_the_invocation_reaches_a_worker_process():
    with ProcessPoolInvoker(toy_process_target, target_args=("t",), process_functions={"invocation"},
                            max_workers=1) as invoker:
        engine, _, _ = make_engine(invoker)
        record = engine.start_execution("m", invoke_task("invocation"), "remote", {})

    result = json.loads(record.output)
    assert result["Payload"]["request_id"] == result["SdkResponseMetadata"]["RequestId"]
    assert (result["Payload"]["function_name"], result["Payload"]["arn"]) == (
        "invocation", "arn:aws:lambda:us-east-1:123456789012:function:invocation")


def test_a_timeout_records_task_timed_out():
    # A function that does not return within 1 s: the real clock's timeout gives up on it.
    release = threading.Event()
    engine, store, _ = make_engine({"slow": lambda payload: release.wait(5) and {}})
    try:
        record = engine.start_execution("m", invoke_task("slow", TimeoutSeconds=1), "late", {})
    finally:
        release.set()

    assert (record.error, record.status) == ("States.Timeout", ExecutionStatus.FAILED)
    timed_out = next(e for e in history(store, record) if e["type"] == "TaskTimedOut")
    details = timed_out["taskTimedOutEventDetails"]
    assert (details["resourceType"], details["resource"], details["error"]) == ("lambda", "invoke",
                                                                                "States.Timeout")


@pytest.mark.parametrize(("blob", "status"), [(MAX_PAYLOAD_BYTES - 2_000, "SUCCEEDED"),
                                              (MAX_PAYLOAD_BYTES - 500, "FAILED")])
def test_the_size_limit_counts_the_wrapper(blob, status):
    # {"blob":"..."} alone fits in both cases; with the ~1 KB of Invoke's response around it, not the second.
    engine, store, _ = make_engine({"big": lambda payload: {"blob": "x" * blob}})

    record = engine.start_execution("m", invoke_task("big", OutputPath="$.StatusCode"), f"size-{blob}", {})

    assert record.status.value == status
    if status == "FAILED":
        assert (record.error, record.cause) == ("States.DataLimitExceeded", (
            "The state/task 'lambda' returned a result with a size exceeding the maximum number of bytes "
            "service limit."))
        assert history(store, record)[-2]["type"] == "TaskFailed"
