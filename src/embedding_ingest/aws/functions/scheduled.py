"""What the EventBridge Scheduler schedules of the stack invoke: start one execution per schedule slot,
and submit new items. Pure functions over a Step Functions client / the ports; the Lambda entrypoints
in aws/functions/handlers.py only build those and call these.

Why a function starts the executions rather than the schedule itself (a universal target calling
sfn:startExecution): the execution name must be derived from the slot's scheduled time so a duplicate
fire (Scheduler delivers at least once, and retries) cannot start a second run for the same slot. The
only slot identity Scheduler offers is the context attribute `<aws.scheduler.scheduled-time>`
("2026-11-29T16:15:00Z"; `<aws.scheduler.execution-id>` differs per attempt), and execution names may
not contain ':' (StartExecution: "A name must not contain ... special characters ... : /"), and
Scheduler cannot reformat it. So the schedule passes the time and this code makes the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedding_ingest.aws.stepfunctions import ARN_VARIABLES, WORKFLOWS, StepFunctionsError
from embedding_ingest.exceptions import ConfigurationError, InvalidInputError

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # EventBridge Scheduler substitutes this per fire


def slot_execution_name(workflow: str, scheduled_time: str) -> str:
    """`line` + "2026-11-29T16:15:00Z" -> "line-20261129T161500Z" (letters, digits and '-', valid in an
    execution name and CloudWatch-loggable). Raises InvalidInputError naming the bad field."""
    if workflow not in WORKFLOWS:
        raise InvalidInputError(f"scheduled event: field 'workflow' is {workflow!r}; expected line or word")
    try:
        moment = datetime.fromisoformat(str(scheduled_time))
    except ValueError:
        raise InvalidInputError(f"scheduled event: field 'scheduled_time' is {scheduled_time!r}; expected "
                                "an ISO 8601 time such as 2026-11-29T16:15:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{workflow}-{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def start_slot_execution(client: Any, event: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """Start the `event["workflow"]` state machine for the slot `event["scheduled_time"]`, named by
    slot_execution_name. A second call for the same slot starts nothing: Step Functions answers the
    same execution (while it runs, same input) or ExecutionAlreadyExists (after), reported as
    `started: false`. The state machine ARN comes from LINE_STATE_MACHINE_ARN / WORD_STATE_MACHINE_ARN.

    Returns {"workflow", "name", "started", "executionArn"?}. Raises InvalidInputError for a bad event,
    ConfigurationError for a missing ARN or a denied call, StepFunctionsError (transient) otherwise."""
    if not isinstance(event, Mapping):
        raise InvalidInputError(f"scheduled event must be a JSON object, got {type(event).__name__}")
    workflow = event.get("workflow")
    name = slot_execution_name(str(workflow), event.get("scheduled_time", ""))
    arn = environ.get(ARN_VARIABLES[str(workflow)])
    if not arn:
        raise ConfigurationError(f"{ARN_VARIABLES[str(workflow)]} is not set: which {workflow} state "
                                 "machine to start is unknown")
    try:
        started = client.start_execution(stateMachineArn=arn, name=name, input="{}")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ExecutionAlreadyExists":
            return {"workflow": workflow, "name": name, "started": False,
                    "reason": "an execution of this name already ran for this slot"}
        if code in ("AccessDeniedException", "StateMachineDoesNotExist", "InvalidArn", "InvalidName",
                    "StateMachineDeleting", "ValidationException"):
            raise ConfigurationError(f"Step Functions StartExecution of {arn} ({name}): {code}: "
                                     f"{exc.response.get('Error', {}).get('Message', '')}") from exc
        raise StepFunctionsError(f"Step Functions StartExecution of {arn} ({name}): {code}") from exc
    except BotoCoreError as exc:
        raise StepFunctionsError(f"Step Functions StartExecution of {arn} ({name}): {exc}") from exc
    return {"workflow": workflow, "name": name, "started": True, "executionArn": started["executionArn"]}
