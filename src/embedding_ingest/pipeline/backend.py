"""Where the line/word workflows run: the one protocol the run loop (pipeline.run) drives.

Two implementations: pipeline.local_backend.LocalBackend (the asl_local engine in this process) and
aws.stepfunctions.StepFunctionsBackend (the deployed state machines, through the Step Functions API).
Both speak the Step Functions API's shapes: a DescribeExecution body (datetimes as epoch seconds) and
GetExecutionHistory events.
"""

from __future__ import annotations

from typing import Any, Protocol


class ExecutionBackend(Protocol):
    """Starts executions of a workflow and reads their history."""

    name: str
    """"local" or "aws"."""

    shares_ledger: bool
    """True when the executions write the ledger the run loop reads (the local engine): a run's summary
    then counts the batches still active there. False on AWS, where the operator's workspace need not be
    the deployed table: a run's summary counts them from its own poll results."""

    def start(self, workflow: str, name: str, *, wait: bool = True,
              execution_input: str = "{}") -> dict[str, Any]:
        """Start an execution of `workflow` ("line" or "word") named `name` with `execution_input`
        (JSON text); with `wait`, return once it has ended (the local engine always does). Returns its
        DescribeExecution body. Raises InvalidInputError for a bad name (and on AWS for a reused one),
        ExecutionAlreadyExistsError for a reused name on the local engine."""
        ...

    def history(self, name_or_arn: str, workflow: str) -> list[dict[str, Any]]:
        """Every GetExecutionHistory event of the execution, oldest first."""
        ...
