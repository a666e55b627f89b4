"""Figure 4: the largest state input/output of a `batches`-batch backlog, read from the execution
history (as `get-execution-history` shows it), with the default per-execution cap. Small vectors: the
payload does not depend on the width, and this keeps thousands of deltas cheap to build."""

from __future__ import annotations

import math
from pathlib import Path

from common import Figure, make_workspace, receipts_file, stopwatch
from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES, ExecutionStatus, ItemKind

PAYLOAD_FIELDS = ("input", "output", "parameters")
LINES_AVAILABLE = 22_227
KIND = ItemKind.LINE


def largest_payload(events) -> tuple[int, str]:
    """(bytes, where) of the largest input/output/parameters string among `events`."""
    best, where = 0, ""
    for event in events:
        details = event.details or {}
        for name in PAYLOAD_FIELDS:
            value = details.get(name)
            if isinstance(value, str) and len(value.encode()) > best:
                best = len(value.encode())
                where = f"{event.type} {details.get('name', '')} {name}".replace("  ", " ")
    return best, where


def run(work: Path, *, batches: int, dimensions: int = 16) -> list[Figure]:
    ws = make_workspace(work, dimensions=dimensions, polls_per_stage=0)
    ws.import_receipts(receipts_file(work, 400))
    if batches > LINES_AVAILABLE:
        raise ValueError(f"at most {LINES_AVAILABLE} batches (one line each), got {batches}")
    report = ws.submit(KIND, max_items_per_batch=LINES_AVAILABLE // batches, max_batches=batches)
    if len(report.batches) != batches:
        raise RuntimeError(f"submitted {len(report.batches)} batches, wanted {batches}")
    cap = ws.settings.max_batches_per_execution
    with stopwatch() as elapsed:
        records = ws.run_until_idle(KIND, max_runs=math.ceil(batches / cap) + 3)
    failed = [r for r in records if r.status is not ExecutionStatus.SUCCEEDED]
    if failed:
        raise RuntimeError(f"execution {failed[0].name} ended {failed[0].status}: {failed[0].cause}")
    active = ws.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=KIND.batch_type)
    if active:
        raise RuntimeError(f"{len(active)} batches still active after {len(records)} executions")
    sizes = [(*largest_payload(ws.ledger.get_events(r.execution_arn)), r.name) for r in records]
    size, where, name = max(sizes)
    return [Figure("max_payload_kb", size / 1024, "KB", target=64.0,
                   detail=f"{batches:,} batches ({report.items_submitted:,} items) in {len(records)} "
                          f"executions of <= {cap} batches ({elapsed[0]:.0f}s); largest: {where}",
                   extra={"payload_batches": batches, "payload_executions": len(records),
                          "payload_where": where, "payload_execution": name})]
