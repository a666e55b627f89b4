"""Runs a workflow on the local engine: the built ASL definition, step handlers behind an invoker
(CPU-heavy compaction in a process pool), history in the ledger. The embedded default of
`start-execution`, and `run_until_idle`, the one loop that runs executions back to back until no batch
of a kind is active (used by `start-execution --until-idle`, the demo, the scheduler and the console)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asl_local.invokers import Invoker, ProcessPoolInvoker, function_name_of
from embedding_ingest.backends import build_ledger, build_object_store
from embedding_ingest.config import Settings
from embedding_ingest.pipeline.report import aggregate, record_failure_on_batches, summarize_execution
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, ExecutionRecord, ExecutionStatus, ItemKind

# Stage labels by (function, operation), in workflow order; shared by progress displays.
STAGES: dict[tuple[str, str | None], str] = {
    ("embedding-list-pending", None): "list pending batches",
    ("embedding-line-poll", None): "poll batches",
    ("embedding-word-poll", None): "poll batches",
    ("embedding-split-chunks", None): "split into chunks",
    ("embedding-split-chunks", "load_chunks_from_s3"): "split into chunks",
    ("embedding-vector-compact", "process_chunk"): "process chunks",
    ("embedding-create-chunk-groups", None): "create chunk groups",
    ("embedding-create-chunk-groups", "load_groups_from_s3"): "create chunk groups",
    ("embedding-vector-compact", "merge_chunk_group"): "merge chunk groups",
    ("embedding-vector-compact", "final_merge"): "final merge",
    ("embedding-mark-batches-complete", None): "mark batches complete",
}

# Run in worker processes for real parallelism: compaction (Chroma writes) and polling (parsing and
# validating output files of 1536-d vectors is CPU-bound; in threads it serialises on the GIL).
CPU_HEAVY_FUNCTIONS = frozenset({"embedding-vector-compact", "embedding-line-poll", "embedding-word-poll"})

# on_task(stage, outcome, result): outcome is "started" | "succeeded" | "failed".
TaskObserver = Callable[[str, str, Any], None]


def stage_of(function_name: str, payload: dict[str, Any]) -> str:
    operation = payload.get("operation") if isinstance(payload, dict) else None
    return STAGES.get((function_name, operation)) or STAGES.get((function_name, None)) or function_name


class ObservedInvoker:
    """Tells an observer about every task call; the progress display is built on it."""

    def __init__(self, inner: Invoker, observer: TaskObserver) -> None:
        self._inner = inner
        self._observer = observer
        self._lock = threading.Lock()

    def _notify(self, stage: str, outcome: str, result: Any) -> None:
        with self._lock:  # observers need not be thread-safe
            self._observer(stage, outcome, result)

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any:
        stage = stage_of(function_name_of(resource), payload)
        self._notify(stage, "started", None)
        try:
            result = self._inner.invoke(resource, payload)
        except Exception as exc:
            self._notify(stage, "failed", exc)
            raise
        self._notify(stage, "succeeded", result)
        return result


def new_execution_name(kind: ItemKind) -> str:
    """The run's batch_id (the reference uses the execution name as batch_id for the whole run)."""
    return f"{kind.value}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def run_workflow(kind: ItemKind, settings: Settings, *, name: str | None = None,
                 observer: TaskObserver | None = None, sleep: Callable[[float], None] = time.sleep,
                 max_workers: int | None = None) -> ExecutionRecord:
    """Run the `kind` workflow to completion on the local engine and return its execution record.

    A FAILED run leaves `last_error` (naming the state and the error) on the batches it had listed.
    Raises InvalidInputError for an invalid name, ExecutionAlreadyExistsError for a reused one."""
    from asl_local.clock import RealClock
    from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
    from embedding_ingest.pipeline.engine_store import WorkflowEngine
    from embedding_ingest.steps.registry import invoke_local

    definition = build_definition(kind.value, local_resource_arn)
    ledger = build_ledger(settings)
    pool = ProcessPoolInvoker(invoke_local, target_args=(settings.model_dump_json(),),
                              process_functions=CPU_HEAVY_FUNCTIONS,
                              max_workers=max_workers or os.cpu_count() or 1)
    invoker: Invoker = ObservedInvoker(pool, observer) if observer else pool
    try:
        engine = WorkflowEngine(ledger, invoker, clock=RealClock(sleep_function=sleep))
        record = engine.start_execution(kind.value, definition,
                                        new_execution_name(kind) if name is None else name, {})
        if record.status is ExecutionStatus.FAILED:
            _record_failure(ledger, settings, record)
    finally:
        pool.close()
        ledger.close()
    return record


