"""A real pipeline workspace with published line snapshots made of several segments (two imports of
real receipts, each ingested by the real workflow on the local engine), built once per run and copied
for each module (tests/support/built_scenarios.py); a module's tests share their copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from built_scenarios import built_once, copy_of
from pipeline import Workspace, make_workspace, receipts_file

from embedding_ingest.stores.records import ItemKind


def ingest(ws: Workspace, tmp: Path, count: int, start: int) -> None:
    ws.import_receipts(receipts_file(tmp, count, start=start))
    ws.submit(ItemKind.LINE, max_items_per_batch=200)
    records = ws.run_until_idle(ItemKind.LINE)
    assert records[-1].status.value == "SUCCEEDED", records[-1].error


@pytest.fixture(scope="session")
def ingest_lines():
    return ingest


LAYERED = {"dimensions": 64, "SNAPSHOT_MERGE_FACTOR": 100, "HNSW_EF_CONSTRUCTION": 64}


def _layered(root: Path) -> None:
    ws = make_workspace(root, **LAYERED)
    ingest(ws, root, 4, 0)
    ingest(ws, root, 2, 4)
    ws.ledger.close()


@pytest.fixture(scope="module")
def layered_workspace(tmp_path_factory) -> Workspace:
    """Lines of 6 receipts published in two versions; the second is two segments (no compaction)."""
    root, _ = built_once(tmp_path_factory, "consumer-layered", _layered)
    tmp = tmp_path_factory.mktemp("consumer")
    copy_of(root / "home", tmp / "home")
    return make_workspace(tmp, **LAYERED)
