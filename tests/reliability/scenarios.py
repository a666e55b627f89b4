"""Small, real workspaces for the reliability suite and the checks every scenario ends with.

`smaller_thresholds` lowers the offload/grouping thresholds (module constants read at call time) so two
batches already take every branch of the workflow: poll manifest, chunks.json, hierarchical merge and
offloaded poll results. Crash cases start from a copy of one prepared workspace (a version already
published, two more batches submitted), so each case pays only for its own two executions.

A lock orphaned by a crash is freed explicitly (expire_orphaned_lease); only the cases about a dead
holder's lease being taken over (a crash in the heartbeat, a stalled holder, one AWS case) leave it to
the rerun, whose final merge watches it across its lock-wait retries (steps/lease.py; the retries'
waits are its clock, instant here) and takes it over: orphaned_lease checks its holder is dead first.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import math
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from crash_injection import ENTRY, Crash, CrashSwitch, When, WritePoint, crashing_context, labelled_handlers
from pipeline import Workspace, make_workspace, no_sleep, receipts_file
from provider_files import read_file

from asl_local.clock import RealClock
from asl_local.invokers import InProcessInvoker
from embedding_ingest.backends import build_step_context
from embedding_ingest.config import LOCK_LEASE_MAX_SECONDS
from embedding_ingest.pipeline import definitions
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine
from embedding_ingest.steps import chunks, groups, list_pending
from embedding_ingest.stores.records import (
    EmbeddingStatus,
    ExecutionRecord,
    ItemKind,
    Lease,
)

LEASE_SECONDS = LOCK_LEASE_MAX_SECONDS  # no run of a case outlives it, however loaded the machine
EXPIRING_LEASE_SECONDS = 2  # for the cases whose dead holder's lease is taken over (heartbeat ~0.7 s)
SETTINGS = {"LOCK_TTL_SECONDS": LEASE_SECONDS, "SNAPSHOT_VERSIONS_KEPT": 1}
# The templates publish the first and batch the second of two neighbouring receipts: 384 and 385 are the
# smallest such pair of tests/data (27 + 27 lines, 146 words), so each of the ~230 crash cases pays for
# as few items as the story needs (every step and branch is still taken: smaller_thresholds).
TEMPLATE_RECEIPT = 384
_names = itertools.count()

_THRESHOLDS = [
    (list_pending, "MANIFEST_MAX_INLINE_BATCHES", 1),  # two batches => poll manifest in S3
    (chunks, "CHUNK_SIZE", 1),  # one delta per chunk
    (chunks, "INLINE_PAYLOAD_LIMIT", 0),  # chunks.json + LoadChunksFromS3
    (groups, "POLL_RESULTS_INLINE_LIMIT", 0),  # poll_results.json
    (definitions, "GROUPING_THRESHOLD_CHUNKS", 1),  # two chunks => CreateChunkGroups + group merges
]


@contextlib.contextmanager
def smaller_thresholds() -> Iterator[None]:
    # MonkeyPatch restores every constant it set, even if setting a later one failed.
    with pytest.MonkeyPatch.context() as patch:
        for module, name, value in _THRESHOLDS:
            patch.setattr(module, name, value)
        yield


def submit_in_batches(ws: Workspace, kind: ItemKind, batches: int) -> None:
    """Submit every NONE item of `kind` as exactly `batches` batches (or fewer if there are fewer items)."""
    waiting = len(ws.item_ids(kind, EmbeddingStatus.NONE))
    report = ws.submit(kind, max_items_per_batch=max(1, math.ceil(waiting / batches)))
    assert report.items_submitted == waiting


def prepare_template(root: Path, kind: ItemKind) -> Path:
    """A workspace home with one published version (TEMPLATE_RECEIPT) and two batches waiting (the next)."""
    ws = make_workspace(root, **SETTINGS)
    ws.import_receipts(receipts_file(root, 1, start=TEMPLATE_RECEIPT))
    submit_in_batches(ws, kind, 1)
    with smaller_thresholds():
        assert ws.run(kind).status.value == "SUCCEEDED"
    ws.import_receipts(receipts_file(root, 1, start=TEMPLATE_RECEIPT + 1))
    submit_in_batches(ws, kind, 2)
    ws.ledger.close()
    return ws.settings.home


def copy_of(template_home: Path, tmp_path: Path, **overrides: Any) -> Workspace:
    """A workspace under tmp_path on a copy of the template's home (SETTINGS, then `overrides`)."""
    shutil.copytree(template_home, tmp_path / "home")
    return make_workspace(tmp_path, **{**SETTINGS, **overrides})


def run_with_switch(ws: Workspace, switch: CrashSwitch, kind: ItemKind) -> ExecutionRecord:
    """One execution whose steps see the switch's proxies (the engine keeps the real ledger)."""
    ctx = crashing_context(ws.ctx, switch)
    engine = WorkflowEngine(ws.ledger, InProcessInvoker(labelled_handlers(ctx, switch)),
                            clock=RealClock(sleep_function=no_sleep))
    definition = build_definition(kind.value, local_resource_arn)
    return engine.start_execution(kind.value, definition, f"crash-{next(_names)}", {})


@dataclass(frozen=True)
class Unreached:
    """A run that ended without reaching its crash point, and why (from the history; see run_to_crash)."""

    record: ExecutionRecord
    reason: str


