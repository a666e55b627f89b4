"""README-ready tables of `make bench-scale` (bench/scale.py): one row per publish, and per
function[:operation] its largest peaks over the run beside the template's sizing."""

from __future__ import annotations

from embedding_ingest.aws.function_table import BY_NAME


def _table(head: tuple[str, ...], lines: list[tuple[str, ...]]) -> str:
    rows = [head, tuple("---" for _ in head), *lines]
    return "\n".join(f"| {' | '.join(row)} |" for row in rows)


def _runs(labels: list[str]) -> str:
    """Equal neighbours written once with their number: ["100k", "100k", "200k"] -> "100k ×2, 200k"."""
    runs: list[list] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1][1] += 1
        else:
            runs.append([label, 1])
    return ", ".join(label if n == 1 else f"{label} ×{n}" for label, n in runs)


def format_rows(rows: list[dict]) -> str:
    """Markdown: per publish records, workflow and FinalMerge seconds, segments, merge work, cold
    lookup bytes, query p50 ours and stock."""
    head = ("publish", "records", "workflow s", "FinalMerge s", "segments (records)", "merged",
            "lookup /tmp", "query p50", "stock p50")
    lines = []
    for r in rows:
        merged = "–"
        if r["merged_segments"]:
            merged = f"{r['merged_segments']} ({r['merged_records']:,}) → {r['merged_bytes'] / 2**20:,.0f} MB"
        counts = _runs([f"{c // 1000:,}k" if c >= 1000 else str(c) for c in r["segment_counts"]])
        lines.append((str(r["publish"]), f"{r['records']:,}", f"{r['workflow_seconds']:.1f}",
                      f"{r['final_merge_seconds']:.1f}", f"{r['segments']} ({counts})", merged,
                      f"{r['lookup_cache_bytes'] / 2**20:.1f} MB", f"{r['query_p50_ms']:.1f} ms",
                      f"{r['stock_query_p50_ms']:.1f} ms"))
    return _table(head, lines)


def function_rows(rows: list[dict], share: float) -> list[dict]:
    """Per function[:operation]: the largest peak RSS and peak /tmp (MB) over every publish, the
    publish it came from, the template's MemorySize/EphemeralStorage (MB), and whether either peak
    passes `share` of its size."""
    worst: dict[str, dict] = {}
    for r in rows:
        for label, peak in r["peaks"].items():
            entry = worst.setdefault(label, {"function": label, "rss_mb": 0, "tmp_mb": 0.0, "seconds": 0.0,
                                             "rss_publish": 0, "tmp_publish": 0})
            if peak["rss_mb"] >= entry["rss_mb"]:
                entry.update(rss_mb=peak["rss_mb"], rss_publish=r["publish"])
            if peak["tmp_mb"] >= entry["tmp_mb"]:
                entry.update(tmp_mb=peak["tmp_mb"], tmp_publish=r["publish"])
            entry["seconds"] = max(entry["seconds"], peak["seconds"])
    for label, entry in worst.items():
        function = BY_NAME[label.split(":", 1)[0]]
        entry.update(memory_mb=function.memory_mb, tmp_size_mb=function.ephemeral_mb,
                     over=entry["rss_mb"] > share * function.memory_mb
                     or entry["tmp_mb"] > share * function.ephemeral_mb)
    return [worst[label] for label in sorted(worst)]


def format_functions(functions: list[dict], share: float) -> str:
    """Markdown: per function[:operation] peak RSS / MemorySize and peak /tmp / EphemeralStorage."""
    head = ("function[:operation]", "peak RSS / MemorySize", "peak /tmp / EphemeralStorage",
            "seconds in a publish (all calls)", f"over {share:.0%}")
    lines = [(f["function"], f"{f['rss_mb']:,} / {f['memory_mb']:,} MB (publish {f['rss_publish']})",
              f"{f['tmp_mb']:,.1f} / {f['tmp_size_mb']:,} MB (publish {f['tmp_publish']})",
              f"{f['seconds']:.1f}", "**yes**" if f["over"] else "no") for f in functions]
    return _table(head, lines)
