"""Issue 19's "done when": a published snapshot migrated from one width to another with crashes in the
middle, through the real workflows (local engine, SQLite, local objects, the local provider, real
Chroma). Queries answer from the old version until the switch and from the new one after; no item is
embedded twice by the migration; deletions made meanwhile reach both versions; a rollback returns.

The process dies (crash_injection.Crash: nothing catches it) three times: while items are being queued
again, in a FinalMerge between the staging publish and the live pointer's deletions, and between the
switch of the live pointer and the migration record's update. Each time the operator just reruns."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crash_injection import Crash
from pipeline import Workspace, make_workspace, no_sleep, receipts_file
from provider_files import read_file

from asl_local.clock import RealClock
from asl_local.invokers import InProcessInvoker
from embedding_ingest.backends import build_step_context
from embedding_ingest.consumer.snapshot import open_snapshot
from embedding_ingest.migration import start
from embedding_ingest.migration.start import start_or_resume
from embedding_ingest.migration.switch import plan_rollback, roll_back, try_switch
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn
from embedding_ingest.pipeline.engine_store import WorkflowEngine
from embedding_ingest.providers.batch_files import OutputRecord, iter_output_records
from embedding_ingest.steps.context import StepContext
from embedding_ingest.steps.lease import HeldLock, unique_owner
from embedding_ingest.steps.registry import HANDLERS
from embedding_ingest.stores.records import EmbeddingStatus, ItemKind, MigrationState
from embedding_ingest.submission.exceptions import ModelChangeError

LINE = ItemKind.LINE
_names = itertools.count()
SETTINGS = {"LOCK_TTL_SECONDS": 2}


class DiesAt:
    """The real ledger, until the `n`-th call of `method` that `matches` (before it lands): from then on
    every call raises Crash, as nothing runs in a dead process."""

    def __init__(self, inner: Any, method: str, n: int = 1, matches=lambda *a, **k: True) -> None:
        self._inner, self._method, self._left, self._matches = inner, method, n, matches
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        if self.fired:
            raise Crash(name)
        attribute = getattr(self._inner, name)
        if name != self._method or not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if self._matches(*args, **kwargs):
                self._left -= 1
                if self._left == 0:
                    self.fired = True
                    raise Crash(name)
            return attribute(*args, **kwargs)

        return call


def workspace(tmp_path: Path, dimensions: int) -> Workspace:
    return make_workspace(tmp_path, dimensions=dimensions, **SETTINGS)  # one home, another config


def run_dying(ws: Workspace, ledger: DiesAt) -> None:
    """One execution whose steps see the dying ledger (the engine keeps the real one)."""
    ctx = StepContext(objects=ws.objects, ledger=ledger, provider=ws.ctx.provider, settings=ws.settings)
    handlers = {name: (lambda payload, h=handler: h(payload, ctx)) for name, handler in HANDLERS.items()}
    engine = WorkflowEngine(ws.ledger, InProcessInvoker(handlers), clock=RealClock(sleep_function=no_sleep))
    with pytest.raises(Crash):
        record = engine.start_execution("line", build_definition("line", local_resource_arn),
                                        f"dies-{next(_names)}", {})
        raise AssertionError(f"the run did not die: {record.status} {record.error}: {record.cause}")
    assert ledger.fired


def restarted(ws: Workspace) -> Workspace:
    fresh = Workspace(settings=ws.settings, ctx=build_step_context(ws.settings))
    lease = fresh.ledger.current_lease("lines")  # the dead run's lock: freed by its own identity
    if lease is not None:
        assert fresh.ledger.release_lock(lease)
    return fresh


def query_width(ws: Workspace) -> int:
    """The width of the version queries answer from, after a query that must find something."""
    snapshot = open_snapshot("line", settings=ws.settings)
    hits = snapshot.query("TOTAL", n_results=1)
    assert hits["ids"][0], "a query found nothing"
    return snapshot.dimensions


def embedded(ws: Workspace, dimensions: int) -> Counter:
    """custom_id -> how many times the provider embedded it at `dimensions`, over every output file."""
    counts: Counter = Counter()
    for batch in ws.ctx.provider.engine.list_batches():
        if batch["output_file_id"]:
            records = iter_output_records(read_file(ws.ctx.provider, batch["output_file_id"]),
                                          dimensions=dimensions)
            counts.update(r.custom_id for r in records if isinstance(r, OutputRecord))
    return counts


def test_a_migration_crashed_three_times_switches_once_every_item_is_embedded_and_rolls_back(
        tmp_path, monkeypatch):
    receipts = receipts_file(tmp_path, 3)
    old = workspace(tmp_path, 16)
    old.import_receipts(receipts)
    old.submit(LINE)
    assert old.run_until_idle(LINE)[-1].status.value == "SUCCEEDED"
    before = old.ledger.get_published("lines")
    assert (before.dimensions, query_width(old)) == (16, 16)

    new = workspace(tmp_path, 8)
    refusal = (r"configured local-hash-ngram-v1/8 but published lines version \w+ is "
               r"local-hash-ngram-v1/16 \(migrate to the new one")
    with pytest.raises(ModelChangeError, match=refusal) as refused:
        new.submit(LINE)
    assert refused.value.try_ == "embedding-ingest migrate line --dry-run"

    # 1. dies while queueing items again: a rerun resumes, nothing is submitted meanwhile
    monkeypatch.setattr(start, "REQUEUE_CHUNK", 25)
    with pytest.raises(Crash):
        start_or_resume(DiesAt(new.ledger, "requeue_items", n=2), LINE, ("local-hash-ngram-v1", 8))
    new = restarted(new)
    assert new.ledger.get_migration(LINE).state is MigrationState.REQUEUING
    with pytest.raises(ModelChangeError, match="did not finish starting"):
        new.submit(LINE)
    record = start_or_resume(new.ledger, LINE, ("local-hash-ngram-v1", 8))
    assert record.state is MigrationState.BUILDING
    assert new.statuses(LINE) == {"NONE": len(new.item_ids(LINE))}
    assert query_width(new) == 16

    # a receipt leaves meanwhile: its lines must leave what queries read now, and the new version
    lines = receipts.read_text().splitlines()
    third = json.loads(lines[2])["receipt_id"]
    gone = {i for i in new.item_ids(LINE) if i.startswith(f"IMAGE#{third}#")}
    kept_receipts = tmp_path / "two.jsonl"
    kept_receipts.write_text("\n".join(lines[:2]) + "\n")
    new.import_receipts(kept_receipts, sync=True)
    assert gone and new.item_ids(LINE, EmbeddingStatus.DELETING) == gone

    # 2. dies in FinalMerge after the staging publish, before the live pointer got the deletions
    new.submit(LINE)
    run_dying(new, DiesAt(new.ledger, "publish_version",
                          matches=lambda version, **kw: kw.get("pointer") is None))
    new = restarted(new)
    assert query_width(new) == 16 and new.ledger.get_migration(LINE).state is MigrationState.BUILDING
    assert set(new.published_ids(LINE)) >= gone  # the live pointer has not had the deletions yet

    # 3. the rerun's FinalMerge publishes the last lines and switches, and dies between moving the live
    #    pointer and the migration record
    run_dying(new, DiesAt(new.ledger, "save_migration"))
    new = restarted(new)
    assert new.ledger.get_migration(LINE).state is MigrationState.BUILDING
    assert query_width(new) == 8  # the switch itself happened: queries answer from the new version

    with HeldLock(new.ledger, "lines", unique_owner("test", "lines"), 30) as held:  # `migrate` again
        assert try_switch(new.objects, new.ledger, held.lease, LINE, new.settings).switched
    record = new.ledger.get_migration(LINE)
    assert (record.state, record.before_switch) == (MigrationState.SWITCHED, new.ledger.get_published(
        "lines").parent_version)
    assert new.ledger.get_published("lines", pointer=record.staging) is None  # staging pointer dropped
    assert new.run(LINE).status.value == "SUCCEEDED"  # the next execution settles the switched batches
    kept = new.item_ids(LINE)
    assert new.statuses(LINE) == {"SUCCESS": len(kept)}
    assert sorted(new.published_ids(LINE)) == sorted(kept) and not gone & kept
    assert set(embedded(new, 8)) == kept and set(embedded(new, 8).values()) == {1}  # never twice
    new.submit(LINE)  # the configured width is the published one now
    assert new.statuses(LINE) == {"SUCCESS": len(kept)}

    # rollback: back to the version the switch replaced, without the lines deleted since
    with HeldLock(new.ledger, "lines", unique_owner("test", "lines"), 30) as held:
        plan = plan_rollback(new.objects, new.ledger, LINE, new.settings)
        assert plan.restores.version == record.before_switch and plan.lacking == []
        roll_back(new.objects, new.ledger, held.lease, plan, new.settings)
    assert query_width(new) == 16
    assert sorted(new.published_ids(LINE)) == sorted(kept)
    assert new.ledger.get_migration(LINE).state is MigrationState.ROLLED_BACK
