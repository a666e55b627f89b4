"""Intrinsic functions, Choice rule evaluation and Retry/Catch error matching."""

from __future__ import annotations

import pytest

from asl_local.engine.choice import rule_matches
from asl_local.engine.error_handling import Retrier, error_matches
from asl_local.errors import StatesFailure
from asl_local.intrinsics.parser import IntrinsicSyntaxError, evaluate_intrinsic, parse_intrinsic

DATA = {"name": "chunk", "n": 3, "list": [1, 2, 3], "obj": {"a": 1}, "text": "{\"k\": [1]}"}


@pytest.mark.parametrize(("expression", "value"), [
    ("States.Format('{}-{} of {}', $.name, $.n, 'x, y')", "chunk-3 of x, y"),
    ("States.Format('literal \\{braces\\} {}', $.n)", "literal {braces} 3"),
    ("States.ArrayLength($.list)", 3),
    ("States.ArrayGetItem($.list, 1)", 2),
    ("States.Array($.n, 'two', null, true)", [3, "two", None, True]),
    ("States.JsonToString($.obj)", '{"a":1}'),
    ("States.StringToJson($.text)", {"k": [1]}),
    ("States.JsonMerge($.obj, States.StringToJson('{\"b\": 2}'), false)", {"a": 1, "b": 2}),
    ("States.MathAdd($.n, -1)", 2),
    ("States.Format('{}', $$.Execution.Name)", "run-7"),
    ("States.Format('{} {}', $.obj, $.list)", "{a=1} [1, 2, 3]"),
    ("States.Format('a\\\\b {}', $.n)", "a\\b 3"),
    ("States.MathAdd(1.49, 1.5)", 3),
    ("States.MathAdd(-1.5, 0)", -1),
    ("States.ArrayPartition($.list, 2)", [[1, 2], [3]]),
    ("States.ArrayContains($.list, 2)", True),
    ("States.ArrayContains(States.Array(true), 1)", False),
    ("States.ArrayRange(0, 10, 5)", [0, 5, 10]),
    ("States.ArrayRange(3, 1, -1)", [3, 2, 1]),
    ("States.ArrayUnique(States.Array(1, 1.0, 'a', 'a'))", [1, "a"]),
    ("States.StringSplit('a  b', ' ')", ["a", "b"]),
    ("States.Base64Decode(States.Base64Encode('héllo'))", "héllo"),
    ("States.Hash('abc', 'SHA-1')", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("States.MathRandom(5, 5)", 5),
    ("States.StringToJson('')", None),
])
def test_supported_intrinsics(expression, value):
    context = {"Execution": {"Name": "run-7"}}
    assert evaluate_intrinsic(expression, DATA, context, state="S", field="f") == value


@pytest.mark.parametrize(("expression", "why"), [
    ("States.Nope()", "not an intrinsic function"),
    ("States.UUID(1)", "takes 0 arguments, not 1"),
    ("States.Format(1, 2)", "first argument must be a string"),
    ("States.Format('x'", "expected ',' or ')'"),
    ("States.Format('x') trailing", "trailing"),
    ("States.ArrayLength(oops)", "unexpected argument"),
])
def test_bad_or_unsupported_intrinsics_are_refused(expression, why):
    with pytest.raises(IntrinsicSyntaxError) as refused:
        parse_intrinsic(expression)

    assert why in str(refused.value)


@pytest.mark.parametrize("expression", [
    "States.ArrayRange(1, 1001, 1)", "States.ArrayRange(1, 2, 0)", "States.ArrayPartition($.list, 0)",
    "States.Hash('x', 'SHA-3')", "States.Base64Decode('***')", "States.JsonMerge($.obj, $.obj, true)",
    "States.MathRandom(5, 1)", "States.ArrayGetItem($.list, 3)", "States.StringToJson('Infinity')",
])
def test_intrinsics_reject_what_aws_rejects(expression):
    with pytest.raises(StatesFailure) as failed:
        evaluate_intrinsic(expression, DATA, {}, state="S", field="f")

    assert failed.value.error == "States.Runtime"


def test_uuid_is_a_fresh_version_4_uuid():
    first, second = (evaluate_intrinsic("States.UUID()", DATA, {}, state="S", field="f") for _ in range(2))

    assert first != second and first[14] == "4" and len(first) == 36


def test_intrinsic_failing_at_run_time_is_a_runtime_error_as_on_aws():
    with pytest.raises(StatesFailure) as failed:
        evaluate_intrinsic("States.Format('{} {}', $.n)", DATA, {}, state="Label", field="Parameters.x.$")

    # AWS reserves States.IntrinsicFailure; intrinsic errors are reported as States.Runtime.
    assert failed.value.error == "States.Runtime"
    assert "Label" in failed.value.cause


@pytest.mark.parametrize(("rule", "matched"), [
    ({"Variable": "$.n", "NumericGreaterThanEquals": 3}, True),
    ({"Variable": "$.n", "NumericLessThan": 3}, False),
    ({"Variable": "$.n", "NumericEqualsPath": "$.list[2]"}, True),
    ({"Variable": "$.name", "StringEquals": "chunk"}, True),
    ({"Variable": "$.name", "StringGreaterThan": "b"}, True),
    ({"Variable": "$.n", "StringEquals": "3"}, False),
    ({"Variable": "$.missing", "IsPresent": False}, True),
    ({"Variable": "$.obj.a", "IsNumeric": True}, True),
    ({"Variable": "$.obj", "IsNull": False}, True),
    ({"Or": [{"Variable": "$.n", "NumericEquals": 0}, {"Not": {"Variable": "$.name", "IsString": False}}]},
     True),
    ({"And": [{"Variable": "$.n", "NumericEquals": 3}, {"Variable": "$.missing", "IsPresent": True}]}, False),
])
def test_choice_rules(rule, matched):
    assert rule_matches({**rule, "Next": "X"}, DATA, {}, "Route") is matched


def failure(error: str, catchable: bool = True) -> StatesFailure:
    return StatesFailure(error, "cause", catchable=catchable)


@pytest.mark.parametrize(("error_equals", "error", "matched"), [
    (["States.ALL"], "ValueError", True),
    (["States.ALL"], "States.TaskFailed", True),
    (["States.ALL"], "States.Runtime", False),
    (["States.ALL"], "States.DataLimitExceeded", False),
    (["States.DataLimitExceeded"], "States.DataLimitExceeded", True),
    (["States.TaskFailed"], "LockNotAcquiredError", True),
    (["States.TaskFailed"], "States.Timeout", False),
    (["KeyError", "ValueError"], "ValueError", True),
    (["KeyError"], "ValueError", False),
])
def test_error_matching_follows_aws(error_equals, error, matched):
    assert error_matches(error_equals, failure(error)) is matched


def test_uncatchable_failures_match_nothing():
    assert not error_matches(["States.Runtime"], failure("States.Runtime", catchable=False))


def test_retrier_backoff_is_exponential_and_capped():
    retrier = Retrier(error_equals=["X"], interval_seconds=2, backoff_rate=3.0, max_delay_seconds=30)

    assert [retrier.delay(n) for n in range(4)] == [2, 6, 18, 30]
