"""Retry and Catch with AWS's matching rules: the first retrier/catcher whose ErrorEquals matches wins
(order matters); States.ALL matches everything except States.Runtime and States.DataLimitExceeded;
States.TaskFailed matches any error a task raised (not States.* errors such as States.Timeout)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asl_local.engine.core import Branch
from asl_local.errors import (
    NOT_MATCHED_BY_STATES_ALL,
    STATES_ALL,
    STATES_TASK_FAILED,
    StatesFailure,
)
from asl_local.paths import apply_result_path

T = TypeVar("T")

RETRIER_FIELDS = frozenset({"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate",
                            "MaxDelaySeconds", "JitterStrategy", "Comment"})
CATCHER_FIELDS = frozenset({"ErrorEquals", "Next", "ResultPath", "Comment"})


def error_matches(error_equals: list[str], failure: StatesFailure) -> bool:
    if not failure.catchable:
        return False
    error = failure.error
    for name in error_equals:
        if name == error:
            return True
        if name == STATES_ALL and error not in NOT_MATCHED_BY_STATES_ALL:
            return True
        if name == STATES_TASK_FAILED and error is not None and not error.startswith("States."):
            return True
    return False


@dataclass(frozen=True)
class Retrier:
    error_equals: list[str]
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter_full: bool = False

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Retrier:
        return cls(error_equals=list(spec["ErrorEquals"]),
                   interval_seconds=spec.get("IntervalSeconds", 1),
                   max_attempts=spec.get("MaxAttempts", 3),
                   backoff_rate=spec.get("BackoffRate", 2.0),
                   max_delay_seconds=spec.get("MaxDelaySeconds"),
                   jitter_full=spec.get("JitterStrategy", "NONE") == "FULL")

    def delay(self, retries_done: int) -> float:
        """Delay before retry number `retries_done + 1`, before jitter."""
        delay = self.interval_seconds * self.backoff_rate ** retries_done
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        return delay


@dataclass(frozen=True)
class Catcher:
    error_equals: list[str]
    next_state: str
    result_path: str | None = "$"

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Catcher:
        return cls(error_equals=list(spec["ErrorEquals"]), next_state=spec["Next"],
                   result_path=spec.get("ResultPath", "$"))


class ErrorHandling:
    """Mixin for states that may declare Retry and Catch (Task, Map, Parallel)."""

    name: str
    next_state: str | None

    def init_error_handling(self, spec: dict[str, Any]) -> None:
        self.result_path: str | None = spec.get("ResultPath", "$")
        self.retriers = [Retrier.from_spec(r) for r in spec.get("Retry", [])]
        self.catchers = [Catcher.from_spec(c) for c in spec.get("Catch", [])]

    def attempt(self, branch: Branch, raw_input: Any, data: Any, context: dict[str, Any]) -> Any:
        """One try of the state, from its effective input `data` to its output (after OutputPath)."""
        raise NotImplementedError

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        """Tries `attempt` under Retry/Catch; each try sees its own $$.State.RetryCount."""
        data = self.effective_input(raw_input, context)  # type: ignore[attr-defined] - State's method
        return self.guarded(branch, raw_input, lambda retry: self.attempt(branch, raw_input, data, {
            **context, "State": {**context["State"], "RetryCount": retry}}))

    def guarded(self, branch: Branch, raw_input: Any,
                attempt: Callable[[int], Any]) -> tuple[str | None, Any]:
        """(next state, output) of a state with Retry/Catch: `attempt(retry_count)` does everything from
        Parameters to OutputPath, so a failure anywhere in it (a ResultPath that cannot be applied, an
        output over the payload limit) is retried and caught like the task's own error."""
        try:
            output = self.with_retries(attempt, wait=branch.wait, jitter=branch.run.jitter)
        except StatesFailure as failure:
            return self.caught(failure, raw_input)
        return self.next_state, output

    def with_retries(self, attempt: Callable[[int], T], *, wait: Callable[[float], None],
                     jitter: Callable[[float], float]) -> T:
        """Call `attempt(retry_count)` until it succeeds or no retrier allows another try. Only the
        first matching retrier counts; once it is exhausted the failure stands (AWS semantics)."""
        retries_done = [0] * len(self.retriers)
        retry_count = 0
        while True:
            try:
                return attempt(retry_count)
            except StatesFailure as failure:
                index = next((i for i, r in enumerate(self.retriers)
                              if error_matches(r.error_equals, failure)), None)
                if index is None or retries_done[index] >= self.retriers[index].max_attempts:
                    raise
                retrier = self.retriers[index]
                delay = retrier.delay(retries_done[index])
                wait(jitter(delay) if retrier.jitter_full else delay)
                retries_done[index] += 1
                retry_count += 1

    def caught(self, failure: StatesFailure, raw_input: Any) -> tuple[str, Any]:
        """(next state, output) of the first matching catcher; re-raises when none matches."""
        for catcher in self.catchers:
            if error_matches(catcher.error_equals, failure):
                output = apply_result_path(catcher.result_path, raw_input, failure.as_error_output(),
                                           state=self.name)
                return catcher.next_state, output
        raise failure
