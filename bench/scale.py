"""`make bench-scale` (not part of `make bench`; issue 21): a collection grown to RECORDS x DIMS in
PUBLISHES publishes of equal size, and what each publish costs as the collection grows.

Each publish is FinalMerge's real handler (snapshots.publish_next_version under the lock: id indexes,
integrity checks, tiered bounded merges) in a process of its own on a fresh local disk, as a Lambda
without EFS runs it (functions.ChildProcessInvoker: its peak RSS and peak local disk are recorded; its
seconds include the process start), on one flat intermediate of synthetic records, as the final merge
of a run of that many records hands it over. It does not drive submission and polling: the provider's work
per record does not grow with the collection, the publish's could, and that is what this measures.
Per publish: seconds, segments after it, merge work (segments and archive bytes merged), the bytes a
cold MarkBatchesComplete lookup of 1,000 ids writes to its cache dir (id indexes only), and query p50
through open_snapshot beside stock Chroma holding the same records (one collection grown by the same
upserts). Targets: the last publish costs <= 1.3x the first; query p50 <= 1.5x stock Chroma at the end.

    python bench/scale.py                      # 1,000,000 x 384-d in ten publishes (hours on 2 cores)
    python bench/scale.py --records 100000 --publishes 10 --dims 384   # a smaller run of the same shape
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_ROOT, machine, make_workspace, random_pages, stopwatch  # noqa: E402
from embedding_ingest import open_snapshot  # noqa: E402
from embedding_ingest.pipeline.definitions import local_resource_arn  # noqa: E402
from embedding_ingest.snapshots import (  # noqa: E402
    read_manifest,
    read_version,
    write_snapshot,  # noqa: E402
)
from embedding_ingest.snapshots.chroma_io import create_collection, open_client, upsert_pages  # noqa: E402
from embedding_ingest.snapshots.query import published_revisions  # noqa: E402
from functions import ChildProcessInvoker  # noqa: E402
from peaks import disk_bytes  # noqa: E402
from query import INCLUDE, N_RESULTS  # noqa: E402

DATABASE = "lines"
FINAL_MERGE = "embedding-vector-compact"  # operation final_merge
QUERIES = 100
LOOKUP_IDS = 1000



def _stored_bytes(manifest) -> int:
    """A segment's archive plus its vectors part (stored apart since issue 21)."""
    return manifest.archive_bytes + (manifest.vectors.size if manifest.vectors else 0)


def _query_p50(ws, stock, dimensions: int, rng: np.random.Generator) -> tuple[float, float]:
    """p50 ms of the same noisy unit vectors asked alternately of the snapshot and of stock Chroma."""
    queries = rng.standard_normal((QUERIES, dimensions)).astype(np.float32)
    ours, theirs = [], []
    with open_snapshot(DATABASE, settings=ws.settings) as snap:
        for q in queries[:5]:  # warm both
            snap.query(query_embeddings=q, n_results=N_RESULTS, include=INCLUDE)
            stock.query(query_embeddings=q[None], n_results=N_RESULTS, include=INCLUDE)
        for q in queries:
            with stopwatch() as mine:
                snap.query(query_embeddings=q, n_results=N_RESULTS, include=INCLUDE)
            with stopwatch() as reference:
                stock.query(query_embeddings=q[None], n_results=N_RESULTS, include=INCLUDE)
            ours.append(mine[0] * 1000)
            theirs.append(reference[0] * 1000)
    return statistics.median(ours), statistics.median(theirs)


def _lookup_cache_bytes(ws, work: Path, version, per_publish: int, publishes: int) -> int:
    """Bytes a cold MarkBatchesComplete lookup writes to its cache dir (a fresh one)."""
    cold = ws.settings.model_copy(update={"chroma_root": work / "cold-lookup"})
    wanted = [f"p{publishes - 1}-{i:07d}" for i in range(min(LOOKUP_IDS, per_publish))]
    found = published_revisions(ws.objects, version, wanted, cold)
    if len(found) != len(wanted):
        raise RuntimeError(f"lookup found {len(found)} of {len(wanted)} just-published ids")
    written = disk_bytes(work / "cold-lookup")
    shutil.rmtree(work / "cold-lookup", ignore_errors=True)
    return written


