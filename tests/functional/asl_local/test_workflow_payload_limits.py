"""The 256 KB payload quota on the local engine, with toy handlers: an oversized execution input is
refused before anything runs (AWS refuses it at StartExecution), a Task whose input grows past the
quota and a Map whose iterations are each small but whose combined output is not fail with
States.DataLimitExceeded, which a States.ALL Catch does not catch."""

from __future__ import annotations

import json

import pytest
from workflow_toys import make_engine

from asl_local.errors import InvalidExecutionInput
from asl_local.limits import MAX_PAYLOAD_BYTES
from asl_local.store import ExecutionStatus

TOY = "arn:aws:lambda:us-east-1:000000000000:function:toy"
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
ITEM_RESULT_CHARS = 10_000  # one Map iteration's result: far under the quota on its own


class Calls:
    """A toy Lambda that counts its calls and returns a fixed-size result."""

    def __init__(self, chars: int = 0) -> None:
        self.count = 0
        self.chars = chars

    def __call__(self, payload: dict) -> dict:
        self.count += 1
        return {"blob": "x" * self.chars}


def one_task(parameters: dict | None = None) -> dict:
    task = {"Type": "Task", "Resource": TOY, "Catch": CATCH_ALL, "End": True}
    if parameters is not None:
        task["Parameters"] = parameters
    return {"StartAt": "Work", "States": {"Work": task, "Caught": {"Type": "Succeed"}}}


MAP_OVER_ITEMS = {
    "StartAt": "FanOut",
    "States": {
        "FanOut": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 4,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Work",
                              "States": {"Work": {"Type": "Task", "Resource": TOY, "End": True}}},
            "ResultPath": "$.results", "Catch": CATCH_ALL, "End": True,
        },
        "Caught": {"Type": "Succeed"},
    },
}


def test_an_execution_input_over_the_quota_is_refused_before_anything_runs():
    toy = Calls()
    engine, ledger, _ = make_engine({"toy": toy})
    # {"blob":"..."} is 11 bytes of JSON around the string.
    at_limit_input = {"blob": "x" * (MAX_PAYLOAD_BYTES - 11)}
    one_byte_over = {"blob": "x" * (MAX_PAYLOAD_BYTES - 10)}

    with pytest.raises(InvalidExecutionInput,
                       match=rf"'too-big' has {MAX_PAYLOAD_BYTES + 1} bytes, over the"):
        engine.start_execution("line", one_task(), "too-big", one_byte_over)

    assert toy.count == 0 and ledger.get_execution("too-big") is None
    at_limit = engine.start_execution("line", one_task(), "at-limit", at_limit_input)
    assert at_limit.status is ExecutionStatus.SUCCEEDED and toy.count == 1


def test_a_task_input_grown_past_the_quota_by_parameters_fails_with_data_limit_exceeded():
    toy = Calls()
    engine, _, _ = make_engine({"toy": toy})
    half = "x" * (MAX_PAYLOAD_BYTES // 2)  # fits as the execution input; twice over does not

    record = engine.start_execution("line", one_task({"a.$": "$.half", "b.$": "$.half"}), "doubled",
                                    {"half": half})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.DataLimitExceeded")
    assert "'Work'" in record.cause and "input" in record.cause
    assert toy.count == 0  # refused before the Lambda was invoked


@pytest.mark.parametrize(("items", "fits"), [(20, True), (30, False)])
def test_a_map_fails_with_data_limit_exceeded_once_its_combined_output_is_over_quota(items, fits):
    toy = Calls(ITEM_RESULT_CHARS)
    engine, _, _ = make_engine({"toy": toy})

    record = engine.start_execution("line", MAP_OVER_ITEMS, f"map-{items}", {"items": list(range(items))})

    assert toy.count == items  # every iteration ran and succeeded on its own
    combined = items * ITEM_RESULT_CHARS
    assert (combined < MAX_PAYLOAD_BYTES) == fits
    if fits:
        assert record.status is ExecutionStatus.SUCCEEDED
        assert len(json.loads(record.output)["results"]) == items
    else:
        assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.DataLimitExceeded")
        assert "'FanOut'" in record.cause and "output" in record.cause
