"""Moto's Step Functions interpreter (execution mode, in-process `mock_aws`) running our real definitions.

Moto's Lambda backend would run functions in Docker (there is none here), so its `invoke` is replaced
by one that calls our step handlers in this process and answers exactly as the Lambda Python runtime
does: the JSON result, or an error payload (errorMessage/errorType/requestId/stackTrace) with the
`x-amz-function-error: Unhandled` header, from which Step Functions takes the error name. The functions
themselves are still created through IAM and Lambda, so the state machine invokes real ARNs.
"""

from __future__ import annotations

import io
import json
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Mapping
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.awslambda.models import LambdaBackend

from embedding_ingest.pipeline.definitions import FUNCTION_NAMES

REGION = "us-east-1"
# Executions run in moto's threads; this only bounds how long a broken one can hang the suite.
EXECUTION_DEADLINE_SECONDS = 300
POLL_SECONDS = 0.05

Invocable = Callable[[dict[str, Any]], Any]


def _placeholder_zip() -> bytes:
    """Lambda wants a code package; it is never run (invoke is dispatched in-process)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def _lambda_error_payload(exc: Exception) -> dict[str, Any]:
    """What the Lambda Python runtime returns for an unhandled exception."""
    return {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": str(uuid.uuid4()),
            "stackTrace": traceback.format_tb(exc.__traceback__)}


class MotoStepFunctions:
    """One `mock_aws` session with every Lambda function of our definitions created in it.

    `run(definition, name, handlers)` creates a state machine, starts one execution and waits for it;
    `handlers` (function name -> callable(payload)) serve that execution's Lambda invocations."""

    def __init__(self) -> None:
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._invoke_patch = mock.patch.object(LambdaBackend, "invoke", self._make_invoke())
        self._handlers: dict[str, Invocable] = {}
        self._machines = 0
        self.function_arns: dict[str, str] = {}
        self.role_arn = ""

    def __enter__(self) -> MotoStepFunctions:
        self._mock.start()
        self._invoke_patch.start()
        try:
            self._create_functions()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._invoke_patch.stop()
        self._mock.stop()

    def _make_invoke(self) -> Callable[..., bytes]:
        def invoke(backend: LambdaBackend, function_name: str, qualifier: str | None, body: Any,
                   headers: Any, response_headers: dict[str, str]) -> bytes:
            name = backend.get_function(function_name, qualifier).function_name
            try:
                result = self._handlers[name](json.loads(body) if body else {})
            except Exception as exc:  # noqa: BLE001 - every function error goes back as Lambda reports it
                response_headers["x-amz-function-error"] = "Unhandled"
                payload = json.dumps(_lambda_error_payload(exc)).encode()
            else:
                payload = json.dumps(result).encode()
            response_headers["Content-Length"] = str(len(payload))
            return payload

        return invoke

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def _create_functions(self) -> None:
        role = self.client("iam").create_role(
            RoleName="conformance-lambda-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))
        self.role_arn = role["Role"]["Arn"]
        lambdas = self.client("lambda")
        code = _placeholder_zip()
        for name in FUNCTION_NAMES:
            created = lambdas.create_function(FunctionName=name, Runtime="python3.11", Role=self.role_arn,
                                              Handler="placeholder.handler", Code={"ZipFile": code})
            self.function_arns[name] = created["FunctionArn"]

    def resource_for(self, function_name: str) -> str:
        """The Task Resource of a function: its moto Lambda ARN (for build_definition)."""
        return self.function_arns[function_name]

    def run(self, definition: dict[str, Any], name: str, handlers: Mapping[str, Invocable]) -> dict[str, Any]:
        """Run one execution to its end; returns {"describe": DescribeExecution, "events": history}."""
        sfn = self.client("stepfunctions")
        self._machines += 1
        machine = sfn.create_state_machine(name=f"conformance-{self._machines}",
                                           definition=json.dumps(definition), roleArn=self.role_arn)
        self._handlers = dict(handlers)
        arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=name)["executionArn"]
        deadline = time.monotonic() + EXECUTION_DEADLINE_SECONDS
        while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                sfn.stop_execution(executionArn=arn, error="Conformance.Hung",
                                   cause=f"still running after {EXECUTION_DEADLINE_SECONDS} s")
                raise AssertionError(f"moto execution {name!r} did not finish")
            time.sleep(POLL_SECONDS)
        return {"describe": described, "events": self._history(sfn, arn)}

    @staticmethod
    def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]
