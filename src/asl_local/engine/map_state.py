"""Map (inline): run the item processor once per item, at most MaxConcurrency (AWS caps inline Map at
40) at a time. When an iteration fails beyond the tolerated failures, the Map fails with its error and
the other iterations stop (MapIterationAborted), as on AWS."""

from __future__ import annotations

from typing import Any

from asl_local.engine.branches import IterationEvents, run_branches
from asl_local.engine.core import COMMON_FIELDS, Branch, Program, State
from asl_local.engine.error_handling import ErrorHandling
from asl_local.errors import (
    STATES_EXCEED_TOLERATED_FAILURE_THRESHOLD,
    STATES_RUNTIME,
    StatesFailure,
)
from asl_local.intrinsics.functions import is_integer, is_number
from asl_local.limits import check_payload, to_json
from asl_local.paths import apply_result_path, select_for
from asl_local.templates import evaluate_template

# AWS: "In Inline mode, the Map state supports up to 40 concurrent iterations."
# https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html
INLINE_MAP_MAX_CONCURRENCY = 40


class MapState(ErrorHandling, State):
    type_name = "Map"
    fields = COMMON_FIELDS | {"ItemsPath", "ItemSelector", "Parameters", "ItemProcessor", "Iterator",
                              "MaxConcurrency", "MaxConcurrencyPath", "ResultSelector", "ResultPath",
                              "Retry", "Catch", "Label", "ToleratedFailureCount",
                              "ToleratedFailureCountPath", "ToleratedFailurePercentage",
                              "ToleratedFailurePercentagePath"}

    def __init__(self, name: str, spec: dict[str, Any], processor: Program) -> None:
        super().__init__(name, spec)
        self.processor = processor
        self.items_path: str = spec.get("ItemsPath", "$")
        self.item_selector = spec.get("ItemSelector", spec.get("Parameters"))
        self.init_error_handling(spec)

    def attempt(self, branch: Branch, raw_input: Any, data: Any, context: dict[str, Any]) -> Any:
        items = select_for(self.items_path, data, context, state=self.name, field="ItemsPath")
        if not isinstance(items, list):
            raise StatesFailure(STATES_RUNTIME, f"Map state '{self.name}': ItemsPath {self.items_path!r} "
                                                f"must select a JSON array, got {to_json(items)[:200]}")
        concurrency = self._setting("MaxConcurrency", data, context, is_integer) or INLINE_MAP_MAX_CONCURRENCY
        tolerated = self._tolerance(data, context, len(items))
        branch.record("MapStateStarted", {"length": len(items)})

        def iterate(index: int, item_branch: Branch) -> Any:
            item_input = items[index]
            if self.item_selector is not None:
                item_context = {**context, "Map": {"Item": {"Index": index, "Value": items[index]}}}
                item_input = evaluate_template(self.item_selector, data, item_context, state=self.name,
                                               field="ItemSelector", rng=branch.run.rng)
            check_payload(item_input, state=self.name, what=f"iteration {index} input")
            return self.processor.run(item_branch, item_input)

        outcome = run_branches(branch, len(items), iterate, events=IterationEvents(self.name),
                               workers=min(concurrency, INLINE_MAP_MAX_CONCURRENCY,
                                           branch.run.max_map_threads),
                               tolerated=tolerated)
        if (fatal := outcome.fatal()) is not None:
            raise fatal
        results = outcome.results
        if outcome.failures:
            if not tolerated(len(outcome.failures)):
                failure = outcome.failures[0][1]
                if self._has_tolerance():
                    failure = StatesFailure(STATES_EXCEED_TOLERATED_FAILURE_THRESHOLD,
                                            f"Map state '{self.name}': {len(outcome.failures)} of "
                                            f"{len(items)} iterations failed, more than tolerated")
                branch.record("MapStateFailed")
                raise failure
            for index, failure in outcome.failures:  # a tolerated failure leaves its error in place
                results[index] = failure.as_error_output()
        branch.record("MapStateSucceeded")
        if "ResultSelector" in self.spec:
            results = evaluate_template(self.spec["ResultSelector"], results, context, state=self.name,
                                        field="ResultSelector", rng=branch.run.rng)
        output = self.state_output(apply_result_path(self.result_path, raw_input, results, state=self.name),
                                   context)
        check_payload(output, state=self.name, what="output")
        return output

    def _setting(self, key: str, data: Any, context: dict[str, Any], valid: Any) -> Any:
        """A static field or its *Path form (selected from the effective input); None when absent."""
        if f"{key}Path" not in self.spec:
            return self.spec.get(key)
        value = select_for(self.spec[f"{key}Path"], data, context, state=self.name, field=f"{key}Path")
        if not valid(value) or value < 0:
            raise StatesFailure(STATES_RUNTIME, f"Map state '{self.name}': {key}Path selected "
                                                f"{to_json(value)[:80]}, not a non-negative number")
        return value

    def _has_tolerance(self) -> bool:
        return any(key.startswith("ToleratedFailure") for key in self.spec)

    def _tolerance(self, data: Any, context: dict[str, Any], total: int) -> Any:
        count = self._setting("ToleratedFailureCount", data, context, is_integer)
        percentage = self._setting("ToleratedFailurePercentage", data, context, is_number)
        if percentage is not None and percentage > 100:
            raise StatesFailure(STATES_RUNTIME, f"Map state '{self.name}': ToleratedFailurePercentage "
                                                f"{percentage} is over 100")

        # The Map fails as soon as either threshold is exceeded (both are "up to and including").
        def tolerated(failures: int) -> bool:
            within_count = count is None or failures <= count
            within_share = percentage is None or failures * 100 <= percentage * total
            return (count is not None or percentage is not None) and within_count and within_share

        return tolerated
