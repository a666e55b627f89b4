"""Step Functions and Lambda ARNs, shaped as AWS shapes them, and parsed back.

Forms (AWS Step Functions API reference, DescribeStateMachine / DescribeExecution; Lambda API
reference, Invoke "Name formats"):
  arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME[:VERSION_OR_ALIAS]
  arn:PARTITION:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME
  arn:PARTITION:states:REGION:ACCOUNT:express:STATE_MACHINE:NAME:ID
  arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]

The engine's own ARNs use the region and account Step Functions Local documents as its defaults
(us-east-1, 123456789012: "Starting server on port 8083 with account 123456789012, region
us-east-1", AWS developer guide, "Testing state machines locally"); both can be chosen per engine.
Parsing accepts any region and account (a runbook's `ACCOUNT` placeholder included): a local store
holds executions by state machine and execution name, whatever account their ARNs were made with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from asl_local.errors import InvalidArn

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"

_PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b")
_NAME = re.compile(r"[^\s:]{1,80}")


@dataclass(frozen=True)
class StatesArn:
    """A parsed Step Functions ARN. `kind` is "stateMachine", "execution" or "express"; `execution`
    is None for a state machine ARN; `qualifier` is a state machine version or alias (or None)."""

    partition: str
    region: str
    account: str
    kind: str
    state_machine: str
    execution: str | None = None
    qualifier: str | None = None

    @property
    def text(self) -> str:
        """The ARN as text (rebuilt from its parts)."""
        head = f"arn:{self.partition}:states:{self.region}:{self.account}:{self.kind}:{self.state_machine}"
        if self.kind == "stateMachine":
            return head + (f":{self.qualifier}" if self.qualifier else "")
        return f"{head}:{self.execution}"


def state_machine_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    """The ARN of the state machine named `name`."""
    return f"arn:aws:states:{region}:{account}:stateMachine:{name}"


def execution_arn(state_machine: str, name: str, *, region: str = DEFAULT_REGION,
                  account: str = DEFAULT_ACCOUNT) -> str:
    """The ARN of execution `name` of the state machine named `state_machine`."""
    return f"arn:aws:states:{region}:{account}:execution:{state_machine}:{name}"


def lambda_function_arn(name: str, *, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    """The unqualified ARN of the Lambda function named `name`."""
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def is_states_arn(text: str) -> bool:
    """Whether `text` looks like an ARN of Step Functions (states), valid or not."""
    parts = text.split(":")
    return len(parts) >= 3 and parts[0] == "arn" and parts[2] == "states"


def parse_states_arn(text: str, *, expect: str | None = None) -> StatesArn:
    """Parse a state machine or execution ARN; `expect` ("stateMachine" or "execution", where an
    express execution counts as an execution) is the kind the caller needs.

    Raises InvalidArn (AWS's error code for the same case) naming what is wrong, e.g. for the
    placeholder `arn:...`: "Invalid Arn: 'arn:...' (expected arn:aws:states:REGION:ACCOUNT:...)"."""
    parts = text.split(":")
    shape = {"stateMachine": "arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
             "execution": "arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME"}
    wanted = shape.get(expect or "", " or ".join(shape.values()))

    def bad(why: str) -> InvalidArn:
        return InvalidArn(f"Invalid Arn: {text!r} ({why}; expected {wanted})")

    if len(parts) < 7 or parts[0] != "arn" or parts[2] != "states":
        raise bad("not a Step Functions ARN")
    partition, region, account, kind = parts[1], parts[3], parts[4], parts[5]
    if partition not in _PARTITIONS:
        raise bad(f"unknown partition {partition!r}")
    if not region or not account:
        raise bad("the region and the account must not be empty")
    names = parts[6:]
    if not all(_NAME.fullmatch(name) for name in names):
        raise bad("a name is empty or too long")
    if kind == "stateMachine" and len(names) in (1, 2):
        parsed = StatesArn(partition, region, account, kind, names[0],
                           qualifier=names[1] if len(names) == 2 else None)
    elif kind == "execution" and len(names) == 2 or kind == "express" and len(names) == 3:
        parsed = StatesArn(partition, region, account, kind, names[0], names[1])
    else:
        raise bad(f"resource type {kind!r} with {len(names)} name part(s) is not a state machine or "
                  "an execution")
    if expect == "stateMachine" and parsed.kind != "stateMachine":
        raise bad("an execution ARN where a state machine ARN is needed")
    if expect == "execution" and parsed.kind == "stateMachine":
        raise bad("a state machine ARN where an execution ARN is needed")
    return parsed
