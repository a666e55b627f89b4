"""`make bench-scale` (not part of `make bench`; issue 21): a collection grown to RECORDS x DIMS lines in
PUBLISHES publishes of equal size through the real line workflow, and what each publish costs as the
collection grows.

Each publish, as a user runs the product: synthetic receipts (bench/scale_receipts.py: SROIE layouts from
tests/data re-issued under new receipt ids, texts drawn anew) imported through the workspace, submitted
in batches of 10,000 requests, completed by the local provider at DIMS-d (before the clock, as
bench/e2e.py does), then ONE execution of the real line workflow on the local engine in which every
task runs its real handler in a process of its own on a fresh local disk, as a Lambda without EFS
(bench/functions.py's ChildProcessInvoker: peak RSS and peak local disk per function[:operation]).
Only the new records are imported, submitted and encoded; nothing old is touched by the harness.

Per publish: records after it; workflow seconds (process starts included) and FinalMerge's share;
segments and their counts; merge work (segments merged away and the bytes of the segment they became);
the bytes a cold MarkBatchesComplete lookup of 1,000 ids writes to its cache dir; query p50 through
open_snapshot beside stock Chroma holding the same records (one collection grown each publish by the
very records this publish wrote: its deltas' ids, vectors, documents and metadata, read back from the
object store); per function[:operation] the largest peak RSS and peak /tmp beside aws.function_table's
MemorySize and EphemeralStorage (flagged over 80%). Targets: the last publish's workflow costs <= 1.3x
the first's; query p50 <= 1.5x stock Chroma at the end; every function within its sizing. Exit code 1
when a target is missed.

    python bench/scale.py                                  # 1,000,000 x 384-d in ten publishes
    python bench/scale.py --records 40000 --publishes 4 --dims 64      # a small run of the same shape
    python bench/scale.py --keep DIR                       # keep workspace + stock collection in DIR
    python bench/scale.py --requery DIR                    # re-measure query p50 on a kept run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asl_local.clock import RealClock  # noqa: E402
from common import REPO_ROOT, machine, make_workspace, stopwatch  # noqa: E402
from e2e import stage_spans  # noqa: E402
from embedding_ingest import open_snapshot  # noqa: E402
from embedding_ingest.pipeline.definitions import build_definition, local_resource_arn  # noqa: E402
from embedding_ingest.pipeline.engine_store import WorkflowEngine  # noqa: E402
from embedding_ingest.snapshots import iter_pages, materialize, read_manifest, read_version  # noqa: E402
from embedding_ingest.snapshots.chroma_io import (  # noqa: E402
    create_collection,
    get_collection,
    open_client,
    upsert_pages,
)
from embedding_ingest.snapshots.query import published_revisions  # noqa: E402
from embedding_ingest.steps.keys import delta_prefix  # noqa: E402
from embedding_ingest.stores.records import ExecutionStatus, ItemKind  # noqa: E402
from embedding_ingest.submission.submit import submit  # noqa: E402
from functions import TARGET_SHARE, ChildProcessInvoker  # noqa: E402
from peaks import disk_bytes  # noqa: E402
from query import INCLUDE, N_RESULTS  # noqa: E402
from scale_receipts import ReceiptMaker  # noqa: E402
from scale_report import format_functions, format_rows, function_rows  # noqa: E402

KIND = ItemKind.LINE
DATABASE = KIND.database
FINAL_MERGE = "embedding-vector-compact:final_merge"
# OpenAI's Batch guide: "The file can contain up to 50,000 requests, and can be up to 200 MB in size"
# (providers/base.py); 10,000 one-input requests per batch stays well inside both.
REQUESTS_PER_BATCH = 10_000
# The account's enqueued-token budget (config.py: 3,000,000, usage tier 1) would hold a publish's
# 100,000 lines back in several rounds; the bench raises it so one publish's lines go at once, as an
# account of a higher tier does. It changes how many submits a publish takes, not what is published.
ENQUEUED_TOKENS = 100_000_000
QUERIES = 100
LOOKUP_IDS = 1000
TARGET_GROWTH = 1.3
TARGET_QUERY = 1.5


def _stored_bytes(manifest) -> int:
    """A segment's archive plus its vectors part (stored apart since issue 21)."""
    return manifest.archive_bytes + (manifest.vectors.size if manifest.vectors else 0)


