"""The two ways a Task calls Lambda, as Step Functions runs them.

- `LambdaInvoke`: the optimized integration, `"Resource": "arn:aws:states:::lambda:invoke"` with
  `Parameters: {"FunctionName": ..., "Payload": ...}`: a request-response Invoke whose result is
  Invoke's response (`Payload` parsed from JSON, `StatusCode`, `ExecutedVersion`, `SdkHttpMetadata`,
  `SdkResponseMetadata`), recorded as Task* events with `resourceType: "lambda"` and
  `resource: "invoke"` (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html;
  event fields: https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html).
- `DirectLambda`: a function ARN as Resource: the function's result as it is, recorded as
  LambdaFunction* events.

Both report a function error as Lambda does: the error is the payload's `errorType` (the exception's
class name), the cause the error payload `{"errorMessage", "errorType", "requestId", "stackTrace"}` as
compact JSON; an unknown function is `Lambda.ResourceNotFoundException`, a function process that died
`Lambda.Unknown` (what AWS reports for an out-of-memory or timed-out function:
https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).

Request ids are uuid5 of the execution ARN and the TaskScheduled event id, not random: a history is
reproducible, and a function's log lines carry the same id (invokers.current_invocation()).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from asl_local.errors import (
    STATES_DATA_LIMIT,
    FunctionNotFoundError,
    StatesFailure,
    TaskProcessCrashedError,
    error_name_of,
    stack_trace_of,
)
from asl_local.invokers import function_name_of, is_lambda_function_arn
from asl_local.limits import MAX_PAYLOAD_BYTES, payload_bytes, to_json

LAMBDA_INVOKE = "lambda:invoke"
# AWS's limits on a failure's error name and cause (botocore's SensitiveError / SensitiveCause).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768
RESOURCE_NOT_FOUND = "Lambda.ResourceNotFoundException"
LAMBDA_UNKNOWN = "Lambda.Unknown"
LAMBDA_CLIENT_ERROR = "Lambda.AWSLambdaException"
_REQUEST_ID_NAMESPACE = uuid.UUID("7f0e1c52-5d6a-4c1e-9a51-8f3b0c2d4e61")


def integration_of(resource: str) -> tuple[str, str] | None:
    """`arn:aws:states:::lambda:invoke.waitForTaskToken` -> ("lambda:invoke", ".waitForTaskToken");
    ("lambda:invoke", "") for the request-response form; None for a resource that is no service
    integration (a function or activity ARN). Any partition."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "states" or parts[3] or parts[4]:
        return None
    service_action = parts[5]
    for pattern in (".waitForTaskToken", ".sync:2", ".sync"):
        if service_action.endswith(pattern):
            return service_action[: -len(pattern)], pattern
    return service_action, ""


def request_id_for(execution_arn: str, scheduled_event_id: int) -> str:
    """The request id of the invocation a TaskScheduled / LambdaFunctionScheduled event began."""
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{execution_arn}#{scheduled_event_id}"))


# Invoke's FunctionName pattern (Lambda API reference, Invoke, "FunctionName"): name, optional
# partition/region/account/"function:" before it, optional version or alias after it.
FUNCTION_NAME_PATTERN = re.compile(
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?(([a-z]{2}(-gov)?-[a-z]+-\d{1}):)?((\d{12}):)?(function:)?"
    r"([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?")


def split_function_name(value: str) -> tuple[str, str | None] | None:
    """Invoke's FunctionName formats (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):
    `my-function`, `my-function:v1`, `arn:aws:lambda:us-west-2:123456789012:function:my-function[:v1]`,
    `123456789012:function:my-function` -> (name, qualifier or None); None when it is none of them."""
    match = FUNCTION_NAME_PATTERN.fullmatch(value)
    return None if match is None else (match.group(9), match.group(11))


def function_arn_for(value: str, *, region: str, account: str) -> str:
    """The unqualified function ARN a valid FunctionName designates (partial forms are completed with
    the caller's region and account)."""
    match = FUNCTION_NAME_PATTERN.fullmatch(value)
    assert match is not None
    partition = match.group(2) or "aws"
    return (f"arn:{partition}:lambda:{match.group(4) or region}:{match.group(7) or account}:function:"
            f"{match.group(9)}")


def error_cause(exc: BaseException, error: str, request_id: str) -> str:
    """Lambda's error payload for a function that raised, as compact JSON, at most MAX_CAUSE_CHARS
    (the oldest stack frames go first, then the message is cut)."""
    frames = stack_trace_of(exc)
    message = str(exc)
    while True:
        cause = to_json({"errorMessage": message, "errorType": error, "requestId": request_id,
                         "stackTrace": frames})
        if len(cause) <= MAX_CAUSE_CHARS:
            return cause
        if frames:
            frames = frames[1:]
        else:
            message = message[: max(0, len(message) - (len(cause) - MAX_CAUSE_CHARS) - 3)] + "..."


def function_failure(exc: BaseException, request_id: str, function_arn: str) -> StatesFailure:
    """The failure a Task records when invoking `function_arn` raised `exc`."""
    if isinstance(exc, FunctionNotFoundError):
        return StatesFailure(RESOURCE_NOT_FOUND, (
            f"Function not found: {function_arn} (Service: AWSLambda; Status Code: 404; Error Code: "
            f"ResourceNotFoundException; Request ID: {request_id}; Proxy: null)"))
    if isinstance(exc, TaskProcessCrashedError):
        died = to_json({"errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {exc}",
                        "errorType": "Runtime.ExitError"})
        return StatesFailure(LAMBDA_UNKNOWN, "The cause could not be determined because Lambda did not "
                                             f"return an error type. Returned payload: {died}")
    error = error_name_of(exc)[:MAX_ERROR_CHARS]
    return StatesFailure(error, error_cause(exc, error, request_id))


