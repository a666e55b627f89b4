"""Task: invoke a function through the engine's invoker (a Lambda-shaped call)."""

from __future__ import annotations

import json
from typing import Any

from embedding_ingest.workflow.engine.core import COMMON_FIELDS, Branch, State, failure_details
from embedding_ingest.workflow.engine.error_handling import ErrorHandling
from embedding_ingest.workflow.exceptions import STATES_RUNTIME, StatesFailure, error_name_of
from embedding_ingest.workflow.invokers import function_name_of
from embedding_ingest.workflow.limits import check_payload, to_json
from embedding_ingest.workflow.paths import apply_result_path, evaluate_template


class TaskState(ErrorHandling, State):
    type_name = "Task"
    fields = COMMON_FIELDS | {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"}

    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        super().__init__(name, spec)
        self.resource: str = spec["Resource"]
        self.function_name = function_name_of(self.resource)
        self.parameters = spec.get("Parameters")
        self.result_selector = spec.get("ResultSelector")
        self.result_path: str | None = spec.get("ResultPath", "$")
        self.init_error_handling(spec)

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        payload = self.effective_input(raw_input, context)
        if self.parameters is not None:
            payload = evaluate_template(self.parameters, payload, context, state=self.name,
                                        field="Parameters")
        check_payload(payload, state=self.name, what="input after Parameters")
        run = branch.run
        try:
            result = self.with_retries(lambda _retry: self._attempt(branch, payload), sleep=run.sleep,
                                       jitter=run.jitter)
        except StatesFailure as failure:
            return self.caught(failure, raw_input)
        if self.result_selector is not None:
            result = evaluate_template(self.result_selector, result, context, state=self.name,
                                       field="ResultSelector")
        output = apply_result_path(self.result_path, raw_input, result, state=self.name)
        return self.next_state, self.state_output(output, context)

    def _attempt(self, branch: Branch, payload: Any) -> Any:
        # A Lambda function ARN as Resource (the only kind the engine runs): AWS records the call as
        # LambdaFunction* events, not the Task* events of service integrations.
        branch.record("LambdaFunctionScheduled", {"resource": self.resource, "input": to_json(payload),
                                                  "inputDetails": {"truncated": False}})
        branch.record("LambdaFunctionStarted")
        try:
            # A JSON round trip each way: the function gets its own copy of plain JSON data, as a Lambda
            # would, and cannot hand back anything Step Functions could not hold.
            result = branch.run.invoker.invoke(self.resource, json.loads(to_json(payload)))
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
