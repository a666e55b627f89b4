"""Per-function sizing (issue 21): what each Lambda function really needs, measured.

One execution of the real line workflow on the local engine, in which every task runs the registry's
real handler on its real event in a fresh child process (bench/function_child.py), with its local disk
redirected to a fresh directory: TMPDIR, and CHROMA_ROOT = {dir}/embedding-ingest/chroma-cache for the
functions that read snapshots, as the template sets it without EFS (a cold Lambda: nothing cached).
The object store and the ledger stay in the shared workspace, as S3 and DynamoDB are outside /tmp.
Before the clock: a published base of BASE x DIMS records and COUNT submitted lines (batches of 1,000).

Peak RSS is the child's own VmHWM; peak local disk is the parent's sample of the child's directory
every 10 ms (st_blocks: no high-water mark exists for disk, so a spike shorter than 10 ms can be
missed; the large ones, archives and unpacked trees, live for seconds). Figures per function[:operation]
beside aws.function_table's MemorySize and EphemeralStorage, in bench/results.json:
function_peak_rss_mb, function_peak_tmp_mb, function_memory_mb, function_tmp_mb. Target: every peak at
most 80% of its configured size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from asl_local.clock import RealClock
from asl_local.errors import RemoteTaskError
from asl_local.invokers import function_name_of
from common import Figure, make_workspace, receipts_file
from embedding_ingest.aws.function_table import BY_NAME
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine
from embedding_ingest.stores.records import ExecutionStatus, ItemKind
from peaks import disk_bytes

CHILD = Path(__file__).resolve().parent / "function_child.py"
SAMPLE_SECONDS = 0.01
TARGET_SHARE = 0.8  # of MemorySize / EphemeralStorage


class ChildProcessInvoker:
    """The engine's Invoker: each task in a fresh process on a fresh local disk, measured."""

    def __init__(self, work: Path, settings: Any) -> None:
        self.work = work
        self.settings = settings
        self.peaks: dict[str, dict[str, float]] = defaultdict(lambda: {"rss": 0.0, "tmp": 0.0, "calls": 0,
                                                                        "seconds": 0.0})
        self._lock = threading.Lock()

    def invoke(self, resource: str, payload: dict[str, Any]) -> Any:
        name = function_name_of(resource)
        operation = payload.get("operation") if isinstance(payload, dict) else None
        label = f"{name}:{operation}" if operation else name
        root = Path(tempfile.mkdtemp(prefix="fn-", dir=self.work))
        try:
            (root / "tmp").mkdir()
            settings = self.settings
            if BY_NAME[name].reads_snapshots:
                cache_dir = root / "embedding-ingest" / "chroma-cache"  # the template's, without EFS
                settings = settings.model_copy(update={"chroma_root": cache_dir})
            inputs = Path(tempfile.mkdtemp(prefix="in-", dir=self.work))  # not under the measured dir
            (inputs / "settings.json").write_text(settings.model_dump_json())
            (inputs / "event.json").write_text(json.dumps(payload))
            env = dict(os.environ, TMPDIR=str(root / "tmp"), PYTHONDONTWRITEBYTECODE="1")
            child = subprocess.Popen([sys.executable, str(CHILD), name, str(inputs / "event.json"),
                                      str(inputs / "settings.json"), str(inputs / "out.json")], env=env)
            peak = 0
            while child.poll() is None:
                peak = max(peak, disk_bytes(root))
                time.sleep(SAMPLE_SECONDS)
            if child.returncode != 0:
                raise RemoteTaskError("TaskProcessCrashedError", f"{label} exited with {child.returncode}")
            out = json.loads((inputs / "out.json").read_text())
            shutil.rmtree(inputs, ignore_errors=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        with self._lock:
            entry = self.peaks[label]
            entry["rss"] = max(entry["rss"], out["peak_rss_mb"])
            entry["tmp"] = max(entry["tmp"], peak / 2**20)
            entry["calls"] += 1
            entry["seconds"] += out["seconds"]
        if "error" in out:
            raise RemoteTaskError(*out["error"])
        return out["ok"]


def measure(work: Path, *, base: int, count: int, dimensions: int) -> tuple[dict[str, dict], float]:
    """Per function[:operation]: peak RSS MB, peak local disk MB, calls, seconds; and the base's
    build time."""
    import final_merge

    ws = make_workspace(work / "ws", dimensions=dimensions, polls_per_stage=0)
    started = time.perf_counter()
    if base:
        final_merge._publish_base(ws, base, dimensions)
    built = time.perf_counter() - started
    ws.import_receipts(receipts_file(work, 400))
    report = ws.submit(ItemKind.LINE, max_items_per_batch=1000, max_batches=max(1, count // 1000))
    if report.items_submitted == 0:
        raise RuntimeError("nothing was submitted")
    invoker = ChildProcessInvoker(work, ws.settings)
    engine = WorkflowEngine(ws.ledger, invoker, clock=RealClock(sleep_function=lambda seconds: None))
    kind = ItemKind.LINE
    definition = build_definition(kind.value, local_resource_arn)
    record = engine.start_execution(kind.value, definition, "sizing", {})
    if record.status is not ExecutionStatus.SUCCEEDED:
        raise RuntimeError(f"sizing execution ended {record.status}: {record.error} {record.cause}")
    return dict(invoker.peaks), built


def run(work: Path, *, base: int, count: int, dimensions: int) -> list[Figure]:
    peaks, built = measure(work, base=base, count=count, dimensions=dimensions)
    figures: list[Figure] = []
    table = {}
    for label, entry in sorted(peaks.items()):
        function = BY_NAME[label.split(":", 1)[0]]
        table[label] = {"function_peak_rss_mb": round(entry["rss"], 1),
                        "function_peak_tmp_mb": round(entry["tmp"], 1),
                        "function_memory_mb": function.memory_mb, "function_tmp_mb": function.ephemeral_mb,
                        "calls": entry["calls"], "seconds": round(entry["seconds"], 2)}
        share = max(entry["rss"] / function.memory_mb, entry["tmp"] / function.ephemeral_mb)
        figures.append(Figure(f"function_share[{label}]", share * 100, "%", target=TARGET_SHARE * 100,
                              detail=f"peak RSS {entry['rss']:,.0f} of {function.memory_mb:,} MB, peak local "
                                     f"disk {entry['tmp']:,.1f} of {function.ephemeral_mb:,} MB "
                                     f"({entry['calls']} calls; base {base:,} x {dimensions}-d built in "
                                     f"{built:.0f}s, {count:,} lines)"))
    figures[0].extra["functions"] = {"base": base, "count": count, "dimensions": dimensions,
                                     "by_function": table}
    return figures
