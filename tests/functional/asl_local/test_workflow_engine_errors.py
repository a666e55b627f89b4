"""Retry, Catch, payload and history limits, and refusal of what the engine does not interpret."""

from __future__ import annotations

import json
import random

import pytest
from workflow_toys import FailingThenOk, ToyInputError, TransientToyError, fixture, make_engine

from asl_local.errors import UnsupportedDefinitionError
from asl_local.limits import MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES
from asl_local.store import ExecutionStatus


def test_retry_fails_twice_then_succeeds_with_exponential_backoff():
    flaky = FailingThenOk(TransientToyError("lock busy"), TransientToyError("lock busy"))
    engine, ledger, sleep = make_engine({"flaky": flaky})

    record = engine.start_execution("line", fixture("retry_then_succeed"), "retry", {})

    assert record.status is ExecutionStatus.SUCCEEDED
    assert json.loads(record.output) == {"ok": True, "calls": 3}
    assert sleep.delays == [3, 7.5]  # IntervalSeconds 3, then x BackoffRate 2.5
    types = [e.type for e in ledger.get_events(record.execution_arn)]
    assert types.count("LambdaFunctionScheduled") == 3
    assert types.count("LambdaFunctionFailed") == 2


def test_retry_gives_up_after_max_attempts_and_the_error_names_the_exception():
    flaky = FailingThenOk(*[TransientToyError(f"busy {i}") for i in range(3)])
    engine, _, sleep = make_engine({"flaky": flaky})

    record = engine.start_execution("line", fixture("retry_then_succeed"), "giveup", {})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "TransientToyError")
    # Lambda's error payload; only the function's own frames (the engine's are left out, as Lambda's
    # runtime leaves out its own).
    cause = json.loads(record.cause)
    assert list(cause) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (cause["errorMessage"], cause["errorType"]) == ("busy 2", "TransientToyError")
    [frame] = cause["stackTrace"]
    assert "workflow_toys.py" in frame and "raise self.failures.pop(0)" in frame
    assert flaky.calls == 3
    assert len(sleep.delays) == 2


def test_only_the_first_matching_retrier_counts():
    # ValueError matches the first retrier (MaxAttempts 0) before States.TaskFailed: no retry at all.
    flaky = FailingThenOk(ValueError("bad"))
    engine, _, sleep = make_engine({"flaky": flaky})

    record = engine.start_execution("line", fixture("retry_then_succeed"), "first", {})

    assert (record.status, record.error, flaky.calls, sleep.delays) == (
        ExecutionStatus.FAILED, "ValueError", 1, [])


def test_full_jitter_waits_at_most_the_capped_backoff():
    flaky = FailingThenOk(*[TransientToyError("x") for _ in range(5)])
    engine, _, sleep = make_engine({"flaky": flaky}, rng=random.Random(7))

    record = engine.start_execution("line", fixture("retry_jitter"), "jitter", {})

    assert record.status is ExecutionStatus.SUCCEEDED
    caps = [2, 4, 5, 5, 5]  # 2 x 2^n, capped by MaxDelaySeconds 5
    assert len(sleep.delays) == len(caps)
    assert all(0 <= delay <= cap for delay, cap in zip(sleep.delays, caps, strict=True))
    assert sleep.delays != caps  # jitter actually applied


def test_catch_routes_to_fail_with_the_error_at_dollar_error():
    explode = FailingThenOk(TransientToyError("once"), ToyInputError("receipt 7 has no lines"))
    engine, ledger, _ = make_engine({"explode": explode})

    record = engine.start_execution("line", fixture("catch_to_fail"), "caught", {"receipt": 7})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "ToyInputError")
    assert json.loads(record.cause)["errorMessage"] == "receipt 7 has no lines"
    events = ledger.get_events(record.execution_arn)
    fail_entered = next(e for e in events if e.type == "FailStateEntered")
    assert fail_entered.details["name"] == "ExplodeFailed"
    fail_input = json.loads(fail_entered.details["input"])
    assert fail_input["receipt"] == 7  # the input is kept, the error added beside it
    assert fail_input["error"]["Error"] == "ToyInputError"


def test_catch_order_matters_first_matching_catcher_wins():
    engine, _, _ = make_engine({"explode": FailingThenOk(KeyError("line_id"))})

    record = engine.start_execution("line", fixture("catch_to_fail"), "keyerror", {"receipt": 1})

    assert record.status is ExecutionStatus.SUCCEEDED
    output = json.loads(record.output)
    assert output["missing"]["Error"] == "KeyError"
    assert "error" not in output


def test_oversized_result_is_data_limit_exceeded_and_not_caught_by_states_all():
    engine, _, _ = make_engine({"sized": lambda p: {"blob": "x" * MAX_PAYLOAD_BYTES}})

    record = engine.start_execution("line", fixture("data_limit"), "toobig", {})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.DataLimitExceeded")
    # AWS's words; a function ARN Resource names the function (lambda:invoke says 'lambda').
    assert record.cause == ("The state/task 'arn:aws:lambda:us-east-1:000000000000:function:sized' "
                            "returned a result with a size exceeding the maximum number of bytes "
                            "service limit.")


def test_result_just_under_the_limit_passes():
    # {"blob":"..."} is 11 bytes of JSON around the string.
    engine, _, _ = make_engine({"sized": lambda p: {"blob": "é" * ((MAX_PAYLOAD_BYTES - 11) // 2)}})

    record = engine.start_execution("line", fixture("data_limit"), "fits", {})

    assert record.status is ExecutionStatus.SUCCEEDED


def test_more_than_25000_history_events_fails_the_execution():
    engine, ledger, _ = make_engine({})

    # 4 events per round: this loop would need ~40,000 events.
    record = engine.start_execution("line", fixture("history_loop"), "long", {"n": 0, "limit": 10_000})

    assert (record.status, record.error) == (ExecutionStatus.FAILED, "States.Runtime")
    assert "maximum number of history events" in record.cause
    events = ledger.get_events(record.execution_arn)
    assert len(events) == MAX_HISTORY_EVENTS
    assert events[-1].type == "ExecutionFailed"


def test_a_loop_within_the_history_limit_completes():
    engine, _, _ = make_engine({})

    record = engine.start_execution("line", fixture("history_loop"), "short", {"n": 0, "limit": 50})

    assert json.loads(record.output) == {"n": 50, "limit": 50}


CASES = fixture("unsupported")


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsupported_constructs_are_refused_naming_the_state(case):
    engine, ledger, _ = make_engine({})

    with pytest.raises(UnsupportedDefinitionError) as refused:
        engine.start_execution("line", CASES[case]["definition"], f"refused-{case}", {})

    for fragment in CASES[case]["refused"]:
        assert fragment in str(refused.value)
    assert ledger.list_executions() == []  # nothing half-ran