def query_p50(ws, stock, dimensions: int, seed: int) -> tuple[float, float]:
    """p50 ms of the same noisy unit vectors asked alternately of the snapshot and of stock Chroma."""
    queries = np.random.default_rng(seed).standard_normal((QUERIES, dimensions)).astype(np.float32)
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


def _lookup_cache_bytes(ws, work: Path, version, ids: list[str]) -> int:
    """Bytes a cold MarkBatchesComplete lookup of this publish's first ids writes to a fresh cache dir."""
    cold = ws.settings.model_copy(update={"chroma_root": work / "cold-lookup"})
    wanted = ids[:LOOKUP_IDS]
    found = published_revisions(ws.objects, version, wanted, cold)
    if len(found) != len(wanted):
        raise RuntimeError(f"lookup found {len(found)} of {len(wanted)} just-published ids")
    written = disk_bytes(work / "cold-lookup")
    shutil.rmtree(work / "cold-lookup", ignore_errors=True)
    return written


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _progress(n: int, what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} publish {n + 1}: {what}", file=sys.stderr, flush=True)


def _prepare(ws, work: Path, maker: ReceiptMaker, n: int, count: int) -> tuple[list[str], list, dict]:
    """Import, submit and complete publish n's `count` new lines; returns their ids, the batches and
    the seconds of each phase."""
    seconds = {}
    receipts = work / f"receipts-{n}.jsonl"
    _progress(n, f"importing, submitting and encoding {count:,} new lines")
    with stopwatch() as made:
        ids = maker.write(receipts, n, count)
    with stopwatch() as imported:
        ws.import_receipts(receipts)
    receipts.unlink()
    with stopwatch() as submitted:
        report = submit(KIND, ws.ledger, ws.ctx.provider, settings=ws.settings,
                        max_items_per_batch=REQUESTS_PER_BATCH)
    if report.items_submitted != count:
        raise RuntimeError(f"publish {n + 1}: submitted {report.items_submitted} lines, made {count}")
    with stopwatch() as encoded:  # the local provider encodes a batch at its first retrieve
        for batch in report.batches:
            if ws.ctx.provider.retrieve(batch.provider_batch_id).output_file_id is None:
                raise RuntimeError(f"local provider left batch {batch.provider_batch_id} without output")
    seconds.update(generate=made[0], import_=imported[0], submit=submitted[0], provider=encoded[0])
    return ids, report.batches, {k: round(v, 1) for k, v in seconds.items()}


def _stock_upsert(ws, work: Path, client, stock, batches, dimensions: int) -> float:
    """Grow stock Chroma by the records this publish wrote: each batch's delta (ids, vectors,
    documents, metadata as PollBatches stored them), one upsert pass. Returns its seconds."""
    spent = 0.0
    for batch in batches:
        local = materialize(ws.objects, delta_prefix(DATABASE, batch.batch_id), work / "stock-delta")
        try:
            with stopwatch() as seconds:
                upsert_pages(client, stock, iter_pages(local, DATABASE), dimensions=dimensions,
                             where=f"stock {batch.batch_id}")
            spent += seconds[0]
        finally:
            shutil.rmtree(local, ignore_errors=True)
    return spent


