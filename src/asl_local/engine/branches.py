"""Running a state's branches concurrently (Map iterations, Parallel branches), as AWS does: each on its
own history branch and (under a virtual clock) its own timeline; when one fails beyond what is
tolerated, the others stop at their next state and not-yet-started ones never start.

Under a virtual clock, an iteration waiting for a free MaxConcurrency slot starts when that slot's
previous iteration ended (not when the Map started), and a sibling's failure stops a branch only once
the branch's own time reaches the moment of the failure: work that, in simulated time, finished
before the failure is not shown as aborted."""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from asl_local.engine.core import Branch, BranchAborted, StopSignal
from asl_local.errors import StatesFailure


@dataclass
class Outcome:
    results: list[Any]
    failures: list[tuple[int, StatesFailure]] = field(default_factory=list)  # in the order they happened

    def fatal(self) -> StatesFailure | None:
        """A failure nothing may catch (execution timed out, history limit), if any."""
        return next((failure for _index, failure in self.failures if not failure.catchable), None)


@dataclass(frozen=True)
class IterationEvents:
    """Map records MapIteration* events ({name, index}) around each iteration; Parallel records none."""

    state: str

    def record(self, branch: Branch, outcome: str, index: int) -> None:
        branch.record(f"MapIteration{outcome}", {"name": self.state, "index": index})


def run_branches(parent: Branch, count: int, body: Callable[[int, Branch], Any], *, workers: int,
                 events: IterationEvents | None = None,
                 tolerated: Callable[[int], bool] = lambda _failures: False) -> Outcome:
    """Run `body(index, branch)` for index in range(count), at most `workers` at once.

    `tolerated(n)` says whether n failures so far still let the others go on (Map's tolerated
    failure threshold); by default the first failure stops every sibling."""
    outcome = Outcome(results=[None] * count)
    stop = StopSignal()
    lock = threading.Lock()
    clock = parent.run.clock
    started_at, started_from = clock.now(), parent.last_event
    ends: list[float] = []
    last_events = [started_from]
    failed_at: dict[int, float] = {}
    slots = max(1, min(workers, count))
    free_at = [started_at] * slots  # (virtual) time each concurrency slot becomes free: a min-heap

    def one(index: int) -> None:
        with lock:
            start = heapq.heappop(free_at)
        clock.enter_branch(start)
        if stop.reached(clock.now()):  # the Map already failed before this iteration's turn came
            with lock:
                heapq.heappush(free_at, start)
            return
        child = parent.child(started_from, stop)
        try:
            if events:
                events.record(child, "Started", index)
            outcome.results[index] = body(index, child)
            if events:
                events.record(child, "Succeeded", index)
        except BranchAborted:
            if events:
                events.record(child, "Aborted", index)
        except StatesFailure as failure:
            with lock:
                outcome.failures.append((index, failure))
                failed_at[index] = clock.now()
                if not failure.catchable or not tolerated(len(outcome.failures)):
                    stop.stop(at=clock.now())
            if failure.catchable and events:  # past the history limit nothing more may be recorded
                events.record(child, "Failed", index)
        finally:
            with lock:
                ends.append(clock.now())
                heapq.heappush(free_at, clock.now())
                last_events.append(child.last_event)

    if count:
        with ThreadPoolExecutor(max_workers=slots,
                                thread_name_prefix="branch") as pool:
            list(pool.map(one, range(count)))
    outcome.failures.sort(key=lambda failed: failed_at[failed[0]])  # the first in (simulated) time leads
    parent.last_event = max(last_events)
    clock.join_branches(ends)
    if parent.stopped():  # an enclosing Map/Parallel is stopping: so does this one
        raise BranchAborted
    return outcome
