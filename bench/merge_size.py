"""What one bounded merge needs, by the merged segment's size (issue 21): the measurement behind
SNAPSHOT_MAX_SEGMENT_BYTES / SNAPSHOT_MAX_SEGMENT_RECORDS (config.py).

Setup (`--phase setup`, heavy, no measurement): a published version of three segments of RECORDS/4
x DIMS synthetic records each (three in-process publishes) and one flat intermediate of RECORDS/4 more,
as ProcessChunks hands one to FinalMerge. Merge (`--phase merge`, the measured part): FinalMerge's real
handler in a process of its own on a fresh local disk, as a cold Lambda without EFS runs it
(functions.ChildProcessInvoker: VmHWM, and the parent's 10 ms sample of its local disk); its tail makes
the fourth segment of the tier, so the publish merges all four into one segment of RECORDS (the
largest merge a publish does is F segments of one tier, at most the maximum segment size). The merge
uses up its setup (run the setup again to repeat it). The row (records, width, merged segment's stored
bytes, peak RSS, peak local disk, the child's CPU seconds, wall seconds, date, load) is appended to
`--results` (bench/merge_size_results.json, from which the README's sizing table is then regenerated:
bench/sizing_table.py); `--fit` prints peak = a + b x bytes (and x records) per width over the rows there.

    python bench/merge_size.py --records 200000 --dims 384 --work /tmp/m200k --phase setup
    python bench/merge_size.py --records 200000 --dims 384 --work /tmp/m200k --phase merge
    python bench/merge_size.py --fit
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, make_workspace, random_pages, stopwatch  # noqa: E402
from embedding_ingest.pipeline.definitions import local_resource_arn  # noqa: E402
from embedding_ingest.snapshots import (  # noqa: E402
    publish_next_version,
    read_manifest,
    read_version,
    write_snapshot,  # noqa: E402
)
from functions import ChildProcessInvoker  # noqa: E402
from sizing_table import MERGES, linear_fit  # noqa: E402
from sizing_table import main as sizing_main  # noqa: E402

DATABASE = "lines"
FINAL_MERGE = "embedding-vector-compact"  # operation final_merge
PARTS = 4  # SNAPSHOT_MERGE_FACTOR's default: a merge folds this many segments of one tier


def _source(ws, n: int, count: int, dimensions: int) -> str:
    prefix = f"intermediate/merge-size-{n}/merged/"
    write_snapshot(ws.objects, prefix, random_pages(count, dimensions, prefix=f"q{n}", seed=200 + n),
                   collection=DATABASE, dimensions=dimensions, model=ws.ctx.provider.model, profile="flat")
    return prefix


def setup(work: Path, *, records: int, dimensions: int) -> None:
    ws = make_workspace(work / "ws", dimensions=dimensions)
    quarter = records // PARTS
    for n in range(PARTS - 1):
        lease = ws.ledger.acquire_lock(DATABASE, "merge-size-setup", 3600)
        assert lease is not None
        try:
            publish_next_version(ws.objects, ws.ledger, lease, database=DATABASE,
                                 sources=[_source(ws, n, quarter, dimensions)], settings=ws.settings)
        finally:
            ws.ledger.release_lock(lease)
    segments = read_version(ws.objects, ws.ledger.get_published(DATABASE)).segments
    if len(segments) != PARTS - 1:
        raise RuntimeError(f"setup made {len(segments)} segments, expected {PARTS - 1}")
    (work / "tail.json").write_text(json.dumps({"source": _source(ws, PARTS - 1, quarter, dimensions),
                                                "count": quarter}))


def merge(work: Path, *, records: int, dimensions: int) -> dict:
    ws = make_workspace(work / "ws", dimensions=dimensions)
    tail = json.loads((work / "tail.json").read_text())
    invoker = ChildProcessInvoker(work, ws.settings)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with stopwatch() as seconds:
        invoker.invoke(local_resource_arn(FINAL_MERGE), {
            "batch_id": "merge-size", "database": DATABASE, "operation": "final_merge",
            "chunk_results": [{"intermediate_key": tail["source"], "total_embeddings": tail["count"]}]})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # the child's CPU seconds
    [peaks] = invoker.peaks.values()
    segments = read_version(ws.objects, ws.ledger.get_published(DATABASE)).segments
    if [s.count for s in segments] != [records]:
        raise RuntimeError(f"the publish left segments of {[s.count for s in segments]}, not one of "
                           f"{records}")
    manifest = read_manifest(ws.objects, segments[0].key)
    stored = manifest.archive_bytes + (manifest.vectors.size if manifest.vectors else 0)
    return {"records": records, "dimensions": dimensions, "merged_bytes": stored,
            "records_bytes": manifest.archive_bytes,
            "peak_rss_mb": round(peaks["rss"], 1), "peak_tmp_mb": round(peaks["tmp"], 1),
            "seconds": round(seconds[0], 1), "child_seconds": round(peaks["seconds"], 1),
            "cpu_seconds": round(cpu, 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "loadavg": [f"{x:.2f}" for x in os.getloadavg()],
            "machine": machine()}


def fit(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Least squares peak = a + b x (stored bytes | records) per width and over all rows."""
    out: dict[str, tuple[float, float]] = {}
    for width in [*sorted({r["dimensions"] for r in rows}), None]:
        picked = [r for r in rows if width is None or r["dimensions"] == width]
        if len({r["records"] for r in picked}) < 2:
            continue
        for x_name in ("merged_bytes", "records"):
            for y_name in ("peak_rss_mb", "peak_tmp_mb", "cpu_seconds"):
                out[f"{y_name} ~ {x_name} @ {width or 'all'}"] = linear_fit(
                    [r[x_name] for r in picked], [r[y_name] for r in picked])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int)
    parser.add_argument("--dims", type=int)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--phase", choices=("setup", "merge"))
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--results", type=Path, default=MERGES)
    args = parser.parse_args(argv)
    rows = json.loads(args.results.read_text()) if args.results.is_file() else []
    if args.phase == "setup":
        args.work.mkdir(parents=True, exist_ok=True)
        setup(args.work, records=args.records, dimensions=args.dims)
    elif args.phase == "merge":
        row = merge(args.work, records=args.records, dimensions=args.dims)
        print(json.dumps(row))
        rows.append(row)
        args.results.write_text(json.dumps(rows, indent=1) + "\n")
        if args.results == MERGES:  # the README's sizing table follows the committed rows
            sizing_main([])
    if args.fit:
        for key, (a, b) in fit(rows).items():
            print(f"{key}: a={a:.1f} b={b:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
