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

A run can outlast a slot (a long backlog takes more than an hour; the schedule fires every 15 minutes).
Two runs of one workflow would only wait on each other's publish lock, so a slot whose workflow still
has an execution RUNNING starts nothing: it says so in its result and log, and counts
SkippedOverlappingRun. Two slots firing at the very same moment can still both start (the check and the
start are two calls); the lock and its fencing token keep their publishes apart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from embedding_ingest.aws.stepfunctions import ARN_VARIABLES, WORKFLOWS, StepFunctionsError
from embedding_ingest.exceptions import ConfigurationError, InvalidInputError
from embedding_ingest.metrics import SKIPPED_OVERLAPPING_RUN, record_metric

SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"  # EventBridge Scheduler substitutes this per fire
# Codes meaning "this will not work until someone changes the configuration".
_MISCONFIGURED = ("AccessDeniedException", "StateMachineDoesNotExist", "InvalidArn", "InvalidName",
                  "StateMachineDeleting", "ValidationException")

log = logging.getLogger(__name__)


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
    slot_execution_name, unless another execution of it is RUNNING. A second call for the same slot
    starts nothing: Step Functions answers the same execution (while it runs, same input) or
    ExecutionAlreadyExists (after), reported as `started: false`. The state machine ARN comes from
    LINE_STATE_MACHINE_ARN / WORD_STATE_MACHINE_ARN.

    Returns {"workflow", "name", "started", "executionArn"? | "reason", "running"?}. Raises
    InvalidInputError for a bad event, ConfigurationError for a missing ARN or a denied call,
    StepFunctionsError (transient) otherwise."""
    if not isinstance(event, Mapping):
        raise InvalidInputError(f"scheduled event must be a JSON object, got {type(event).__name__}")
    workflow = event.get("workflow")
    name = slot_execution_name(str(workflow), event.get("scheduled_time", ""))
    arn = environ.get(ARN_VARIABLES[str(workflow)])
    if not arn:
        raise ConfigurationError(f"{ARN_VARIABLES[str(workflow)]} is not set: which {workflow} state "
                                 "machine to start is unknown")
    running = _call(client, "ListExecutions", arn, name, stateMachineArn=arn, statusFilter="RUNNING",
                    maxResults=1)["executions"]
    if running and running[0]["name"] != name:  # the same slot's own execution: Step Functions decides
        other = running[0]
        since = _iso(other.get("startDate"))
        log.warning("scheduled start skipped: another execution of this workflow is running",
                    extra={"workflow": workflow, "execution": name, "running": other["name"],
                           "running_since": since})
        record_metric(SKIPPED_OVERLAPPING_RUN, 1, workflow=str(workflow))
        return {"workflow": workflow, "name": name, "started": False, "running": other["name"],
                "reason": f"execution {other['name']} of this workflow is RUNNING (started {since})"}
    try:
        started = _call(client, "StartExecution", arn, name, stateMachineArn=arn, name=name, input="{}")
    except _AlreadyExists:
        return {"workflow": workflow, "name": name, "started": False,
                "reason": "an execution of this name already ran for this slot"}
    return {"workflow": workflow, "name": name, "started": True, "executionArn": started["executionArn"]}


class _AlreadyExists(Exception):
    pass


def _call(client: Any, operation: str, arn: str, execution: str, **params: Any) -> dict[str, Any]:
    """One Step Functions call with its errors in this module's terms."""
    method = {"ListExecutions": client.list_executions, "StartExecution": client.start_execution}[operation]
    try:
        return method(**params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ExecutionAlreadyExists":
            raise _AlreadyExists from exc
        if code in _MISCONFIGURED:
            raise ConfigurationError(f"Step Functions {operation} of {arn} ({execution}): {code}: "
                                     f"{exc.response.get('Error', {}).get('Message', '')}") from exc
        raise StepFunctionsError(f"Step Functions {operation} of {arn} ({execution}): {code}") from exc
    except BotoCoreError as exc:
        raise StepFunctionsError(f"Step Functions {operation} of {arn} ({execution}): {exc}") from exc


def _iso(moment: Any) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return "at an unknown time"
