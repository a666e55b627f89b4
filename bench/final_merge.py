"""Figure 2: the FinalMerge step adding 1,000 embeddings to a published snapshot of `base` embeddings vs
to nothing published yet. Both run the real step (lock, publish, cache) on a fresh workspace; the big
published version is built once per run and is in the local version cache, as the previous publish
would have left it."""

from __future__ import annotations

import time
from pathlib import Path

from common import Figure, make_workspace, random_pages, stopwatch
from embedding_ingest.snapshots import cache, write_snapshot
from embedding_ingest.snapshots.publish import versions_prefix
from embedding_ingest.steps.final_merge import final_merge
from embedding_ingest.stores.records import SnapshotVersion

DATABASE = "lines"
ADDED = 1000


def _publish_base(ws, count: int, dimensions: int) -> SnapshotVersion:
    """Build a quality snapshot of `count` records once and point the ledger at it."""
    version_id = f"bench-base-{count}"
    prefix = f"{versions_prefix(DATABASE)}{version_id}/"
    manifest = write_snapshot(ws.objects, prefix, random_pages(count, dimensions, prefix="base"),
                              collection=DATABASE, dimensions=dimensions, model=ws.ctx.provider.model,
                              profile="quality", settings=ws.settings)
    lease = ws.ledger.acquire_lock(DATABASE, "bench-setup", 60)
    assert lease is not None
    version = SnapshotVersion(database=DATABASE, version=version_id, key=prefix, count=manifest.count,
                              dimensions=dimensions, model=manifest.model, published_at=time.time(),
                              fencing_token=lease.fencing_token)
    ws.ledger.publish_version(version, expected_current=None, lease=lease)
    ws.ledger.release_lock(lease)
    cache.fetch(ws.objects, ws.settings, version)  # warm, as after the publish that made it
    return version


def _merge_once(ws, dimensions: int, tag: str) -> float:
    prefix = f"intermediate/bench-{tag}/chunk-0/"
    write_snapshot(ws.objects, prefix, random_pages(ADDED, dimensions, prefix=f"new-{tag}", seed=11),
                   collection=DATABASE, dimensions=dimensions, model=ws.ctx.provider.model, profile="cheap")
    event = {"batch_id": f"bench-{tag}", "operation": "final_merge", "database": DATABASE,
             "chunk_results": [{"intermediate_key": prefix, "total_embeddings": ADDED}],
             "poll_results": [], "poll_results_s3_key": None, "poll_results_s3_bucket": None}
    with stopwatch() as elapsed:
        result = final_merge(event, ws.ctx)["final_merge_result"]
    if result["added_embeddings"] != ADDED:
        raise RuntimeError(f"final merge ({tag}) added {result['added_embeddings']}, expected {ADDED}")
    return elapsed[0]


def run(work: Path, *, base: int, dimensions: int) -> list[Figure]:
    empty_ws = make_workspace(work / "empty", dimensions=dimensions)
    big_ws = make_workspace(work / "big", dimensions=dimensions)
    with stopwatch() as build_time:
        _publish_base(big_ws, base, dimensions)
    empty = _merge_once(empty_ws, dimensions, "empty")
    big = _merge_once(big_ws, dimensions, "big")
    return [Figure("final_merge_ratio", big / empty, "x", target=3.0, baseline=empty,
                   detail=f"+{ADDED:,} x {dimensions}-d onto {base:,}: {big:.2f}s vs onto empty: "
                          f"{empty:.2f}s (base built in {build_time[0]:.0f}s)",
                   extra={"final_merge_big_seconds": big, "final_merge_empty_seconds": empty,
                          "final_merge_base": base, "final_merge_dimensions": dimensions})]
