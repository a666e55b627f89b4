"""State machine and execution ARNs: made as AWS makes them, parsed back whatever account they carry."""

from __future__ import annotations

import pytest

from asl_local.arns import execution_arn, parse_states_arn, state_machine_arn
from asl_local.errors import InvalidArn


def test_the_engines_arns_use_step_functions_locals_default_region_and_account():
    assert state_machine_arn("line-ingest") == \
        "arn:aws:states:us-east-1:123456789012:stateMachine:line-ingest"
    assert execution_arn("line-ingest", "run-1", region="eu-west-1", account="000000000000") == \
        "arn:aws:states:eu-west-1:000000000000:execution:line-ingest:run-1"


@pytest.mark.parametrize(("arn", "kind", "machine", "execution"), [
    ("arn:aws:states:us-east-1:ACCOUNT:stateMachine:line-ingest-sf-dev-1554303", "stateMachine",
     "line-ingest-sf-dev-1554303", None),
    ("arn:aws:states:us-east-1:000000000000:execution:word-ingest:word-1", "execution", "word-ingest",
     "word-1"),
    ("arn:aws-cn:states:cn-north-1:123456789012:express:m:run:5a1b", "express", "m", "run"),
])
def test_any_account_parses(arn, kind, machine, execution):
    parsed = parse_states_arn(arn)

    assert (parsed.kind, parsed.state_machine, parsed.execution) == (kind, machine, execution)
    assert kind == "express" or parsed.text == arn


@pytest.mark.parametrize(("arn", "expect", "why"), [
    ("arn:...", None, "not a Step Functions ARN"),
    ("arn:aws:lambda:us-east-1:123456789012:function:f", None, "not a Step Functions ARN"),
    ("arn:aws:states:us-east-1:123456789012:activity:a", None, "resource type 'activity'"),
    ("arn:aws:states:us-east-1:123456789012:stateMachine:m", "execution", "a state machine ARN where"),
    ("arn:aws:states:us-east-1:123456789012:execution:m:e", "stateMachine", "an execution ARN where"),
])
def test_what_is_no_arn_is_invalid_arn_saying_why(arn, expect, why):
    with pytest.raises(InvalidArn) as refused:
        parse_states_arn(arn, expect=expect)

    assert str(refused.value).startswith(f"Invalid Arn: {arn!r} (")
    assert why in str(refused.value)