def run(work: Path, *, records: int, publishes: int, dimensions: int) -> list[dict]:
    per_publish = records // publishes
    ws = make_workspace(work / "ws", dimensions=dimensions)
    rng = np.random.default_rng(11)
    rows: list[dict] = []
    with open_client(work / "stock") as client:
        stock = create_collection(client, DATABASE, "quality", ws.settings)
        for n in range(publishes):
            before = {s.key for s in read_version(ws.objects, v).segments} if (
                v := ws.ledger.get_published(DATABASE)) else set()
            pages = list(random_pages(per_publish, dimensions, prefix=f"p{n}", seed=100 + n))
            source = f"intermediate/bench-scale-{n}/merged/"
            write_snapshot(ws.objects, source, pages, collection=DATABASE, dimensions=dimensions,
                           model=ws.ctx.provider.model, profile="flat")  # ProcessChunks' output
            invoker = ChildProcessInvoker(work, ws.settings)  # FinalMerge in a process of its own
            with stopwatch() as seconds:
                invoker.invoke(local_resource_arn(FINAL_MERGE), {
                    "batch_id": f"bench-scale-{n}", "database": DATABASE, "operation": "final_merge",
                    "chunk_results": [{"intermediate_key": source, "total_embeddings": per_publish}]})
            [peaks] = invoker.peaks.values()
            version = ws.ledger.get_published(DATABASE)
            segments = read_version(ws.objects, version).segments
            merged = [s for s in segments if s.key not in before and s.count != per_publish]
            merged_bytes = sum(_stored_bytes(read_manifest(ws.objects, s.key)) for s in merged)
            with stopwatch() as stock_seconds:
                upsert_pages(client, stock, pages, dimensions=dimensions, where=f"stock publish {n}")
            ours_ms, stock_ms = _query_p50(ws, stock, dimensions, rng)
            rows.append({"publish": n + 1, "records": version.count, "seconds": round(seconds[0], 1),
                         "peak_rss_mb": round(peaks["rss"]), "peak_tmp_mb": round(peaks["tmp"]),
                         "stock_upsert_seconds": round(stock_seconds[0], 1), "segments": len(segments),
                         "segment_counts": [s.count for s in segments], "merged_segments": len(merged),
                         "merged_bytes": merged_bytes,
                         "lookup_cache_bytes": _lookup_cache_bytes(ws, work, version, per_publish, n + 1),
                         "query_p50_ms": round(ours_ms, 2), "stock_query_p50_ms": round(stock_ms, 2)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        del stock
    return rows


def format_table(rows: list[dict]) -> str:
    head = ("publish", "records", "seconds", "peak RSS", "peak /tmp", "segments", "merged", "lookup /tmp",
            "query p50", "stock p50")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        merged = f"{r['merged_segments']} ({r['merged_bytes'] / 2**20:,.0f} MB)"
        lines.append(" | ".join((str(r["publish"]), f"{r['records']:,}", f"{r['seconds']:.1f}",
                                 f"{r['peak_rss_mb']:,} MB", f"{r['peak_tmp_mb']:,} MB", str(r["segments"]),
                                 merged,
                                 f"{r['lookup_cache_bytes'] / 2**20:.1f} MB", f"{r['query_p50_ms']:.1f} ms",
                                 f"{r['stock_query_p50_ms']:.1f} ms")))
    return "\n".join(f"| {line} |" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "scale_results.json")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="embedding-ingest-scale-"))
    started = time.perf_counter()
    try:
        rows = run(scratch, records=args.records, publishes=args.publishes, dimensions=args.dims)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info = machine()
    growth = rows[-1]["seconds"] / rows[0]["seconds"]
    query_ratio = rows[-1]["query_p50_ms"] / rows[-1]["stock_query_p50_ms"]
    print(f"machine: {info['cores']} cores, {info['cpu_model']}; {time.strftime('%Y-%m-%d')}")
    print(format_table(rows))
    print(f"last publish / first: {growth:.2f}x (target <= 1.3x); query p50 / stock: {query_ratio:.2f}x "
          f"(target <= 1.5x)")
    args.results.write_text(json.dumps({"machine": info, "date": time.strftime("%Y-%m-%d"),
                                        "records": args.records, "publishes": args.publishes,
                                        "dimensions": args.dims, "rows": rows, "publish_growth": growth,
                                        "query_ratio": query_ratio,
                                        "seconds": round(time.perf_counter() - started)}, indent=2) + "\n")
    return 0 if growth <= 1.3 and query_ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
