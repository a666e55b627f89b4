"""Task: invoke a Lambda function through the engine's invoker, with TimeoutSeconds; as a function ARN
Resource or through the optimized integration arn:aws:states:::lambda:invoke (lambda_invoke.py).

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
from asl_local.engine.lambda_invoke import (
    function_failure,
    integration_for,
    request_id_for,
    result_too_large,
)
from asl_local.errors import (
    STATES_RUNTIME,
    STATES_TIMEOUT,
    StatesFailure,
)
from asl_local.intrinsics.functions import is_integer
from asl_local.invokers import Invocation, call_as, function_name_of
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
        self.integration = integration_for(self.resource)
        self.parameters = spec.get("Parameters")
        self.result_selector = spec.get("ResultSelector")
        self.init_error_handling(spec)

    def attempt(self, branch: Branch, raw_input: Any, data: Any, context: dict[str, Any]) -> Any:
        payload = data
        if self.parameters is not None:
            payload = evaluate_template(self.parameters, data, context, state=self.name, field="Parameters",
                                        rng=branch.run.rng)
        check_payload(payload, state=self.name, what="input after Parameters")
        result = self._invoke(branch, payload, self._seconds(data, context, "TimeoutSeconds"),
                              self._seconds(data, context, "HeartbeatSeconds"))
        if self.result_selector is not None:
            result = evaluate_template(self.result_selector, result, context, state=self.name,
                                       field="ResultSelector", rng=branch.run.rng)
        output = self.state_output(apply_result_path(self.result_path, raw_input, result, state=self.name),
                                   context)
        check_payload(output, state=self.name, what="output")
        return output

    def _seconds(self, data: Any, context: dict[str, Any], key: str) -> float | None:
        if f"{key}Path" in self.spec:
            value = select_for(self.spec[f"{key}Path"], data, context, state=self.name, field=f"{key}Path")
            if not is_integer(value) or value < 1:
                raise StatesFailure(STATES_RUNTIME, f"State '{self.name}': {key}Path must select a "
                                                    f"positive integer, got {to_json(value)[:80]}")
            return float(value)
        return float(self.spec[key]) if key in self.spec else None

    def _invoke(self, branch: Branch, payload: Any, timeout: float | None, heartbeat: float | None) -> Any:
        """One invocation, recorded as AWS records it: Scheduled, Started, then Succeeded, Failed or
        TimedOut (Task* for lambda:invoke, LambdaFunction* for a function ARN; lambda_invoke.py)."""
        run, style = branch.run, self.integration
        prefix, details = style.event_prefix, style.details()
        scheduled = branch.record(f"{prefix}Scheduled",
                                  style.scheduled(payload, timeout, heartbeat, run.region))
        request_id = request_id_for(run.execution["Id"], scheduled)

        def failed(failure: StatesFailure) -> StatesFailure:
            branch.record(f"{prefix}Failed", {**details, **failure_details(failure)})
            return failure

        try:
            call = style.request(payload, run.region, run.account)
        except StatesFailure as failure:  # a FunctionName Lambda would refuse: the call never starts
            raise failed(failure) from None
        branch.record(f"{prefix}Started", details or None)
        invocation = Invocation(request_id, function_name_of(call.target), call.function_arn,
                                run.execution["Id"])
        remaining = run.remaining()
        limit = timeout if remaining is None else min(timeout or remaining, remaining)
        try:
            # A JSON round trip each way: the function gets its own copy of plain JSON data, as a Lambda
            # would, and cannot hand back anything Step Functions could not hold.
            event = json.loads(to_json(call.event))
            result = run.clock.call_with_timeout(
                lambda: call_as(invocation, lambda: run.invoker.invoke(call.target, event)), limit)
        except TaskTimedOut:
            if remaining is not None and (timeout is None or remaining < timeout):
                raise ExecutionTimedOut(run.timeout_seconds or 0) from None
            failure = StatesFailure(STATES_TIMEOUT, f"Task '{self.name}' did not finish within its "
                                                    f"TimeoutSeconds of {timeout:g} seconds.")
            branch.record(f"{prefix}TimedOut", {**details, **failure_details(failure)})
            raise failure from None
        except Exception as exc:  # noqa: BLE001 - any function error becomes data named by its class
            raise failed(function_failure(exc, request_id, call.function_arn)) from None
        try:
            result = style.result(json.loads(to_json(result)), call, request_id, run.clock.now())
        except (TypeError, ValueError) as exc:
            raise failed(StatesFailure(STATES_RUNTIME, f"State '{self.name}': {invocation.function_name} "
                                                       f"returned a value that is not JSON: {exc}")) from None
        too_large = result_too_large(result, style.size_label())
        if too_large is not None:
            raise failed(too_large)
        branch.record(f"{prefix}Succeeded", {**details, "output": to_json(result),
                                             "outputDetails": {"truncated": False}})
        return result
