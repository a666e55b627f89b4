"""Figure 6 (issue 12): query latency through `open_snapshot` on a published, layered snapshot (a base
segment plus the tail segments a few publishes leave) vs stock Chroma querying one collection that holds
the same records. The snapshot is made by the real publish path; the stock collection is the same
version pulled into one directory (`snapshots pull`), so both hold identical records and index settings.
Queries are stored vectors with noise (realistic neighbours), asked alternately of both, so machine load
hits both alike; p50 of each over the same queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import Figure, make_workspace, random_pages, stopwatch
from embedding_ingest import open_snapshot
from embedding_ingest.snapshots import publish_next_version, read_version, write_snapshot
from embedding_ingest.snapshots.chroma_io import get_collection, open_client
from embedding_ingest.snapshots.pull import pull_version

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

    ours_ms, stock_ms = [], []
    with open_snapshot(DATABASE, settings=ws.settings) as snap, open_client(stock_dir) as client:
        stock = get_collection(client, DATABASE)
        queries = _queries(snap, QUERIES, dimensions)
        agree = 0
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
        del stock
    p50_ours, p50_stock = float(np.median(ours_ms)), float(np.median(stock_ms))
    overlap = agree / (QUERIES * N_RESULTS)
    return [Figure("query_ratio", p50_ours / p50_stock, "x", target=1.5, baseline=p50_stock,
                   detail=f"p50 of {QUERIES} queries (n={N_RESULTS}) on {version.count:,} x {dimensions}-d "
                          f"in segments {segments}: open_snapshot {p50_ours:.2f} ms vs one stock "
                          f"collection {p50_stock:.2f} ms; same neighbours {overlap:.1%} (built in "
                          f"{built_in:.0f}s)",
                   extra={"query_p50_ms": p50_ours, "query_stock_p50_ms": p50_stock,
                          "query_p90_ms": float(np.percentile(ours_ms, 90)),
                          "query_stock_p90_ms": float(np.percentile(stock_ms, 90)),
                          "query_segments": segments, "query_neighbour_overlap": overlap})]