def _publish(ws, work: Path, client, stock, maker: ReceiptMaker, n: int, *, per_publish: int,
             dimensions: int) -> tuple[dict, dict]:
    """One publish of `per_publish` new lines; returns its row and its per-function peaks."""
    before_version = ws.ledger.get_published(DATABASE)
    before = {s.key: s for s in read_version(ws.objects, before_version).segments} if before_version else {}
    ids, batches, phases = _prepare(ws, work, maker, n, per_publish)
    _progress(n, f"prepared {phases}; the line workflow")
    invoker = ChildProcessInvoker(work, ws.settings)
    engine = WorkflowEngine(ws.ledger, invoker, clock=RealClock(sleep_function=lambda seconds: None))
    cpu = _cpu_seconds()
    with stopwatch() as workflow:
        record = engine.start_execution(KIND.value, build_definition(KIND.value, local_resource_arn),
                                        f"scale-{n + 1}", {})
    cpu = _cpu_seconds() - cpu
    if record.status is not ExecutionStatus.SUCCEEDED:
        raise RuntimeError(f"publish {n + 1}: execution ended {record.status}: {record.error} {record.cause}")
    version = ws.ledger.get_published(DATABASE)
    if version.count != (before_version.count if before_version else 0) + per_publish:
        raise RuntimeError(f"publish {n + 1}: published {version.count} records")
    segments = read_version(ws.objects, version).segments
    kept = {s.key for s in segments}
    merged_away = [s for key, s in before.items() if key not in kept]
    made = [s for s in segments if s.key not in before and s.count != per_publish]
    _progress(n, f"workflow {workflow[0]:.0f} s; stock upsert, queries")
    stock_cpu = _cpu_seconds()
    stock_seconds = _stock_upsert(ws, work, client, stock, batches, dimensions)
    stock_cpu = _cpu_seconds() - stock_cpu
    ours_ms, stock_ms = query_p50(ws, stock, dimensions, seed=1000 + n)
    peaks = {label: dict(entry) for label, entry in invoker.peaks.items()}
    row = {"publish": n + 1, "records": version.count, "workflow_seconds": round(workflow[0], 1),
           "workflow_cpu_seconds": round(cpu, 1),
           "final_merge_seconds": round(peaks.get(FINAL_MERGE, {}).get("seconds", 0.0), 1),
           "stage_seconds": stage_spans(ws.ledger.get_events(record.execution_arn)),
           "prepare_seconds": phases, "stock_upsert_seconds": round(stock_seconds, 1),
           "stock_upsert_cpu_seconds": round(stock_cpu, 1),
           "segments": len(segments), "segment_counts": [s.count for s in segments],
           "merged_segments": len(merged_away), "merged_records": sum(s.count for s in merged_away),
           "merged_bytes": sum(_stored_bytes(read_manifest(ws.objects, s.key)) for s in made),
           "lookup_cache_bytes": _lookup_cache_bytes(ws, work, version, ids),
           "query_p50_ms": round(ours_ms, 2), "stock_query_p50_ms": round(stock_ms, 2),
           "peaks": {label: {"rss_mb": round(e["rss"]), "tmp_mb": round(e["tmp"], 1),
                             "seconds": round(e["seconds"], 1), "calls": e["calls"]}
                     for label, e in sorted(peaks.items())}}
    return row, peaks


