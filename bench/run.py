"""`make bench`: every figure of issue 6 measured side by side in one run, printed as one table (with
the machine it ran on) and written to bench/results.json. Not run in CI.

    python bench/run.py            # the full sizes of the issue (several minutes on 2 cores)
    python bench/run.py --quick    # smaller sizes, for iterating
    python bench/run.py --only e2e --only memory
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sizing_table  # noqa: E402
from common import REPO_ROOT, Figure, machine  # noqa: E402

SCENARIOS = ("e2e", "final_merge", "query", "memory", "payload", "poll_memory", "functions",
             "metadata_update")
FULL = {"e2e_count": 20_000, "e2e_dims": 1536, "merge_base": 100_000, "merge_dims": 1536,
        "query_base": 100_000, "query_dims": 1536,
        "memory_dims": 1536, "payload_batches": 2000, "poll_count": 50_000, "poll_dims": 1536,
        "functions_base": 100_000, "functions_dims": 1536, "functions_count": 1000,
        "metadata_base": 100_000, "metadata_changes": 10_000, "metadata_dims": 1536}
QUICK = {"e2e_count": 5_000, "e2e_dims": 1536, "merge_base": 20_000, "merge_dims": 384,
         "query_base": 20_000, "query_dims": 384,
         "memory_dims": 1536, "payload_batches": 200, "poll_count": 5_000, "poll_dims": 1536,
         "functions_base": 20_000, "functions_dims": 384, "functions_count": 1000,
         "metadata_base": 20_000, "metadata_changes": 2_000, "metadata_dims": 384}
RESULT_KEYS = ("e2e_ratio", "final_merge_ratio", "query_ratio", "chunk_peak_rss_mb", "max_payload_kb",
               "poll_peak_rss_mb", "metadata_update_ratio")


def run_scenario(name: str, work: Path, sizes: dict, chosen: tuple[str, ...] = SCENARIOS) -> list[Figure]:
    work.mkdir(parents=True)
    if name == "e2e":
        import e2e
        return e2e.run(work, count=sizes["e2e_count"], dimensions=sizes["e2e_dims"])
    if name == "final_merge":
        import final_merge
        shared = "query" in chosen and (sizes["query_base"], sizes["query_dims"]) == (sizes["merge_base"],
                                                                                    sizes["merge_dims"])
        return final_merge.run(work, base=sizes["merge_base"], dimensions=sizes["merge_dims"],
                               with_query=shared)
    if name == "query":
        import query
        return query.run(work, base=sizes["query_base"], dimensions=sizes["query_dims"])
    if name == "memory":
        import memory
        return memory.run(work, dimensions=sizes["memory_dims"])
    if name == "payload":
        import payload
        return payload.run(work, batches=sizes["payload_batches"])
    if name == "poll_memory":
        import poll_memory
        return poll_memory.run(work, count=sizes["poll_count"], dimensions=sizes["poll_dims"])
    if name == "functions":
        import functions
        return functions.run(work, base=sizes["functions_base"], count=sizes["functions_count"],
                             dimensions=sizes["functions_dims"])
    if name == "metadata_update":
        import metadata_update
        return metadata_update.run(work, base=sizes["metadata_base"], changes=sizes["metadata_changes"],
                                   dimensions=sizes["metadata_dims"])
    raise ValueError(name)


def status_of(figure: Figure) -> str:
    if figure.target is None:
        return "for the record"
    missed = figure.missed_by
    return "met" if missed is None else f"MISSED by {missed:.0%}"


def format_table(figures: list[Figure], info: dict) -> str:
    rows = [("figure", "value", "target", "status", "details")]
    for f in figures:
        value = f"{f.value:,.0f} {f.unit}" if f.value >= 100 else f"{f.value:.2f} {f.unit}"
        target = f"<= {f.target:g} {f.unit}" if f.target is not None else "-"
        rows.append((f.name, value, target, status_of(f), f.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"machine: {info['cores']} cores, {info['cpu_model']}, Python {info['python']}"]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
                     + "  " + row[4])
        if index == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for iterating")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    parser.add_argument("--e2e-count", type=int, help="embeddings in the end-to-end run (multiple of 1000)")
    parser.add_argument("--merge-base", type=int, help="records in the published snapshot of figure 2")
    parser.add_argument("--merge-dims", type=int, help="vector width of figure 2")
    parser.add_argument("--query-base", type=int, help="records in the base segment of the query figure")
    parser.add_argument("--query-dims", type=int, help="vector width of the query figure")
    parser.add_argument("--payload-batches", type=int, help="batches in the payload run")
    parser.add_argument("--poll-count", type=int, help="requests in the output file PollBatches ingests")
    parser.add_argument("--functions-base", type=int, help="published records before the sizing run")
    parser.add_argument("--functions-dims", type=int, help="vector width of the sizing run")
    parser.add_argument("--metadata-base", type=int, help="records published before the label changes")
    parser.add_argument("--metadata-changes", type=int, help="label changes applied onto them")
    parser.add_argument("--metadata-dims", type=int, help="vector width of the metadata figure")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    for key in ("e2e_count", "merge_base", "merge_dims", "query_base", "query_dims", "payload_batches",
                "poll_count", "functions_base", "functions_dims", "metadata_base", "metadata_changes",
                "metadata_dims"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    info = machine()
    scratch = Path(tempfile.mkdtemp(prefix="embedding-ingest-bench-"))
    figures: list[Figure] = []
    started = time.perf_counter()
    try:
        chosen = tuple(args.only or SCENARIOS)
        for name in chosen:
            if name == "query" and any(f.name == "query_ratio" for f in figures):
                continue  # measured on final_merge's published base (same sizes): one big build
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            figures += run_scenario(name, scratch / name, sizes, chosen)
            print(f"[bench] {name} done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"[bench] scratch kept at {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    print(format_table(figures, info))
    results: dict = {"cores": info["cores"], "cpu_model": info["cpu_model"], "quick": args.quick,
                     "sizes": sizes, "seconds": round(time.perf_counter() - started, 1)}
    for figure in figures:
        results[figure.name] = round(figure.value, 3)
        results.update(figure.extra)
        if figure.target is not None:
            results[f"{figure.name}_target"] = figure.target
    args.results.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"results written to {args.results}", file=sys.stderr)
    if "functions" in results and not args.quick:  # the README's sizing table follows the new figures
        given = sys.argv[1:] if argv is None else argv
        shown = [a for i, a in enumerate(given)  # not where the results went: a path of this machine
                 if not a.startswith("--results") and (i == 0 or given[i - 1] != "--results")]
        sizing_table.record_functions(results["functions"], info, " ".join(["bench/run.py", *shown]))
        sizing_table.main([])
    return 0 if all(f.missed_by is None for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
