"""Parallel: run every branch on the same input at once; the output is the list of branch outputs in
branch order. When a branch fails the others stop and the state fails with that branch's error."""

from __future__ import annotations

from typing import Any

from asl_local.engine.branches import run_branches
from asl_local.engine.core import COMMON_FIELDS, Branch, Program, State
from asl_local.engine.error_handling import ErrorHandling
from asl_local.limits import check_payload
from asl_local.paths import apply_result_path
from asl_local.templates import evaluate_template


class ParallelState(ErrorHandling, State):
    type_name = "Parallel"
    fields = COMMON_FIELDS | {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"}

    def __init__(self, name: str, spec: dict[str, Any], branches: list[Program]) -> None:
        super().__init__(name, spec)
        self.branches = branches
        self.init_error_handling(spec)

    def attempt(self, branch: Branch, raw_input: Any, data: Any, context: dict[str, Any]) -> Any:
        run = branch.run
        branch_input = data
        if "Parameters" in self.spec:
            branch_input = evaluate_template(self.spec["Parameters"], data, context, state=self.name,
                                             field="Parameters", rng=run.rng)
        branch.record("ParallelStateStarted")
        outcome = run_branches(branch, len(self.branches),
                               lambda index, child: self.branches[index].run(child, branch_input),
                               workers=len(self.branches))
        if (fatal := outcome.fatal()) is not None:
            raise fatal
        if outcome.failures:
            branch.record("ParallelStateFailed")
            raise outcome.failures[0][1]
        branch.record("ParallelStateSucceeded")
        results: Any = outcome.results
        if "ResultSelector" in self.spec:
            results = evaluate_template(self.spec["ResultSelector"], results, context, state=self.name,
                                        field="ResultSelector", rng=run.rng)
        output = self.state_output(apply_result_path(self.result_path, raw_input, results, state=self.name),
                                   context)
        check_payload(output, state=self.name, what="output")
        return output