def result_too_large(result: Any, label: str) -> StatesFailure | None:
    """States.DataLimitExceeded when a task's result is over the payload quota, in AWS's words."""
    if payload_bytes(result) <= MAX_PAYLOAD_BYTES:
        return None
    return StatesFailure(STATES_DATA_LIMIT, f"The state/task '{label}' returned a result with a size "
                                            "exceeding the maximum number of bytes service limit.")


def invoke_response(payload: Any, request_id: str, *, now: float, executed_version: str = "$LATEST"
                    ) -> dict[str, Any]:
    """Invoke's response as the optimized integration hands it to the state (the docs' example, plus
    AllHttpHeaders as recorded on AWS), with `payload` the function's result parsed from JSON."""
    trace = uuid.uuid5(_REQUEST_ID_NAMESPACE, request_id).hex
    headers = {"Connection": "keep-alive", "Content-Length": str(payload_bytes(payload)),
               "Content-Type": "application/json", "Date": formatdate(now, usegmt=True),
               "X-Amz-Executed-Version": executed_version, "x-amzn-Remapped-Content-Length": "0",
               "x-amzn-RequestId": request_id,
               "X-Amzn-Trace-Id": f"root=1-{int(now):08x}-{trace[:24]};sampled=0"}
    return {"ExecutedVersion": executed_version, "Payload": payload,
            "SdkHttpMetadata": {"AllHttpHeaders": {name: [value] for name, value in headers.items()},
                                "HttpHeaders": headers, "HttpStatusCode": 200},
            "SdkResponseMetadata": {"RequestId": request_id}, "StatusCode": 200}


@dataclass(frozen=True)
class Call:
    """One invocation: `target` is what the invoker gets as resource (the function ARN, qualified when
    the call names a version or alias), `function_arn` the unqualified ARN, `event` the function's input."""

    target: str
    function_arn: str
    qualifier: str | None
    event: Any


class DirectLambda:
    """A Lambda function ARN as the Task's Resource (LambdaFunction* events)."""

    event_prefix = "LambdaFunction"

    def __init__(self, resource: str) -> None:
        self.resource = resource

    def request(self, effective_input: Any, region: str, account: str) -> Call:
        parts = self.resource.split(":")
        qualifier = parts[7] if len(parts) == 8 else None
        return Call(self.resource, ":".join(parts[:7]), qualifier, effective_input)

    def scheduled(self, effective_input: Any, timeout: float | None, heartbeat: float | None,
                  region: str) -> dict[str, Any]:
        return {"resource": self.resource, "input": to_json(effective_input),
                "inputDetails": {"truncated": False},
                **({"timeoutInSeconds": int(timeout)} if timeout else {})}

    def details(self) -> dict[str, Any]:
        return {}

    def result(self, payload: Any, call: Call, request_id: str, now: float) -> Any:
        return payload

    def size_label(self) -> str:
        return self.resource


class LambdaInvoke:
    """`arn:aws:states:::lambda:invoke` (request-response): Task* events, Invoke's response as result."""

    event_prefix = "Task"

    def __init__(self, resource: str) -> None:
        self.resource = resource

    def request(self, effective_input: Any, region: str, account: str) -> Call:
        """The call the evaluated Parameters describe; raises StatesFailure as Lambda answers a
        FunctionName it cannot parse (a ValidationException)."""
        value = effective_input.get("FunctionName") if isinstance(effective_input, dict) else None
        split = split_function_name(value) if isinstance(value, str) else None
        if split is None:
            raise StatesFailure(LAMBDA_CLIENT_ERROR, (
                f"1 validation error detected: Value {to_json(value)} at 'functionName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                f"{FUNCTION_NAME_PATTERN.pattern} (Service: AWSLambda; Status Code: 400; "
                "Error Code: ValidationException; Proxy: null)"))
        arn = function_arn_for(value, region=region, account=account)
        qualifier = split[1]
        return Call(arn + (f":{qualifier}" if qualifier else ""), arn, qualifier,
                    effective_input.get("Payload", {}))

    def scheduled(self, effective_input: Any, timeout: float | None, heartbeat: float | None,
                  region: str) -> dict[str, Any]:
        return {**self.details(), "region": region, "parameters": to_json(effective_input),
                **({"timeoutInSeconds": int(timeout)} if timeout else {}),
                **({"heartbeatInSeconds": int(heartbeat)} if heartbeat else {})}

    def details(self) -> dict[str, Any]:
        return {"resourceType": "lambda", "resource": "invoke"}

    def result(self, payload: Any, call: Call, request_id: str, now: float) -> Any:
        version = call.qualifier if call.qualifier and call.qualifier.isdigit() else "$LATEST"
        return invoke_response(payload, request_id, now=now, executed_version=version)

    def size_label(self) -> str:
        return "lambda"


def integration_for(resource: str) -> DirectLambda | LambdaInvoke:
    """The call style of a Task's Resource (validate.check_task has refused every other one)."""
    if integration_of(resource) == (LAMBDA_INVOKE, ""):
        return LambdaInvoke(resource)
    return DirectLambda(resource)


def function_name_in(resource: str, parameters: Any) -> str | None:
    """The function a Task calls, when its definition names it: a function ARN as Resource, or
    lambda:invoke with a literal FunctionName. None otherwise (a FunctionName.$ path, another resource)."""
    if is_lambda_function_arn(resource):
        return function_name_of(resource)
    if integration_of(resource) != (LAMBDA_INVOKE, ""):
        return None
    value = parameters.get("FunctionName") if isinstance(parameters, dict) else None
    split = split_function_name(value) if isinstance(value, str) else None
    return None if split is None else split[0]
