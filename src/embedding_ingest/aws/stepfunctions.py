"""The monitoring verbs against real AWS Step Functions (`--backend aws`), returning the same shapes
the local engine's history/describe functions return (datetimes as epoch seconds)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from embedding_ingest.exceptions import ConfigurationError, InvalidInputError, TransientError

WORKFLOWS = ("line", "word")
ARN_VARIABLES = {"line": "LINE_STATE_MACHINE_ARN", "word": "WORD_STATE_MACHINE_ARN"}
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


class StepFunctionsError(TransientError):
    """The Step Functions API failed (network, throttling, service error)."""


def _epochs(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Mapping):
        return {k: _epochs(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_epochs(v) for v in value]
    return value


class StepFunctionsBackend:
    """start/describe/history/list over the deployed state machines, through `client` (a boto3 Step
    Functions client: backends.aws_client). Their ARNs come from LINE_STATE_MACHINE_ARN /
    WORD_STATE_MACHINE_ARN, or are found by name (`{workflow}-ingest...`). The run loop's AWS backend
    (pipeline.backend.ExecutionBackend: `name`, `shares_ledger`, `start`, `history`)."""

    name = "aws"
    shares_ledger = False  # the state machines' ledger need not be the operator's workspace

    def __init__(self, client: Any, arns: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._arns = dict(arns or {})

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return _epochs(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ExecutionDoesNotExist", "StateMachineDoesNotExist", "InvalidArn", "InvalidName",
                        "ExecutionAlreadyExists", "ValidationException"):
                raise InvalidInputError(f"Step Functions {operation}: {code}: {exc}") from exc
            raise StepFunctionsError(f"Step Functions {operation} failed: {exc}") from exc
        except NoCredentialsError as exc:
            raise ConfigurationError(f"Step Functions {operation}: {exc} (configure AWS credentials)"
                                     ) from exc
        except BotoCoreError as exc:
            raise StepFunctionsError(f"Step Functions {operation} failed: {exc}") from exc

    def state_machine_arn(self, workflow: str) -> str:
        if workflow not in WORKFLOWS:
            raise InvalidInputError(f"unknown workflow {workflow!r} (expected line or word)")
        if workflow not in self._arns:
            configured = os.environ.get(ARN_VARIABLES[workflow])
            if configured:
                self._arns[workflow] = configured
            else:
                found, token = [], None
                while True:
                    page = self._call("list_state_machines", **({"nextToken": token} if token else {}))
                    found += [m["stateMachineArn"] for m in page["stateMachines"]
                              if m["name"].startswith(f"{workflow}-ingest")]
                    token = page.get("nextToken")
                    if not token:
                        break
                if len(found) != 1:
                    raise ConfigurationError(
                        f"found {len(found)} state machines named {workflow}-ingest*; set "
                        f"{ARN_VARIABLES[workflow]} to the one to use")
                self._arns[workflow] = found[0]
        return self._arns[workflow]

    def execution_arn(self, name_or_arn: str, workflow: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        machine = self.state_machine_arn(workflow)
        return machine.replace(":stateMachine:", ":execution:", 1) + f":{name_or_arn}"

    def start(self, workflow: str, name: str, *, wait: bool = True, poll_seconds: float = 5.0,
              execution_input: str = "{}") -> dict[str, Any]:
        started = self._call("start_execution", stateMachineArn=self.state_machine_arn(workflow), name=name,
                             input=execution_input)
        described = self.describe(started["executionArn"], workflow)
        while wait and described["status"] not in TERMINAL:
            time.sleep(poll_seconds)
            described = self.describe(started["executionArn"], workflow)
        return described

    def describe(self, name_or_arn: str, workflow: str) -> dict[str, Any]:
        return self._call("describe_execution", executionArn=self.execution_arn(name_or_arn, workflow))

    def definition(self, name_or_arn: str, workflow: str) -> dict[str, Any]:
        """The ASL definition the execution runs (DescribeStateMachineForExecution: the version it
        started with, even if the state machine was updated since)."""
        described = self._call("describe_state_machine_for_execution",
                               executionArn=self.execution_arn(name_or_arn, workflow))
        return json.loads(described["definition"])

    def history(self, name_or_arn: str, workflow: str) -> list[dict[str, Any]]:
        arn = self.execution_arn(name_or_arn, workflow)
        events, token = [], None
        while True:
            page = self._call("get_execution_history", executionArn=arn,
                              **({"nextToken": token} if token else {}))
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                return events

    def list(self, workflow: str, *, status: str | None = None, max_results: int | None = None
             ) -> list[dict[str, Any]]:
        executions, token = [], None
        while max_results is None or len(executions) < max_results:
            kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn(workflow)}
            if status:
                kwargs["statusFilter"] = status
            if token:
                kwargs["nextToken"] = token
            page = self._call("list_executions", **kwargs)
            executions.extend(page["executions"])
            token = page.get("nextToken")
            if not token:
                break
        return executions[:max_results] if max_results else executions
