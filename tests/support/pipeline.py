"""A real, small ingestion workspace for end-to-end style tests: local objects, SQLite ledger, local
provider, real Chroma, and the real ASL definitions run on the local engine (in-process or pooled).

Nothing here fakes our own code; tests inject faults by wrapping a real port or a real handler.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asl_local.clock import RealClock
from asl_local.invokers import InProcessInvoker
from embedding_ingest.backends import build_step_context
from embedding_ingest.config import Settings
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine
from embedding_ingest.pipeline.run import run_execution
from embedding_ingest.receipts.importer import import_receipts
from embedding_ingest.snapshots import chroma_io, version_segments
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.records import EmbeddingStatus, ExecutionRecord, ItemKind
from embedding_ingest.submission.deletions import queue_deletions
from embedding_ingest.submission.metadata_updates import queue_metadata_updates
from embedding_ingest.submission.submit import SubmitReport, submit

REPO_ROOT = Path(__file__).resolve().parents[2]
SROIE_RECEIPTS = REPO_ROOT / "tests" / "data" / "receipts-sroie.jsonl"

Handler = Callable[[dict, StepContext], dict]
_names = itertools.count()


def receipts_file(tmp_path: Path, count: int, *, start: int = 0) -> Path:
    """The first `count` real receipts (from `start`) of the SROIE test file (tests/data), as a JSONL file."""
    lines = SROIE_RECEIPTS.read_text(encoding="utf-8").splitlines()[start:start + count]
    path = tmp_path / f"receipts-{start}-{count}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def no_sleep(_seconds: float) -> None:
    """Retry waits are real on AWS; tests need not wait them out."""


@dataclass
class Workspace:
    settings: Settings
    ctx: StepContext

    @property
    def ledger(self):
        return self.ctx.ledger

    @property
    def objects(self):
        return self.ctx.objects

    def import_receipts(self, path: Path, *, sync: bool = False):
        """Import as `receipts import [--sync]` does: content hashes of this provider's model, and the
        deletions it causes queued as deletion batches."""
        report = import_receipts(path, self.ledger, model=self.ctx.provider.model, sync=sync,
                                 tolerance=self.settings.receipt_box_tolerance)
        for kind in ItemKind:
            queue_deletions(kind, self.ledger)
            queue_metadata_updates(kind, self.ledger)
        return report

    def submit(self, kind: ItemKind, *, max_items_per_batch: int = 50, **kwargs: Any) -> SubmitReport:
        return submit(kind, self.ledger, self.ctx.provider, max_items_per_batch=max_items_per_batch, **kwargs)

    def handlers(self, overrides: Mapping[str, Handler] | None = None) -> dict[str, Callable[[dict], dict]]:
        """Every Lambda function bound to this workspace's ports; `overrides` replaces some by name."""
        chosen = {**HANDLERS, **(overrides or {})}
        return {name: (lambda payload, h=handler: h(payload, self.ctx)) for name, handler in chosen.items()}

    def run(self, kind: ItemKind, *, name: str | None = None, overrides: Mapping[str, Handler] | None = None,
            sleep: Callable[[float], None] = no_sleep, definition: dict | None = None) -> ExecutionRecord:
        """One execution of the real definition on the local engine, every task in this process."""
        engine = WorkflowEngine(self.ledger, InProcessInvoker(self.handlers(overrides)),
                                clock=RealClock(sleep_function=sleep))
        definition = definition or build_definition(kind.value, local_resource_arn)
        return engine.start_execution(kind.value, definition, name or f"{kind.value}-test-{next(_names)}", {})

    def run_pooled(self, kind: ItemKind, *, name: str | None = None) -> ExecutionRecord:
        """One execution as the CLI runs it: compaction in worker processes, ports built from settings."""
        described = run_execution(kind, self.settings, name=name, engine_sleep=no_sleep, max_workers=2)
        return self.ledger.get_execution(described["executionArn"])

    def run_until_idle(self, kind: ItemKind, *, max_runs: int = 10, **kwargs: Any) -> list[ExecutionRecord]:
        """Start executions until no batch of `kind` is active any more (or one fails)."""
        from embedding_ingest.stores.records import ACTIVE_BATCH_STATUSES

        records = []
        for _ in range(max_runs):
            record = self.run(kind, **kwargs)
            records.append(record)
            active = self.ledger.list_batches(statuses=ACTIVE_BATCH_STATUSES, batch_type=kind.batch_type)
            if record.status.value != "SUCCEEDED" or not active:
                break
        return records

    def statuses(self, kind: ItemKind) -> Counter:
        return Counter({str(k): v for k, v in self.ledger.count_items(kind).items() if v})

    def published_ids(self, kind: ItemKind) -> list[str]:
        """Every id in the published snapshot of `kind` over all its segments, with repeats if there
        were any (an id in two segments shows up twice)."""
        version = self.ledger.get_published(kind.database)
        if version is None:
            return []
        ids: list[str] = []
        for persist_dir in version_segments(self.objects, version, self.settings):
            with chroma_io.open_client(persist_dir) as client:
                collection = chroma_io.get_collection(client, version.database)
                ids.extend(chroma_io.iter_ids(client, collection))
                del collection
        return ids

    def item_ids(self, kind: ItemKind, status: EmbeddingStatus | None = None) -> set[str]:
        statuses = [status] if status else list(EmbeddingStatus)
        return {item.item_id for s in statuses for item in self.ledger.find_items(kind, s)}

    def output(self, record: ExecutionRecord) -> dict:
        return json.loads(record.output or "{}")


def make_workspace(tmp_path: Path, *, dimensions: int = 16, polls_per_stage: int = 0,
                   **settings: Any) -> Workspace:
    """A fresh embedded-default workspace under tmp_path (small vectors keep tests fast)."""
    values = {"EMBEDDING_INGEST_HOME": str(tmp_path / "home"), "EMBEDDING_DIMENSIONS": dimensions,
              "LOCAL_PROVIDER_POLLS_PER_STAGE": polls_per_stage, **settings}
    built = Settings(**values)
    return Workspace(settings=built, ctx=build_step_context(built))
