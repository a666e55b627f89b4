"""Figure 6 (issue 12): query latency through `open_snapshot` on a published, layered snapshot (a base
segment plus the tail segments a few publishes leave) vs stock Chroma querying one collection that holds
the same records. The snapshot is made by the real publish path; the stock collection is the same
version pulled into one directory (`snapshots pull`), so both hold identical records and index settings.
Queries are stored vectors with noise (realistic neighbours), asked alternately of both, so machine load
hits both alike; p50 of each over the same queries.

Run alone, it measures a version of equal segments instead (issue 21: what a version of several large
segments costs to query; not part of `make bench`): RECORDS published in SEGMENTS publishes without
merging, against stock Chroma holding the same records in one collection grown by the same upserts.

    python bench/query.py --records 100000 --dims 384 --segments 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Figure, machine, make_workspace, random_pages, stopwatch  # noqa: E402
from embedding_ingest import open_snapshot  # noqa: E402
from embedding_ingest.snapshots import publish_next_version, read_version, write_snapshot  # noqa: E402
from embedding_ingest.snapshots.chroma_io import (  # noqa: E402
    create_collection,
    get_collection,
    open_client,
    upsert_pages,
)
from embedding_ingest.snapshots.pull import pull_version  # noqa: E402

DATABASE = "lines"
TAILS = 3  # publishes after the base, each adding 1% of it (no compaction: the tails stay under 25%)
QUERIES = 200
N_RESULTS = 10
INCLUDE = ["metadatas", "documents", "distances"]


def publish(ws, prefix: str, pages, dimensions: int) -> None:
    """Publish `pages` as the next version of `lines` (under the lock, as FinalMerge would)."""
    write_snapshot(ws.objects, prefix, pages, collection=DATABASE, dimensions=dimensions,
                   model=ws.ctx.provider.model, profile="flat")
    lease = ws.ledger.acquire_lock(DATABASE, "bench-query", 3600)
    assert lease is not None
    try:
        publish_next_version(ws.objects, ws.ledger, lease, database=DATABASE, sources=[prefix],
                             settings=ws.settings)
    finally:
        ws.ledger.release_lock(lease)


def _queries(snap, count: int, dimensions: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    stored = np.stack([snap.get(limit=1, offset=int(o), include=["embeddings"])["embeddings"][0]
                       for o in rng.integers(0, snap.count(), size=count)])
    noisy = stored + rng.standard_normal(stored.shape).astype(np.float32) * (0.5 / np.sqrt(dimensions))
    return noisy.astype(np.float32)


def time_queries(snap, stock, queries: np.ndarray) -> tuple[list[float], list[float], float]:
    """Each query asked of the snapshot, then of the stock collection (after 10 warm-ups of both):
    (ours ms, stock ms, share of the same neighbours)."""
    ours_ms, stock_ms, agree = [], [], 0
    for q in queries[:10]:  # warm both (index load, caches)
        snap.query(query_embeddings=q, n_results=N_RESULTS, include=INCLUDE)
        stock.query(query_embeddings=q[None], n_results=N_RESULTS, include=INCLUDE)
    for q in queries:
        with stopwatch() as ours:
            mine = snap.query(query_embeddings=q, n_results=N_RESULTS, include=INCLUDE)
        with stopwatch() as theirs:
            reference = stock.query(query_embeddings=q[None], n_results=N_RESULTS, include=INCLUDE)
        ours_ms.append(ours[0] * 1000)
        stock_ms.append(theirs[0] * 1000)
        agree += len(set(mine["ids"][0]) & set(reference["ids"][0]))
    return ours_ms, stock_ms, agree / (len(queries) * N_RESULTS)


def run(work: Path, *, base: int, dimensions: int) -> list[Figure]:
    ws = make_workspace(work / "ws", dimensions=dimensions)
    with stopwatch() as build_time:
        publish(ws, "intermediate/bench-query-base/merged/", random_pages(base, dimensions, prefix="base"),
                 dimensions)
    return measure(ws, work, base=base, dimensions=dimensions, built_in=build_time[0])


def measure(ws, work: Path, *, base: int, dimensions: int, built_in: float) -> list[Figure]:
    """Publish TAILS small versions onto the workspace's published base, then time the queries."""
    with stopwatch() as build_time:
        for n in range(TAILS):
            pages = random_pages(max(1, base // 100), dimensions, prefix=f"tail{n}", seed=20 + n)
            publish(ws, f"intermediate/bench-query-tail-{n}/merged/", pages, dimensions)
    built_in += build_time[0]
    version = ws.ledger.get_published(DATABASE)
    segments = [s.count for s in read_version(ws.objects, version).segments]
    stock_dir = work / "stock"
    pull_version(ws.objects, ws.ledger, ws.settings, DATABASE, stock_dir)

    with open_snapshot(DATABASE, settings=ws.settings) as snap, open_client(stock_dir) as client:
        stock = get_collection(client, DATABASE)
        ours_ms, stock_ms, overlap = time_queries(snap, stock, _queries(snap, QUERIES, dimensions))
        del stock
    p50_ours, p50_stock = float(np.median(ours_ms)), float(np.median(stock_ms))
    return [Figure("query_ratio", p50_ours / p50_stock, "x", target=1.25, baseline=p50_stock,
                   detail=f"p50 of {QUERIES} queries (n={N_RESULTS}) on {version.count:,} x {dimensions}-d "
                          f"in segments {segments}: open_snapshot {p50_ours:.2f} ms vs one stock "
                          f"collection {p50_stock:.2f} ms; same neighbours {overlap:.1%} (built in "
                          f"{built_in:.0f}s)",
                   extra={"query_p50_ms": p50_ours, "query_stock_p50_ms": p50_stock,
                          "query_p90_ms": float(np.percentile(ours_ms, 90)),
                          "query_stock_p90_ms": float(np.percentile(stock_ms, 90)),
                          "query_segments": segments, "query_neighbour_overlap": overlap})]


def equal_segments(work: Path, *, records: int, dimensions: int, segments: int) -> dict:
    """`records` published in `segments` publishes without merging vs one stock collection grown by the
    same upserts; p50/p90 of both over the same QUERIES queries, with CPU seconds of the timed loop.
    A `work` that holds a finished build is measured again without rebuilding."""
    ws = make_workspace(work / "ws", dimensions=dimensions, SNAPSHOT_MERGE_FACTOR=100,
                        SNAPSHOT_MAX_SEGMENTS=100)
    per = records // segments
    built = work / "built"
    if not built.exists():
        with open_client(work / "stock") as client:
            stock = create_collection(client, DATABASE, "quality", ws.settings)
            for n in range(segments):
                pages = list(random_pages(per, dimensions, prefix=f"s{n}", seed=40 + n))
                publish(ws, f"intermediate/bench-query-segment-{n}/merged/", pages, dimensions)
                upsert_pages(client, stock, pages, dimensions=dimensions, where=f"stock {n}")
            del stock
        built.touch()
    version = ws.ledger.get_published(DATABASE)
    with open_client(work / "stock") as client:
        stock = get_collection(client, DATABASE)
        with open_snapshot(DATABASE, settings=ws.settings) as snap:
            queries = _queries(snap, QUERIES, dimensions)
            started = time.process_time()
            ours_ms, stock_ms, overlap = time_queries(snap, stock, queries)
            cpu = time.process_time() - started
        del stock
    return {"records": version.count, "dimensions": dimensions,
            "segments": [s.count for s in read_version(ws.objects, version).segments],
            "query_p50_ms": round(float(np.median(ours_ms)), 3),
            "stock_p50_ms": round(float(np.median(stock_ms)), 3),
            "query_p90_ms": round(float(np.percentile(ours_ms, 90)), 3),
            "stock_p90_ms": round(float(np.percentile(stock_ms, 90)), 3),
            "ratio": round(float(np.median(ours_ms) / np.median(stock_ms)), 3),
            "loop_cpu_seconds": round(cpu, 2), "same_neighbours": round(overlap, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--work", type=Path, help="keep the build here (a finished one is reused)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="embedding-ingest-query-"))
    try:
        row = equal_segments(work, records=args.records, dimensions=args.dims, segments=args.segments)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    info = machine()
    print(json.dumps({**row, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "machine": f"{info['cores']} cores, {info['cpu_model']}",
                      "load_average": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
