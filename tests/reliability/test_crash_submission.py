"""Crashes inside submission: at its entry and before/after every ledger write and every provider upload
and batch create (so between a claim and the provider call, between an upload and its record, and
between the provider accepting a batch and our recording it). A second submit must finish the job: no
item lost or in two batches, no second provider batch; then the workflow publishes every item once.
"""

from __future__ import annotations

import functools
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from crash_injection import ENTRY, Crash, CrashingLedger, CrashingProvider, CrashSwitch, WritePoint
from injection_report import record_injection_points
from pipeline import Workspace, make_workspace, receipts_file
from published_checks import assert_published_exactly_once
from scenarios import assert_each_item_in_exactly_one_batch, restarted

from embedding_ingest.stores.records import ItemKind
from embedding_ingest.submission.submit import submit

KIND = ItemKind.LINE
BATCHES = 3
STEP = "submit"


def fresh_workspace(root: Path) -> tuple[Workspace, int]:
    ws = make_workspace(root)
    ws.import_receipts(receipts_file(root, 1, start=2))
    per_batch = math.ceil(len(ws.item_ids(KIND)) / BATCHES)
    return ws, per_batch


def submit_through(ws: Workspace, switch: CrashSwitch, per_batch: int) -> None:
    with switch.invocation(STEP):
        submit(KIND, CrashingLedger(ws.ledger, switch), CrashingProvider(ws.ctx.provider, switch),
               max_items_per_batch=per_batch)


@functools.cache
def submission_points() -> tuple[tuple[WritePoint, str], ...]:
    root = Path(tempfile.mkdtemp(prefix="reliability-submit-dry-run-"))
    try:
        ws, per_batch = fresh_workspace(root)
        switch = CrashSwitch()
        submit_through(ws, switch, per_batch)
        ws.ledger.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    writes = [(point, when) for point in switch.points() for when in ("before", "after")]
    return ((WritePoint(STEP, ENTRY), "before"), *writes)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "injection" in metafunc.fixturenames:
        points = submission_points()
        record_injection_points(metafunc.config, "test_crash_in_submission", len(points),
                                f"entry + before/after {len(points) // 2} ledger writes and provider calls")
        metafunc.parametrize("injection", points, ids=[p.case_id(when) for p, when in points])


def test_dry_run_sees_a_claim_an_upload_its_record_a_create_and_its_record_per_batch() -> None:
    methods = [point.method for point, when in submission_points() if when == "before"][1:]
    # issue 19: the input file id is recorded between upload and create, so a resumed submit reuses it
    assert methods == ["claim_batch", "provider.upload", "update_batch", "provider.create",
                       "update_batch"] * BATCHES


def test_crash_in_submission(injection: tuple[WritePoint, str], tmp_path: Path) -> None:
    point, when = injection
    ws, per_batch = fresh_workspace(tmp_path)
    every_item = ws.item_ids(KIND)
    switch = CrashSwitch(target=point, when=when)
    with pytest.raises(Crash):
        submit_through(ws, switch, per_batch)

    again = restarted(ws)
    again.submit(KIND, max_items_per_batch=per_batch)
    assert_each_item_in_exactly_one_batch(again, KIND)
    record = again.run(KIND)
    assert record.status.value == "SUCCEEDED", record.cause
    assert_published_exactly_once(again, KIND, every_item)
