"""Runs a workflow on the local engine: the built ASL definition, step handlers behind an invoker
(CPU-heavy compaction in a process pool), history in the ledger. The embedded default of
`start-execution`."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from embedding_ingest.config import Settings
from embedding_ingest.runtime import build_ledger
from embedding_ingest.stores.records import ExecutionRecord, ItemKind
from embedding_ingest.workflow.invokers import Invoker, ProcessPoolInvoker, function_name_of

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
    """Run the `kind` workflow to completion on the local engine and return its execution record."""
    from embedding_ingest.steps.registry import invoke_local
    from embedding_ingest.workflow.builder import build_definition, local_resource_arn
    from embedding_ingest.workflow.engine.local_engine import LocalEngine

    definition = build_definition(kind.value, local_resource_arn)
    ledger = build_ledger(settings)
    pool = ProcessPoolInvoker(invoke_local, target_args=(settings.model_dump_json(),),
                              process_functions=CPU_HEAVY_FUNCTIONS,
                              max_workers=max_workers or os.cpu_count() or 1)
    invoker: Invoker = ObservedInvoker(pool, observer) if observer else pool
    try:
        engine = LocalEngine(ledger, invoker, sleep=sleep)
        return engine.start_execution(kind.value, definition, name or new_execution_name(kind), {})
    finally:
        pool.close()
