"""The pieces every state shares: the run's services, a branch of execution (the top-level flow, one
Map iteration or one Parallel branch), a program (StartAt + States) and the State base class with the
common fields."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from asl_local.arns import DEFAULT_ACCOUNT, DEFAULT_REGION
from asl_local.clock import Clock
from asl_local.errors import STATES_TIMEOUT, StatesFailure
from asl_local.history import HistoryRecorder
from asl_local.invokers import Invoker
from asl_local.limits import check_payload, to_json
from asl_local.paths import apply_input_path

COMMON_FIELDS = frozenset({"Type", "Comment", "Next", "End", "InputPath", "OutputPath"})


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ExecutionTimedOut(StatesFailure):
    """The execution's own TimeoutSeconds passed: it ends TIMED_OUT, nothing can catch it."""

    def __init__(self, timeout: float) -> None:
        super().__init__(STATES_TIMEOUT, f"The execution exceeded its TimeoutSeconds of {timeout:g} "
                                         "seconds.", catchable=False)


class BranchAborted(Exception):  # noqa: N818 - control flow: a sibling failed, this branch stops
    """Raised inside a Map iteration or Parallel branch whose sibling failed (AWS stops them)."""


class StopSignal(threading.Event):
    """Set when a sibling branch failed; `at` is the clock's time of that failure (the earliest, if
    several). A branch honours it once its own time reaches `at`: under a real clock at once, under a
    virtual clock only when, in simulated time, the failure had already happened."""

    def __init__(self) -> None:
        super().__init__()
        self.at = float("inf")

    def stop(self, at: float) -> None:
        self.at = min(self.at, at)
        self.set()

    def reached(self, now: float) -> bool:
        return self.is_set() and now >= self.at


@dataclass
class Run:
    """Execution-wide services, shared by every branch (thread-safe)."""

    history: HistoryRecorder
    invoker: Invoker
    clock: Clock
    rng: random.Random
    execution: dict[str, Any]  # $$.Execution
    state_machine: dict[str, Any]  # $$.StateMachine
    max_map_threads: int
    deadline: float | None = None  # the execution's TimeoutSeconds as an epoch time
    timeout_seconds: float | None = None
    region: str = DEFAULT_REGION  # of the engine's ARNs, and TaskScheduled's `region`
    account: str = DEFAULT_ACCOUNT
    rng_lock: threading.Lock = field(default_factory=threading.Lock)

    def jitter(self, upper: float) -> float:
        with self.rng_lock:
            return self.rng.uniform(0.0, upper)

    def remaining(self) -> float | None:
        """Seconds left before the execution times out (None: no execution timeout)."""
        return None if self.deadline is None else self.deadline - self.clock.now()


@dataclass
class Branch:
    """One thread of execution; remembers its latest event so previousEventId links stay per-branch.
    `stops` are the abort signals of every enclosing Map/Parallel (set when a sibling fails)."""

    run: Run
    last_event: int
    stops: tuple[StopSignal, ...] = ()

    def record(self, event_type: str, details: dict[str, Any] | None = None) -> int:
        self.last_event = self.run.history.record(event_type, details, previous=self.last_event)
        return self.last_event

    def child(self, start_event: int, stop: StopSignal) -> Branch:
        return Branch(self.run, start_event, (*self.stops, stop))

    def stopped(self) -> bool:
        now = self.run.clock.now()
        return any(stop.reached(now) for stop in self.stops)

    def check(self) -> None:
        """Raise when the execution timed out or a sibling branch failed: no new state may start."""
        remaining = self.run.remaining()
        if remaining is not None and remaining <= 0:
            raise ExecutionTimedOut(self.run.timeout_seconds or 0)
        if self.stopped():
            raise BranchAborted

    def wait(self, seconds: float) -> None:
        """Wait (a Wait state, a Retry back-off), cut short by the execution timeout or an abort."""
        remaining = self.run.remaining()
        limited = seconds if remaining is None else min(seconds, max(remaining, 0.0))
        for stop in self.stops:  # a sibling that failed during this wait ends it then, not later
            if stop.is_set():
                limited = min(limited, max(stop.at - self.run.clock.now(), 0.0))
        self.run.clock.sleep(limited, self.stopped if self.stops else None)
        self.check()

    def context(self, state: str, entered_time: str, *, retry_count: int = 0,
                map_item: dict[str, Any] | None = None) -> dict[str, Any]:
        """The context object ($$) a state sees."""
        ctx: dict[str, Any] = {
            "Execution": self.run.execution,
            "StateMachine": self.run.state_machine,
            "State": {"Name": state, "EnteredTime": entered_time, "RetryCount": retry_count},
        }
        if map_item is not None:
            ctx["Map"] = {"Item": map_item}
        return ctx


class State:
    """Base of every construct: Entered/Exited events, payload limits, InputPath/OutputPath, Next/End.

    Subclasses implement `run(branch, raw_input, context) -> (next_state | None, output)`."""

    type_name: ClassVar[str]
    fields: ClassVar[frozenset[str]] = COMMON_FIELDS
    terminal: ClassVar[bool] = False  # Succeed/Fail: no Next/End
    has_transition: ClassVar[bool] = True  # Choice: routes by rules instead

    def __init__(self, name: str, spec: dict[str, Any]) -> None:
        self.name = name
        self.spec = spec
        self.next_state: str | None = spec.get("Next")
        self.input_path: str | None = spec.get("InputPath", "$")
        self.output_path: str | None = spec.get("OutputPath", "$")

    def execute(self, branch: Branch, raw_input: Any) -> tuple[str | None, Any]:
        branch.check()
        branch.record(f"{self.type_name}StateEntered",
                      {"name": self.name, "input": to_json(raw_input), "inputDetails": {"truncated": False}})
        check_payload(raw_input, state=self.name, what="input")
        context = branch.context(self.name, iso_time(branch.run.clock.now()))
        next_state, output = self.run(branch, raw_input, context)
        check_payload(output, state=self.name, what="output")
        branch.record(f"{self.type_name}StateExited",
                      {"name": self.name, "output": to_json(output), "outputDetails": {"truncated": False}})
        return next_state, output

    def run(self, branch: Branch, raw_input: Any, context: dict[str, Any]) -> tuple[str | None, Any]:
        raise NotImplementedError

    def effective_input(self, raw_input: Any, context: dict[str, Any]) -> Any:
        return apply_input_path(self.input_path, raw_input, context, state=self.name)

    def state_output(self, value: Any, context: dict[str, Any]) -> Any:
        return apply_input_path(self.output_path, value, context, state=self.name)


class Program:
    """StartAt + States: the top level of a definition, or a Map's ItemProcessor."""

    def __init__(self, start_at: str, states: dict[str, State]) -> None:
        self.start_at = start_at
        self.states = states

    def run(self, branch: Branch, data: Any) -> Any:
        name: str | None = self.start_at
        while name is not None:
            name, data = self.states[name].execute(branch, data)
        return data


def failure_details(failure: StatesFailure) -> dict[str, Any]:
    return {"error": failure.error, "cause": failure.cause}
