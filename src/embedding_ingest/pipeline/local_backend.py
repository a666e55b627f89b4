"""The local ExecutionBackend: the built ASL definition run by the asl_local engine in this process,
history in the run's ledger, each step on the run's ports, CPU-heavy steps in a pool of worker
processes (each building its own ports from the settings), and an optional observer of every task
(the CLI's progress board)."""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from asl_local.clock import RealClock
from asl_local.invokers import Invoker, ProcessPoolInvoker, function_name_of
from embedding_ingest.config import Settings
from embedding_ingest.exceptions import InvalidInputError
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine, describe_execution, execution_history
from embedding_ingest.pipeline.function_logs import function_logs
from embedding_ingest.pipeline.ports import RunPorts
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.logs import configure_json_logging
from embedding_ingest.steps.registry import handler_for

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
    """The progress label of a task: STAGES by function and operation, else the function's name."""
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


@functools.lru_cache(maxsize=4)
def _worker_settings(settings_json: str) -> Settings:
    return Settings.model_validate_json(settings_json)


@functools.lru_cache(maxsize=4)
def _worker_context(settings_json: str) -> StepContext:
    # Built once per worker process and settings: reopening SQLite and Chroma per call is wasteful.
    from embedding_ingest.backends import build_step_context

    return build_step_context(_worker_settings(settings_json))


def invoke_in_worker(function_name: str, payload: dict, settings_json: str) -> dict:
    """Run one step in a pool's worker process (the pool's target: module-level, so it pickles), on
    ports built from the settings. The steps' logs go to stderr as JSON lines (level from LOG_LEVEL,
    default WARNING), and from INFO up to the workspace's log store (pipeline.function_logs)."""
    if multiprocessing.parent_process() is not None:
        configure_json_logging(os.environ.get("LOG_LEVEL", "WARNING").upper())
    with function_logs(_worker_settings(settings_json), function_name):
        return handler_for(function_name)(payload, _worker_context(settings_json))


class LocalSteps:
    """The engine's Invoker for the product's steps: CPU_HEAVY_FUNCTIONS in the worker pool, every other
    step in the calling thread on the run's own ports; either way its logs go to the log store.
    Raises StepInputError for an unknown function."""

    def __init__(self, ports: RunPorts, pool: ProcessPoolInvoker) -> None:
        self._ports = ports
        self._pool = pool

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any:
        name = function_name_of(resource)
        if name in self._pool.process_functions:
            return self._pool.invoke(resource, payload)
        with function_logs(self._ports.settings, name):
            return handler_for(name)(payload, self._ports.step_context())


def _interactive() -> bool:
    """Run from a terminal, where Ctrl-C signals every process of the foreground group at once."""
    try:
        return os.isatty(0) or os.isatty(2)
    except OSError:
        return False


class LocalBackend:
    """ExecutionBackend on the asl_local engine: `start` runs an execution to its end in this process.

    `observer` sees every task (pipeline.local_backend.TaskObserver); `sleep` is what the engine's Wait
    states and Retry back-offs wait with (tests pass a no-op); `max_workers` bounds the worker pool
    (default: one per CPU). A pool lives for one execution, so no idle workers outlast it."""

    name = "local"
    shares_ledger = True

    def __init__(self, ports: RunPorts, *, observer: TaskObserver | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_workers: int | None = None) -> None:
        self.ports = ports
        self._observer = observer
        self._sleep = sleep
        self._max_workers = max_workers or os.cpu_count() or 1

    def start(self, workflow: str, name: str, *, wait: bool = True,
              execution_input: str = "{}") -> dict[str, Any]:
        """Run `workflow` to its end (`wait` is moot: the engine runs in this thread) and return its
        DescribeExecution body. Raises InvalidInputError for a bad name or input,
        ExecutionAlreadyExistsError for a reused name, ConfigurationError when the ledger cannot be
        opened."""
        definition = build_definition(workflow, local_resource_arn)
        ledger = self.ports.ledger
        pool = ProcessPoolInvoker(invoke_in_worker, target_args=(self.ports.settings.model_dump_json(),),
                                  process_functions=CPU_HEAVY_FUNCTIONS, max_workers=self._max_workers)
        if _interactive():
            pool.prestart()  # workers that a terminal's Ctrl-C cannot catch while they start up
        steps = LocalSteps(self.ports, pool)
        invoker: Invoker = ObservedInvoker(steps, self._observer) if self._observer else steps
        try:
            engine = WorkflowEngine(ledger, invoker, clock=RealClock(sleep_function=self._sleep))
            record = engine.start_execution(workflow, definition, name, execution_input)
        finally:
            pool.close()
        return describe_execution(record)

    def history(self, name_or_arn: str, workflow: str) -> list[dict[str, Any]]:
        """The execution's events from the ledger. Raises InvalidInputError when there is none."""
        ledger = self.ports.ledger
        record = ledger.get_execution(name_or_arn)
        if record is None:
            raise InvalidInputError(f"no {workflow} execution named {name_or_arn!r}")
        return execution_history(ledger.get_events(record.execution_arn))["events"]
