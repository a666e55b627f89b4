"""Task: invoke a function through the engine's invoker (a Lambda-shaped call), with TimeoutSeconds.

Each attempt evaluates Parameters afresh (so $$.State.RetryCount counts), invokes, then applies
ResultSelector, ResultPath and OutputPath; any failure on the way is retried and caught (AWS).
HeartbeatSeconds is checked at load; a Lambda function sends no heartbeats, so, as on AWS, only
TimeoutSeconds bounds a Lambda task (heartbeats apply to activities and callback tasks)."""

from __future__ import annotations

import json
from typing import Any

from asl_local.clock import TaskTimedOut
from asl_local.engine.core import (
    COMMON_FIELDS,
    Branch,
    ExecutionTimedOut,
    State,
    failure_details,
)
from asl_local.engine.error_handling import ErrorHandling
from asl_local.errors import (
    STATES_RUNTIME,
    STATES_TIMEOUT,
    StatesFailure,
    error_name_of,
)
from asl_local.intrinsics.functions import is_integer
from asl_local.invokers import function_name_of
from asl_local.limits import check_payload, to_json
from asl_local.paths import apply_result_path, select_for
from asl_local.templates import evaluate_template


class TaskState(ErrorHandling, State):
    type_name = "Task"
    fields = COMMON_FIELDS | {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch",
                              "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
                              "HeartbeatSecondsPath"}

    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        super().__init__(name, spec)
        self.resource: str = spec["Resource"]
        self.function_name = function_name_of(self.resource)
        self.parameters = spec.get("Parameters")
        self.result_selector = spec.get("ResultSelector")
        self.init_error_handling(spec)

    def attempt(self, branch: Branch, raw_input: Any, data: Any, context: dict[str, Any]) -> Any:
        payload = data
        if self.parameters is not None:
            payload = evaluate_template(self.parameters, data, context, state=self.name, field="Parameters",
                                        rng=branch.run.rng)
        check_payload(payload, state=self.name, what="input after Parameters")
        result = self._invoke(branch, payload, self._timeout(data, context))
        if self.result_selector is not None:
            result = evaluate_template(self.result_selector, result, context, state=self.name,
                                       field="ResultSelector", rng=branch.run.rng)
        output = self.state_output(apply_result_path(self.result_path, raw_input, result, state=self.name),
                                   context)
        check_payload(output, state=self.name, what="output")
        return output

    def _timeout(self, data: Any, context: dict[str, Any]) -> float | None:
        if "TimeoutSecondsPath" in self.spec:
            value = select_for(self.spec["TimeoutSecondsPath"], data, context, state=self.name,
                               field="TimeoutSecondsPath")
            if not is_integer(value) or value < 1:
                raise StatesFailure(STATES_RUNTIME, f"State '{self.name}': TimeoutSecondsPath must select a "
                                                    f"positive integer, got {to_json(value)[:80]}")
            return float(value)
        return float(self.spec["TimeoutSeconds"]) if "TimeoutSeconds" in self.spec else None

    def _invoke(self, branch: Branch, payload: Any, timeout: float | None) -> Any:
        # A Lambda function ARN as Resource (the only kind the engine runs): AWS records the call as
        # LambdaFunction* events, not the Task* events of service integrations.
        run = branch.run
        branch.record("LambdaFunctionScheduled", {"resource": self.resource, "input": to_json(payload),
                                                  "inputDetails": {"truncated": False},
                                                  **({"timeoutInSeconds": int(timeout)} if timeout else {})})
        branch.record("LambdaFunctionStarted")
        remaining = run.remaining()
        limit = timeout if remaining is None else min(timeout or remaining, remaining)
        try:
            # A JSON round trip each way: the function gets its own copy of plain JSON data, as a Lambda
            # would, and cannot hand back anything Step Functions could not hold.
            result = run.clock.call_with_timeout(
                lambda: run.invoker.invoke(self.resource, json.loads(to_json(payload))), limit)
        except TaskTimedOut:
            if remaining is not None and (timeout is None or remaining < timeout):
                raise ExecutionTimedOut(run.timeout_seconds or 0) from None
            failure = StatesFailure(STATES_TIMEOUT, f"Task '{self.name}' did not finish within its "
                                                    f"TimeoutSeconds of {timeout:g} seconds.")
            branch.record("LambdaFunctionTimedOut", failure_details(failure))
            raise failure from None
        except Exception as exc:  # noqa: BLE001 - any function error becomes data named by its class
            error = error_name_of(exc)
            failure = StatesFailure(error, to_json({"errorMessage": str(exc), "errorType": error}))
            branch.record("LambdaFunctionFailed", failure_details(failure))
            raise failure from None
        try:
            result = json.loads(to_json(result))
            check_payload(result, state=self.name, what="result")
        except StatesFailure as failure:
            branch.record("LambdaFunctionFailed", failure_details(failure))
            raise
        except (TypeError, ValueError) as exc:
            failure = StatesFailure(STATES_RUNTIME, f"State '{self.name}': {self.function_name} returned "
                                                    f"a value that is not JSON: {exc}")
            branch.record("LambdaFunctionFailed", failure_details(failure))
            raise failure from None
        branch.record("LambdaFunctionSucceeded", {"output": to_json(result),
                                                  "outputDetails": {"truncated": False}})
        return result
