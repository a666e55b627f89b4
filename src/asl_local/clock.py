"""The engine's sense of time: a real clock, or a virtual one under which a 1-hour Wait takes no time.

Everything time-dependent in an execution goes through one `Clock`: history timestamps, Wait states,
Retry back-off, Task TimeoutSeconds and the execution's own TimeoutSeconds.

Under `VirtualClock` time only moves when something waits (`sleep`). Each branch of an execution (a
Map iteration, a Parallel branch) keeps its own timeline, started from its parent's time; when the
branches join, the parent moves to the latest of them - exactly the elapsed time AWS would show for
concurrent branches, and deterministic whatever the thread scheduling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
_ABORT_POLL_SECONDS = 0.1


class TaskTimedOut(Exception):  # noqa: N818 - a deadline passed, reported to the engine as States.Timeout
    """`call_with_timeout`'s function did not return within its timeout; its result is discarded."""


class Clock(Protocol):
    """Epoch seconds and waiting, as the engine needs them."""

    def now(self) -> float:
        """Current time, epoch seconds (this branch's time under a virtual clock)."""
        ...

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> bool:
        """Wait `seconds`; True when `interrupted()` became true first (the wait was cut short)."""
        ...

    def call_with_timeout(self, function: Callable[[], T], timeout: float | None) -> T:
        """`function()`, or TaskTimedOut when it takes longer than `timeout` seconds (None: no limit)."""
        ...

    def enter_branch(self, start: float) -> None:
        """Called in a branch's thread before it runs: its timeline starts at `start`."""
        ...

    def join_branches(self, ends: list[float]) -> None:
        """Called by the parent after its branches ended at `ends`."""
        ...


class RealClock:
    """Wall-clock time. `sleep_function` is what waits are made with (tests may pass a no-op, which
    makes Wait states and Retry back-off instant while timestamps stay real)."""

    def __init__(self, time_function: Callable[[], float] = time.time,
                 sleep_function: Callable[[float], None] = time.sleep) -> None:
        self._time = time_function
        self._sleep = sleep_function

    def now(self) -> float:
        return self._time()

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> bool:
        if interrupted is None or self._sleep is not time.sleep:
            if seconds > 0:
                self._sleep(seconds)
            return bool(interrupted and interrupted())
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:  # in slices, so an abort is seen promptly
            if interrupted():
                return True
            time.sleep(min(left, _ABORT_POLL_SECONDS))
        return interrupted()

    def call_with_timeout(self, function: Callable[[], T], timeout: float | None) -> T:
        if timeout is None:
            return function()
        # The function keeps running in its daemon thread after a timeout, as a Lambda would; its result
        # is thrown away. A thread cannot be killed in Python, and AWS does not stop the function either.
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = function()
            except BaseException as exc:  # noqa: BLE001 - handed back to the calling thread
                outcome["error"] = exc

        worker = threading.Thread(target=target, daemon=True, name="task-with-timeout")
        worker.start()
        worker.join(max(timeout, 0.0))
        if worker.is_alive():
            raise TaskTimedOut(f"no result within {timeout:g} seconds")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def enter_branch(self, start: float) -> None:
        return None

    def join_branches(self, ends: list[float]) -> None:
        return None


class VirtualClock:
    """Simulated time starting at `start` (epoch seconds): waits return at once and move the clock.

    A task function can make time pass by calling `sleep` on the same clock (to simulate a slow
    function); a Task with TimeoutSeconds then times out when more virtual time passed than allowed."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._base = start
        self._local = threading.local()
        self._lock = threading.Lock()

    def now(self) -> float:
        return getattr(self._local, "now", None) or self._base

    def _set(self, value: float, *, rewind: bool = False) -> None:
        if getattr(self._local, "now", None) is not None:
            self._local.now = value
        else:
            with self._lock:
                self._base = value if rewind else max(self._base, value)

    def sleep(self, seconds: float, interrupted: Callable[[], bool] | None = None) -> bool:
        if interrupted is not None and interrupted():
            return True
        self._set(self.now() + max(seconds, 0.0))
        return False

    def advance(self, seconds: float) -> None:
        """Move this branch's time forward (the same as `sleep`)."""
        self.sleep(seconds)

    def call_with_timeout(self, function: Callable[[], T], timeout: float | None) -> T:
        started = self.now()
        result = function()
        if timeout is not None and self.now() - started > timeout:
            # The timeout fired at its deadline; the function's own (simulated) overrun never happened.
            self._set(started + timeout, rewind=True)
            raise TaskTimedOut(f"no result within {timeout:g} seconds")
        return result

    def enter_branch(self, start: float) -> None:
        self._local.now = start

    def join_branches(self, ends: list[float]) -> None:
        if ends:
            self._set(max(self.now(), *ends))
