"""A real pipeline workspace with published line snapshots made of several segments (two imports of
real receipts, each ingested by the real workflow on the local engine), shared by the consumer tests
of one module; the tests only read it."""

from __future__ import annotations

from pathlib import Path

import pytest
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


@pytest.fixture(scope="module")
def layered_workspace(tmp_path_factory) -> Workspace:
    """Lines of 6 receipts published in two versions; the second is two segments (no compaction)."""
    tmp = tmp_path_factory.mktemp("consumer")
    ws = make_workspace(tmp, dimensions=64, SNAPSHOT_MERGE_FACTOR=100, HNSW_EF_CONSTRUCTION=64)
    ingest(ws, tmp, 4, 0)
    ingest(ws, tmp, 2, 4)
    return ws
