"""Figure 2: the FinalMerge step adding 1,000 embeddings to a published snapshot of `base` embeddings vs
to nothing published yet. Both run the real step (lock, publish, cache) on a fresh workspace; the big
published version is built once per run by a real publish (one segment) and is in the local segment
cache, as that publish left it. Published versions are layered (a publish adds one small segment), so
the cost of folding segments into one is paid only now and then: it is measured separately, on the
100k + 1k version the big merge made, for the record; so is the plain mirror (SNAPSHOT_PUBLISH_PLAIN),
what it adds to each publish of that version."""

from __future__ import annotations

from pathlib import Path

import query
from common import Figure, make_workspace, random_pages, stopwatch
from embedding_ingest.snapshots import compact_published, publish_next_version, read_version, write_snapshot
from embedding_ingest.snapshots.mirror import write_plain_mirror
from embedding_ingest.steps.final_merge import final_merge
from embedding_ingest.stores.records import SnapshotVersion

DATABASE = "lines"
ADDED = 1000


def _publish_base(ws, count: int, dimensions: int) -> SnapshotVersion:
    """Publish `count` records as the first version (one quality segment, installed in the cache)."""
    source = "intermediate/bench-base/merged/"
    write_snapshot(ws.objects, source, random_pages(count, dimensions, prefix="base"), collection=DATABASE,
                   dimensions=dimensions, model=ws.ctx.provider.model, profile="flat")
    lease = ws.ledger.acquire_lock(DATABASE, "bench-setup", 3600)
    assert lease is not None
    try:
        outcome = publish_next_version(ws.objects, ws.ledger, lease, database=DATABASE, sources=[source],
                                       settings=ws.settings)
    finally:
        ws.ledger.release_lock(lease)
    if outcome.total_embeddings != count:
        raise RuntimeError(f"base version holds {outcome.total_embeddings}, expected {count}")
    return outcome.version


def _compact(ws) -> tuple[float, SnapshotVersion]:
    lease = ws.ledger.acquire_lock(DATABASE, "bench-compact", 3600)
    assert lease is not None
    try:
        with stopwatch() as elapsed:
            version = compact_published(ws.objects, ws.ledger, lease, database=DATABASE, settings=ws.settings)
    finally:
        ws.ledger.release_lock(lease)
    assert version is not None
    return elapsed[0], version


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


def run(work: Path, *, base: int, dimensions: int, with_query: bool = False) -> list[Figure]:
    """With `with_query`, the query figure (bench/query.py) is measured on the same published base
    (one 100k x 1536-d build instead of two)."""
    empty_ws = make_workspace(work / "empty", dimensions=dimensions)
    big_ws = make_workspace(work / "big", dimensions=dimensions)
    with stopwatch() as build_time:
        _publish_base(big_ws, base, dimensions)
    empty = _merge_once(empty_ws, dimensions, "empty")
    big = _merge_once(big_ws, dimensions, "big")
    extra = query.measure(big_ws, work, base=base, dimensions=dimensions, built_in=build_time[0]) \
        if with_query else []
    layered = read_version(big_ws.objects, big_ws.ledger.get_published(DATABASE))
    mirror = write_plain_mirror(big_ws.objects, big_ws.ledger, big_ws.settings, DATABASE)
    assert mirror is not None
    compaction, compacted = _compact(big_ws)
    # A segment of half a maximum or more is full and never merged again (merge_policy), so a 100,000 x
    # 1536-d base (~700 MB) stays whole and compaction may leave more than one segment.
    left = len(read_version(big_ws.objects, compacted).segments)
    if compacted.count != layered.count or left > len(layered.segments):
        raise RuntimeError(f"compacting segments of {[s.count for s in layered.segments]} gave "
                           f"{compacted.count} records in {left} segments")
    # A small base makes the merge itself compact (a tail over the ratio): then there is nothing left.
    folded = f"{' + '.join(f'{s.count:,}' for s in layered.segments)} segment(s)"
    return [Figure("final_merge_ratio", big / empty, "x", target=1.2, baseline=empty,  # issue 21
                   detail=f"+{ADDED:,} x {dimensions}-d onto {base:,}: {big:.2f}s vs onto empty: "
                          f"{empty:.2f}s (base built in {build_time[0]:.0f}s)",
                   extra={"final_merge_big_seconds": big, "final_merge_empty_seconds": empty,
                          "final_merge_base": base, "final_merge_dimensions": dimensions}),
            Figure("plain_mirror_seconds", mirror.seconds, "s",
                   detail=f"SNAPSHOT_PUBLISH_PLAIN cost per publish: version of {layered.count:,} pulled "
                          f"into one directory and uploaded to latest/ ({mirror.files} files, "
                          f"{mirror.bytes / 1e6:,.0f} MB)",
                   extra={"plain_mirror_bytes": mirror.bytes}),
            *extra,
            Figure("compaction_seconds", compaction, "s",
                   detail=f"compact_published of {folded} (bounded merges: at most "
                          f"{big_ws.settings.snapshot_merge_factor} segments and "
                          f"{big_ws.settings.snapshot_max_segment_bytes / 2**30:.2f} GiB each; full ones "
                          f"never): {left} segment(s) left",
                   extra={"compaction_seconds": compaction})]
