"""The run loop: executions of the line/word workflows on an ExecutionBackend (the local engine by
default, or AWS Step Functions), each described with its summary; a failed one leaves `last_error`
on the batches it had listed. `run_until_idle` runs them back to back until no batch of the kind is
active. The CLI (`start-execution`, `--until-idle`, `--backend aws`), the schedule, the web console's
start action and the demo all run executions through here, with one ledger per loop."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedding_ingest.config import Settings
from embedding_ingest.pipeline.backend import ExecutionBackend
from embedding_ingest.pipeline.ports import RunPorts
from embedding_ingest.pipeline.report import aggregate, record_failure_on_batches, summarize_execution
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, ItemKind

if TYPE_CHECKING:
    from embedding_ingest.pipeline.local_backend import TaskObserver
    from embedding_ingest.providers.base import BatchProvider
    from embedding_ingest.stores.ports import Ledger, ObjectStore

DEFAULT_INTERVAL_SECONDS = {"local": 0.0, "openai": 60.0}


def new_execution_name(kind: ItemKind) -> str:
    """The run's batch_id (the reference uses the execution name as batch_id for the whole run)."""
    return f"{kind.value}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class IdleRun:
    """What `run_until_idle` did: each execution's DescribeExecution body (with its `summary`), oldest
    first, and the aggregated `summary` (report.aggregate)."""

    executions: list[dict[str, Any]]
    summary: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"executions": self.executions, "summary": self.summary}


class RunLoop:
    """Runs executions on `backend`, reading and marking batches through `ports` (one ledger and object
    store for every execution of the loop; see pipeline.ports)."""

    def __init__(self, backend: ExecutionBackend, ports: RunPorts) -> None:
        self.backend = backend
        self.ports = ports

    def active_batches(self, kind: ItemKind) -> int:
        """Batches of `kind` in an active status (PENDING ... FINALIZING, CANCELING) in the ledger, but
        those the provider answers 404 for (issue 19: polling again now cannot help; the poll that
        finds one gone long enough closes it, and the next run or round tries again meanwhile)."""
        active = self.ports.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=kind.batch_type)
        return sum(1 for batch in active if not batch.not_found_polls)

    def run_once(self, kind: ItemKind, name: str | None = None, *, wait: bool = True,
                 looping: bool = False) -> dict[str, Any]:
        """One execution (named `name`, default new_execution_name), returned as its DescribeExecution
        body plus its `summary` (report.summarize_execution). One that ended other than SUCCEEDED leaves
        `last_error` (naming the state and the error) on the batches it had listed; `looping`: one of
        run_until_idle's executions (summarize_execution's). Raises what the
        backend's `start` raises (InvalidInputError, ExecutionAlreadyExistsError, ...)."""
        name = new_execution_name(kind) if name is None else name
        described = dict(self.backend.start(kind.value, name, wait=wait))
        events = None
        if described.get("status") not in ("SUCCEEDED", "RUNNING"):
            events = self.backend.history(described["executionArn"], kind.value)
            record_failure_on_batches(self.ports.ledger, described, events, self.ports.objects)
        active = waiting = kept = None
        if self.backend.shares_ledger:
            active = self.active_batches(kind)
            waiting = self.ports.ledger.count_items(kind).get("NONE", 0)
            kept = self.kept_versions(kind)
        described["summary"] = summarize_execution(described, events=events, batches_still_active=active,
                                                   items_waiting=waiting, looping=looping,
                                                   kept_versions=kept)
        return described

    def run_until_idle(self, kind: ItemKind, *, interval: float | None = None, max_runs: int | None = None,
                       on_execution: Callable[[dict[str, Any]], None] | None = None,
                       sleep: Callable[[float], None] = time.sleep) -> IdleRun:
        """Run the `kind` workflow back to back until no batch of `kind` is active; return every execution
        and one aggregated summary.

        - At least one execution runs. After each, the ledger is asked how many batches of `kind` are
          active; the loop stops when none is ("idle"), when an execution did not succeed ("failed"),
          when one listed nothing to poll although batches are active ("stalled": they were never
          accepted by the provider; `submit` resumes them), or after `max_runs` executions
          ("max_runs"). Between executions it waits `interval` seconds (None: 0 for the local
          provider, 60 for OpenAI, whose batches take minutes to hours), with `sleep` (tests inject a
          recorder).
        - `on_execution` gets each execution's DescribeExecution body with its summary as soon as it
          ends; the summary's message ends "; polling again [in N s]" when another execution follows
          (and never advises --until-idle). Raises ValueError for max_runs < 1, and what `run_once`
          raises; executions that ran before the error are in the ledger."""
        if max_runs is not None and max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {max_runs}")
        provider = self.ports.settings.provider
        wait = DEFAULT_INTERVAL_SECONDS.get(provider, 60.0) if interval is None else interval
        executions: list[dict[str, Any]] = []
        stopped_because = "max_runs"
        active = 0
        while max_runs is None or len(executions) < max_runs:
            if executions and wait > 0:
                sleep(wait)
            described = self.run_once(kind, looping=True)
            active = self.active_batches(kind)
            executions.append(described)
            stop = ("failed" if described.get("status") != "SUCCEEDED" else "idle" if not active
                    else "stalled" if not described["summary"].get("batches_listed")
                    else "max_runs" if max_runs is not None and len(executions) >= max_runs else None)
            if stop is None:  # what the loop does next, in the words of the execution's own line
                described["summary"]["message"] += "; polling again" + (f" in {wait:g} s" if wait > 0 else "")
            if on_execution is not None:
                on_execution(described)
            if stop is not None:
                stopped_because = stop
                break
        return IdleRun(executions, aggregate([e["summary"] for e in executions], workflow=kind.value,
                                             stopped_because=stopped_because, batches_still_active=active,
                                             kept_versions=self.kept_versions(kind)
                                             if self.backend.shares_ledger else None))

    def kept_versions(self, kind: ItemKind) -> list[str]:
        """The kept version ids of `kind`'s database: what a version shown to people is unique among."""
        return [version.version for version in self.ports.ledger.list_versions(kind.database)]


