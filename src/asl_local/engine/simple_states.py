"""The states without side effects: Pass, Succeed and Fail."""

from __future__ import annotations

from typing import Any

from asl_local.engine.core import COMMON_FIELDS, Branch, State
from asl_local.errors import STATES_RUNTIME, StatesFailure
from asl_local.intrinsics.parser import evaluate_intrinsic
from asl_local.limits import to_json
from asl_local.paths import apply_result_path, select_for
from asl_local.templates import evaluate_template


class PassState(State):
    type_name = "Pass"
    fields = COMMON_FIELDS | {"Parameters", "Result", "ResultPath"}

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        value = self.effective_input(raw_input, context)
        if "Parameters" in self.spec:
            value = evaluate_template(self.spec["Parameters"], value, context, state=self.name,
                                      field="Parameters", rng=branch.run.rng)
        result = self.spec.get("Result", value)
        output = apply_result_path(self.spec.get("ResultPath", "$"), raw_input, result, state=self.name)
        return self.next_state, self.state_output(output, context)


class SucceedState(State):
    type_name = "Succeed"
    fields = frozenset({"Type", "Comment", "InputPath", "OutputPath"})
    terminal = True

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        return None, self.state_output(self.effective_input(raw_input, context), context)


class FailState(State):
    type_name = "Fail"
    fields = frozenset({"Type", "Comment", "Error", "Cause", "ErrorPath", "CausePath"})
    terminal = True

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        error = self._text("Error", raw_input, context)
        cause = self._text("Cause", raw_input, context)
        raise StatesFailure(error, cause if cause is not None else "")

    def _text(self, key: str, data: Any, context: dict[str, Any]) -> Any:
        path = self.spec.get(f"{key}Path")
        if path is None:
            return self.spec.get(key)
        if path.startswith("States."):
            value = evaluate_intrinsic(path, data, context, state=self.name, field=f"{key}Path")
        else:
            value = select_for(path, data, context, state=self.name, field=f"{key}Path")
        if not isinstance(value, str):  # AWS requires the selected Error/Cause to be a string
            raise StatesFailure(STATES_RUNTIME, f"State '{self.name}': {key}Path '{path}' selected "
                                                f"{to_json(value)[:80]}, which is not a string")
        return value