def run(work: Path, *, records: int, publishes: int, dimensions: int) -> list[dict]:
    """Every publish in turn, each row printed to stderr as it lands; `work` keeps the workspace
    (work/ws) and the stock collection (work/stock)."""
    per_publish = records // publishes
    ws = make_workspace(work / "ws", dimensions=dimensions, polls_per_stage=0,
                        OPENAI_ENQUEUED_TOKEN_LIMIT=ENQUEUED_TOKENS)
    maker = ReceiptMaker()
    rows: list[dict] = []
    with open_client(work / "stock") as client:
        stock = create_collection(client, DATABASE, "quality", ws.settings)
        for n in range(publishes):
            cpu = _cpu_seconds()
            with stopwatch() as whole:
                row, _ = _publish(ws, work, client, stock, maker, n, per_publish=per_publish,
                                  dimensions=dimensions)
            row["total_seconds"] = round(whole[0], 1)  # everything this publish took, harness included
            row["total_cpu_seconds"] = round(_cpu_seconds() - cpu, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        del stock
    return rows


def requery(work: Path, results: dict) -> dict:
    """Re-measure the last publish's query p50 (ours and stock, same method) on a kept run in `work`."""
    ws = make_workspace(work / "ws", dimensions=results["dimensions"], polls_per_stage=0,
                        OPENAI_ENQUEUED_TOKEN_LIMIT=ENQUEUED_TOKENS)
    last = results["rows"][-1]
    with open_client(work / "stock") as client:
        stock = get_collection(client, DATABASE)
        ours_ms, stock_ms = query_p50(ws, stock, results["dimensions"], seed=1000 + last["publish"] - 1)
        del stock
    last.update(query_p50_ms=round(ours_ms, 2), stock_query_p50_ms=round(stock_ms, 2),
                requeried=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    results["query_ratio"] = ours_ms / stock_ms
    return results


def _summary(results: dict) -> tuple[str, bool]:
    rows = results["rows"]
    functions = function_rows(rows, TARGET_SHARE)
    over = [f["function"] for f in functions if f["over"]]
    met = (results["publish_growth"] <= TARGET_GROWTH and results["query_ratio"] <= TARGET_QUERY
           and not over)
    info, load = results["machine"], results.get("load_average", {})
    text = "\n\n".join((
        f"machine: {info['cores']} cores, {info['cpu_model']}; {results['date']}; "
        f"{results['records']:,} x {results['dimensions']}-d in {results['publishes']} publishes, "
        f"{results['seconds'] / 60:.0f} min in all; load average (1, 5, 15 min) at the start "
        f"{load.get('start')}, at the end {load.get('end')}",
        format_rows(rows), format_functions(functions, TARGET_SHARE),
        f"last publish / first (workflow seconds): {results['publish_growth']:.2f}x (target <= "
        f"{TARGET_GROWTH}x; in CPU seconds {results.get('publish_growth_cpu', float('nan')):.2f}x; "
        f"costliest / first {results.get('publish_growth_max', float('nan')):.2f}x, mean of the last two "
        f"/ first {results.get('publish_growth_last_two', float('nan')):.2f}x); "
        f"query p50 / stock at {rows[-1]['records']:,}: {results['query_ratio']:.2f}x "
        f"(target <= {TARGET_QUERY}x); functions over {TARGET_SHARE:.0%} of their sizing: "
        f"{', '.join(over) or 'none'}"))
    return text, met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "scale_results.json")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the workspace and the stock collection in DIR (new or empty)")
    parser.add_argument("--requery", type=Path, metavar="DIR",
                        help="only re-measure query p50 (ours and stock) on a run kept in DIR")
    args = parser.parse_args(argv)
    if args.requery:
        results = requery(args.requery, json.loads((args.requery / "scale_results.json").read_text()))
    else:
        if args.records % args.publishes:
            parser.error(f"--records {args.records} is not a multiple of --publishes {args.publishes}")
        if args.keep and args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"--keep {args.keep}: exists and is not empty")
        work = args.keep or Path(tempfile.mkdtemp(prefix="embedding-ingest-scale-"))
        work.mkdir(parents=True, exist_ok=True)
        started, load_before = time.perf_counter(), os.getloadavg()
        try:
            rows = run(work, records=args.records, publishes=args.publishes, dimensions=args.dims)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "records": args.records, "publishes": args.publishes, "dimensions": args.dims,
                   "rows": rows, "publish_growth": rows[-1]["workflow_seconds"] / rows[0]["workflow_seconds"],
                   # the same in CPU seconds (children's included): what a loaded machine does not inflate
                   "publish_growth_cpu": rows[-1]["workflow_cpu_seconds"] / rows[0]["workflow_cpu_seconds"],
                   # a merge comes every few publishes past the soft cap, so the tenth alone can miss it:
                   # the costliest publish after the first, and the mean of the last two, beside it
                   "publish_growth_max": max(r["workflow_seconds"] for r in rows[1:] or rows)
                   / rows[0]["workflow_seconds"],
                   "publish_growth_last_two": sum(r["workflow_seconds"] for r in rows[-2:])
                   / len(rows[-2:]) / rows[0]["workflow_seconds"],
                   "query_ratio": rows[-1]["query_p50_ms"] / rows[-1]["stock_query_p50_ms"],
                   "seconds": round(time.perf_counter() - started),
                   "load_average": {"start": load_before, "end": os.getloadavg()}}
    text, met = _summary(results)
    print(text)
    serialized = json.dumps(results, indent=2) + "\n"
    args.results.write_text(serialized)
    kept = args.requery or args.keep
    if kept:
        (kept / "scale_results.json").write_text(serialized)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
