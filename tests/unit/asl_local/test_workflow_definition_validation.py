"""Definitions AWS rejects at CreateStateMachine are rejected at load, naming the state and the field;
definitions AWS accepts load."""

from __future__ import annotations

import pytest

from asl_local.engine import compile_definition
from asl_local.errors import InvalidDefinitionError

FN = "arn:aws:lambda:us-east-1:000000000000:function:f"
PROCESSOR = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def one(state: dict, **top) -> dict:
    terminal = state["Type"] in ("Choice", "Succeed", "Fail")
    return {"StartAt": "S", "States": {"S": {**state, **({} if terminal else {"End": True})}}, **top}


def choice(rule: dict) -> dict:
    return one({"Type": "Choice", "Choices": [{**rule, "Next": "S"}], "Default": "S"})


def task(**fields) -> dict:
    return one({"Type": "Task", "Resource": FN, **fields})


def retrier(**fields) -> dict:
    return task(Retry=[{"ErrorEquals": ["States.ALL"], **fields}])


@pytest.mark.parametrize(("definition", "fragments"), [
    (choice({"Variable": "$.x", "StringEquals": 1}), ["state 'S'", "StringEquals must be a string"]),
    (choice({"Variable": "$.x", "NumericGreaterThan": "1"}), ["NumericGreaterThan must be a number"]),
    (choice({"Variable": "$.x", "BooleanEquals": "true"}), ["BooleanEquals must be a boolean"]),
    (choice({"Variable": "$.x", "TimestampEquals": "2026-01-01"}), ["TimestampEquals must be an RFC 3339"]),
    (choice({"Variable": "$.x", "IsNull": "yes"}), ["IsNull must be a boolean"]),
    (choice({"Variable": "$.x", "StringEqualsPath": "$.y[*]"}), ["INVALID_REFERENCE_PATH"]),
    (choice({"Variable": "$.x", "StringSoundsLike": "a"}), ["StringSoundsLike is not a Choice comparison"]),
    (retrier(IntervalSeconds=0), ["IntervalSeconds must be an integer from 1"]),
    (retrier(BackoffRate=0.5), ["BackoffRate must be a number of at least 1.0"]),
    (retrier(MaxAttempts=-1), ["MaxAttempts must be an integer from 0"]),
    (task(TimeoutSeconds=0), ["TimeoutSeconds must be an integer from 1"]),
    (task(TimeoutSeconds=10, HeartbeatSeconds=10), ["HeartbeatSeconds must be smaller than TimeoutSeconds"]),
    (task(TimeoutSeconds=10, TimeoutSecondsPath="$.t"),
     ["at most one of TimeoutSeconds, TimeoutSecondsPath"]),
    (task(ResultPath="$.items[*]"), ["ResultPath", "INVALID_REFERENCE_PATH"]),
    (one({"Type": "Map", "ItemsPath": "$..items", "ItemProcessor": {"StartAt": "P", "States": {
        "P": {"Type": "Pass", "End": True}}}}), ["ItemsPath", "reference path"]),
    (one({"Type": "Wait", "SecondsPath": "$.waits[?(@ > 1)]"}), ["SecondsPath", "reference path"]),
    (one({"Type": "Wait"}), ["needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath"]),
    (one({"Type": "Wait", "Seconds": 1, "Timestamp": "2026-01-01T00:00:00Z"}), ["needs exactly one"]),
    (one({"Type": "Wait", "Timestamp": "2026-01-01 00:00"}), ["not an RFC 3339 timestamp"]),
    (one({"Type": "Pass", "Parameters": {"v.$": "States.JsonToString(" * 11 + "$.s" + ")" * 11}}),
     ["nested more than 10 deep"]),
    (one({"Type": "Pass", "Parameters": {"v.$": "States.ArrayRange(1, 2)"}}), ["takes 3 arguments, not 2"]),
    (one({"Type": "Map", "Label": "has space", "ItemProcessor": {"StartAt": "P", "States": {
        "P": {"Type": "Pass", "End": True}}}}), ["Label"]),
    (one({"Type": "Map", "ToleratedFailurePercentage": 101, "ItemProcessor": PROCESSOR}),
     ["ToleratedFailurePercentage must be a number from 0 to 100"]),
    (one({"Type": "Parallel", "Branches": []}), ["Parallel needs a non-empty Branches list"]),
    (one({"Type": "Parallel", "Branches": [
        {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "S"}}}]}),
     ["Branches[0] > state 'X'", "transition to unknown state 'S'"]),
    ({"TimeoutSeconds": 0, "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}, ["TimeoutSeconds"]),
    (one({"Type": "Fail", "ErrorPath": "States.ArrayLength($.a)"}), ["ErrorPath may use only"]),
    (one({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}), ["at most one of Error, ErrorPath"]),
])
def test_definitions_aws_rejects_are_rejected_at_load(definition, fragments):
    with pytest.raises(InvalidDefinitionError) as rejected:
        compile_definition(definition)

    for fragment in fragments:
        assert fragment in str(rejected.value)


@pytest.mark.parametrize("definition", [
    choice({"Variable": "$$.Execution.Name", "StringMatches": "run-*"}),
    choice({"Variable": "$.t", "TimestampLessThanPath": "$$.Execution.StartTime"}),
    choice({"Variable": "$.t", "IsTimestamp": True}),
    task(TimeoutSecondsPath="$.limit", HeartbeatSecondsPath="$.beat",
         Retry=[{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 0,
                 "BackoffRate": 1}]),
    one({"Type": "Wait", "TimestampPath": "$$.Execution.Input.until"}),
    one({"Type": "Map", "MaxConcurrencyPath": "$.n", "ToleratedFailurePercentagePath": "$.p",
         "Label": "Batches", "ItemProcessor": PROCESSOR}),
    one({"Type": "Pass", "Parameters": {
        "v.$": "States.Hash(States.Base64Encode(States.UUID()), 'SHA-512')"}}),
    {"TimeoutSeconds": 30, "StartAt": "S", "States": {"S": {"Type": "Succeed"}}},
])
def test_definitions_aws_accepts_load(definition):
    assert compile_definition(definition).start_at == "S"
