"""Figure 3: peak RSS of process_chunk merging 10 deltas of 1,000 x 1536-d (lesson 12).

The parent writes the deltas; a fresh child process runs only the step and reports its own peak RSS:
VmHWM of its own address space. Not getrusage: Linux carries ru_maxrss across exec, so a child forked
from a big parent would report the parent's peak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":  # run as the child: make `common` (and through it the project) importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))


from common import Figure, make_workspace, random_pages
from embedding_ingest.snapshots import write_snapshot
from peaks import peak_rss_kib

DATABASE = "lines"
DELTAS = 10
PER_DELTA = 1000


def _delta_key(index: int) -> str:
    return f"{DATABASE}/delta/{DATABASE}/receipt_{DATABASE}/bench-{index}/"


def _child(work: Path, dimensions: int) -> None:
    from embedding_ingest.steps.compact import process_chunk

    ws = make_workspace(work, dimensions=dimensions)
    deltas = [{"batch_id": f"bench-{i}", "delta_key": _delta_key(i), "embedding_count": PER_DELTA,
               "database": DATABASE, "collection": DATABASE} for i in range(DELTAS)]
    result = process_chunk({"chunk_index": 0, "batch_id": "bench-memory", "operation": "process_chunk",
                            "delta_results": deltas}, ws.ctx)
    print(json.dumps({"peak_rss_mb": peak_rss_kib() / 1024, "total": result["total_embeddings"]}))


def run(work: Path, *, dimensions: int) -> list[Figure]:
    ws = make_workspace(work, dimensions=dimensions)
    for i in range(DELTAS):
        write_snapshot(ws.objects, _delta_key(i), random_pages(PER_DELTA, dimensions, prefix=f"d{i}", seed=i),
                       collection=DATABASE, dimensions=dimensions, model=ws.ctx.provider.model)
    done = subprocess.run([sys.executable, __file__, str(work), str(dimensions)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"process_chunk child failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["total"] != DELTAS * PER_DELTA:
        raise RuntimeError(f"process_chunk merged {report['total']}, expected {DELTAS * PER_DELTA}")
    return [Figure("chunk_peak_rss_mb", report["peak_rss_mb"], "MB", target=512.0,  # issue 21
                   detail=f"process_chunk of {DELTAS} deltas x {PER_DELTA:,} x {dimensions}-d in a child")]


if __name__ == "__main__":
    _child(Path(sys.argv[1]), int(sys.argv[2]))