@contextmanager
def open_loop(settings: Settings, *, backend: ExecutionBackend | None = None, ledger: Ledger | None = None,
              objects: ObjectStore | None = None, provider: BatchProvider | None = None,
              observer: TaskObserver | None = None, engine_sleep: Callable[[float], None] = time.sleep,
              max_workers: int | None = None) -> Iterator[RunLoop]:
    """A RunLoop on `backend`, or on the local engine (pipeline.local_backend.LocalBackend with
    `observer`, `engine_sleep` and `max_workers`) when None. The ledger, object store and provider
    are the ones given (the caller keeps closing them) or are built from `settings` when first needed
    and closed when the block ends."""
    # Imported here, not at the top: the local backend brings the steps and chromadb (~1 s of CPU), which
    # every CLI process would pay at start (cli.schedule_commands imports this module) though most
    # commands never run an execution.
    from embedding_ingest.pipeline.local_backend import LocalBackend

    ports = RunPorts(settings, ledger=ledger, objects=objects, provider=provider)
    try:
        if backend is None:
            backend = LocalBackend(ports, observer=observer, sleep=engine_sleep, max_workers=max_workers)
        yield RunLoop(backend, ports)
    finally:
        ports.close()


def run_execution(kind: ItemKind, settings: Settings, *, name: str | None = None, wait: bool = True,
                  backend: ExecutionBackend | None = None, ledger: Ledger | None = None,
                  objects: ObjectStore | None = None, provider: BatchProvider | None = None,
                  observer: TaskObserver | None = None, engine_sleep: Callable[[float], None] = time.sleep,
                  max_workers: int | None = None) -> dict[str, Any]:
    """One execution (RunLoop.run_once) on a loop of its own (open_loop, which the other arguments
    go to)."""
    with open_loop(settings, backend=backend, ledger=ledger, objects=objects, provider=provider,
                   observer=observer, engine_sleep=engine_sleep, max_workers=max_workers) as loop:
        return loop.run_once(kind, name, wait=wait)


def run_until_idle(kind: ItemKind, settings: Settings, *, interval: float | None = None,
                   max_runs: int | None = None, on_execution: Callable[[dict[str, Any]], None] | None = None,
                   sleep: Callable[[float], None] = time.sleep, backend: ExecutionBackend | None = None,
                   ledger: Ledger | None = None, objects: ObjectStore | None = None,
                   provider: BatchProvider | None = None, observer: TaskObserver | None = None) -> IdleRun:
    """RunLoop.run_until_idle on a loop of its own (open_loop, which `backend`, the ports and
    `observer` go to)."""
    with open_loop(settings, backend=backend, ledger=ledger, objects=objects, provider=provider,
                   observer=observer) as loop:
        return loop.run_until_idle(kind, interval=interval, max_runs=max_runs, on_execution=on_execution,
                                   sleep=sleep)