def _record_failure(ledger: Any, settings: Settings, record: ExecutionRecord) -> None:
    from embedding_ingest.pipeline.engine_store import describe_execution, execution_history

    events = execution_history(ledger.get_events(record.execution_arn))["events"]
    record_failure_on_batches(ledger, describe_execution(record), events, build_object_store(settings))


def active_batch_count(kind: ItemKind, settings: Settings) -> int:
    """Batches of `kind` in an active status (PENDING ... FINALIZING, CANCELING) in the ledger."""
    ledger = build_ledger(settings)
    try:
        return len(ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=kind.batch_type))
    finally:
        ledger.close()


def run_execution(kind: ItemKind, settings: Settings, *, name: str | None = None,
                  observer: TaskObserver | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """One local execution, returned as its DescribeExecution body plus its `summary`
    (report.summarize_execution). Raises as run_workflow does."""
    from embedding_ingest.pipeline.engine_store import describe_execution, execution_history

    record = run_workflow(kind, settings, name=name, observer=observer, sleep=sleep)
    described = describe_execution(record)
    events = None
    if record.status is not ExecutionStatus.SUCCEEDED:
        ledger = build_ledger(settings)
        try:
            events = execution_history(ledger.get_events(record.execution_arn))["events"]
        finally:
            ledger.close()
    described["summary"] = summarize_execution(described, events=events,
                                               batches_still_active=active_batch_count(kind, settings))
    return described


@dataclass(frozen=True)
class IdleRun:
    """What `run_until_idle` did: each execution's DescribeExecution body (with its `summary`), oldest
    first, and the aggregated `summary` (report.aggregate)."""

    executions: list[dict[str, Any]]
    summary: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"executions": self.executions, "summary": self.summary}


DEFAULT_INTERVAL_SECONDS = {"local": 0.0, "openai": 60.0}


def run_until_idle(kind: ItemKind, settings: Settings, *, interval: float | None = None,
                   max_runs: int | None = None, observer: TaskObserver | None = None,
                   on_execution: Callable[[dict[str, Any]], None] | None = None,
                   sleep: Callable[[float], None] = time.sleep,
                   start: Callable[[str], dict[str, Any]] | None = None) -> IdleRun:
    """Run the `kind` workflow back to back until no batch of `kind` is active; return every execution
    and one aggregated summary.

    - At least one execution runs. After each, the ledger of `settings` is asked how many batches of
      `kind` are active; the loop stops when none is ("idle"), when an execution did not succeed
      ("failed"), when one listed nothing to poll although batches are active ("stalled": they were
      never accepted by the provider; `submit` resumes them), or after `max_runs` executions
      ("max_runs"). Between executions it waits `interval` seconds (None: 0 for the local provider,
      60 for OpenAI, whose batches take minutes to hours).
    - `sleep` is what the interval is waited with (tests inject a recorder).
    - `observer` sees every task of local executions (progress displays); `on_execution` gets each
      execution's DescribeExecution body with its summary as soon as it ends.
    - `start(name)` runs one execution to its end and returns its DescribeExecution body (e.g. on AWS);
      default: the local engine (`run_execution`). Raises what `start` raises (InvalidInputError,
      ExecutionAlreadyExistsError, ...); executions that ran before the error are in the ledger."""
    if max_runs is not None and max_runs < 1:
        raise ValueError(f"max_runs must be at least 1, got {max_runs}")
    wait = DEFAULT_INTERVAL_SECONDS.get(settings.provider, 60.0) if interval is None else interval
    executions: list[dict[str, Any]] = []
    stopped_because = "max_runs"
    active = 0
    while max_runs is None or len(executions) < max_runs:
        if executions and wait > 0:
            sleep(wait)
        name = new_execution_name(kind)
        if start is None:
            described = run_execution(kind, settings, name=name, observer=observer)
        else:
            described = dict(start(name))
        active = active_batch_count(kind, settings)
        if "summary" not in described:
            described["summary"] = summarize_execution(described, batches_still_active=active)
        executions.append(described)
        if on_execution is not None:
            on_execution(described)
        summary = described["summary"]
        if described.get("status") != "SUCCEEDED":
            stopped_because = "failed"
            break
        if not active:
            stopped_because = "idle"
            break
        if not summary.get("batches_listed"):
            stopped_because = "stalled"
            break
    return IdleRun(executions, aggregate([e["summary"] for e in executions], workflow=kind.value,
                                         stopped_because=stopped_because, batches_still_active=active))