def run_to_crash(ws: Workspace, switch: CrashSwitch, kind: ItemKind) -> Unreached | None:
    """Run one execution that must die at `switch.target`: None once it has. A run that ends without
    reaching the point fails the test, saying what the step's attempts wrote and what the history
    shows, unless the history explains it: an attempt of the step failed before the point (an error
    the workflow retried) and the retry finished without it (it found the work done, or took another
    path). Then the Unreached is returned, naming both attempts; the caller checks that the run
    ended as a clean run does, and skips the case with that reason (never passes it)."""
    point = switch.target
    assert point is not None
    try:
        record = run_with_switch(ws, switch, kind)
    except Crash:
        assert switch.fired == point, f"died at {switch.fired}, not at {point}"
        return None
    attempts = switch.attempts_of(point.step)
    failures = {event.details.get("error"): event.id for event in ws.ledger.get_events(record.execution_arn)
                if event.type in ("LambdaFunctionFailed", "TaskFailed")}
    retried = [a for a in attempts[:-1] if a.error is not None and a.error in failures]
    account = "\n".join(f"  {a.describe()}" for a in attempts) or "  (never invoked)"
    if retried and attempts[-1].outcome == "returned" and record.status.value == "SUCCEEDED":
        failed = retried[0]
        return Unreached(record, (
            f"{point} ({switch.when}) was not reached on this path: attempt {failed.number} failed with "
            f"{failed.error} (history event {failures[failed.error]}, retried) before it, and attempt "
            f"{attempts[-1].number} finished without it.\n{account}"))
    pytest.fail(f"crash point {point} ({switch.when}) was never reached, and the history does not say "
                f"why: execution {record.name} {record.status.value}"
                f"{f' ({record.error}: {record.cause})' if record.error else ''}; "
                f"attempts of {point.step}:\n{account}", pytrace=False)


def restarted(ws: Workspace) -> Workspace:
    """The operator's view after the crash: fresh ports built from the same settings."""
    return Workspace(settings=ws.settings, ctx=build_step_context(ws.settings))


def _assert_holder_dead(database: str) -> None:
    beating = [t.name for t in threading.enumerate() if t.name == f"heartbeat-{database}" and t.is_alive()]
    assert not beating, f"lock {database!r} is still being renewed by {beating}: its holder is not dead"


def expire_orphaned_lease(ws: Workspace, database: str) -> None:
    """A crashed holder never releases its lock. This checks its heartbeat has stopped, then frees the
    lease by its own identity instead of leaving the rerun to watch it for a lease (orphaned_lease).
    The fencing counter survives a release as it survives a takeover, so the rerun's token is the same."""
    lease = ws.ledger.current_lease(database)
    if lease is None:
        return
    _assert_holder_dead(database)
    assert ws.ledger.release_lock(lease), f"lock {database!r} changed hands while it was orphaned"


def orphaned_lease(ws: Workspace, database: str) -> Lease | None:
    """The lease a crashed holder left (its heartbeat checked to have stopped), for the rerun to take
    over by watching it; None when the crash left the lock free."""
    lease = ws.ledger.current_lease(database)
    if lease is not None:
        _assert_holder_dead(database)
    return lease


# -- submission ------------------------------------------------------------------------------------------
def custom_ids_of(provider, input_file_id: str) -> list[str]:
    lines = read_file(provider, input_file_id).decode().splitlines()
    return [json.loads(line)["custom_id"] for line in lines if line.strip()]


def assert_each_item_in_exactly_one_batch(ws: Workspace, kind: ItemKind) -> None:
    """After submission: every item PENDING in one batch, each batch sent to the provider once."""
    items = {i.item_id: i for status in EmbeddingStatus for i in ws.ledger.find_items(kind, status)}
    assert {i.embedding_status for i in items.values()} == {EmbeddingStatus.PENDING}, "an item was lost"
    summaries = ws.ledger.list_batches(batch_type=kind.batch_type)
    for summary in summaries:
        members = [i for i in items.values() if i.batch_id == summary.batch_id]
        assert len(members) == summary.item_count, f"batch {summary.batch_id} miscounts its items"
        assert summary.provider_batch_id, f"batch {summary.batch_id} never reached the provider"
    provider_batches = ws.ctx.provider.engine.list_batches()
    assert len(provider_batches) == len(summaries), "a batch was sent to the provider twice"
    assert {b["id"] for b in provider_batches} == {s.provider_batch_id for s in summaries}
    requested = [cid for b in provider_batches for cid in custom_ids_of(ws.ctx.provider, b["input_file_id"])]
    assert sorted(requested) == sorted(items), "an item is missing from, or repeated across, provider batches"


# -- the prepared workspace and the dry run (both once per process) ---------------------------------------
@functools.cache
def template_home(kind: ItemKind) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"reliability-template-{kind.value}-"))
    atexit.register(shutil.rmtree, root, True)
    return prepare_template(root, kind)


@functools.cache
def enumerate_injection_points(kind: ItemKind) -> tuple[tuple[WritePoint, When], ...]:
    """Dry run: one clean execution from the template, recording every step and each step's numbered
    writes. Returns every crash to inject: each step's entry, and before and after each write."""
    root = Path(tempfile.mkdtemp(prefix="reliability-dry-run-"))
    try:
        ws = copy_of(template_home(kind), root)
        switch = CrashSwitch()
        with smaller_thresholds():
            record = run_with_switch(ws, switch, kind)
        assert record.status.value == "SUCCEEDED", record.cause
        ws.ledger.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    entries = [(WritePoint(step, ENTRY), "before") for step in sorted(switch.steps)]
    writes = [(point, when) for point in switch.points() for when in ("before", "after")]
    return tuple(entries + writes)
